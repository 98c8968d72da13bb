"""Two trained networks whose losses read each other's outputs, and a frozen reference."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jdl.train import task as base


def negative_zeros(key, shape, dtype=jnp.float32):
  """-0.0 everywhere: x + 0.0 would turn it into +0.0, so only untouched arrays keep it."""
  return -jnp.zeros(shape, dtype)


class ActorCriticModel(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.actor = nnx.Linear(4, 1, rngs=rngs)
    self.critic = nnx.Linear(4, 1, rngs=rngs)
    self.reference = nnx.Linear(4, 1, bias_init=negative_zeros, rngs=rngs)


class Task(base.Task):
  NETWORKS = ('actor', 'critic')
  FROZEN = ('reference',)

  def build_model(self, rngs):
    return ActorCriticModel(rngs)

  def losses(self, model, batch, key, train):
    a, c, r = model.actor(batch['x']), model.critic(batch['x']), model.reference(batch['x'])
    actor = base.masked_mean(((a - batch['y']) ** 2 + (a - r) ** 2 + c * a)[:, 0], batch)
    critic = base.masked_mean(((c - batch['y']) ** 2 + a * c)[:, 0], batch)
    return {'actor': actor, 'critic': critic}, {'loss': actor + critic}
