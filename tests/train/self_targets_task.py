"""Training data made from the current state, inside the compiled step."""

from __future__ import annotations

import jax
from flax import nnx

from jdl.train import task as base


class Task(base.Task):
  """Training data made from the current state: each batch's targets are the current model's own
  predictions plus noise, drawn inside the compiled step (as RLHF's rollouts are)."""

  def build_model(self, rngs):
    return nnx.Linear(4, 1, rngs=rngs)

  def prepare_batch(self, plan, state, batch, key):
    model = plan.merge(state.params, state.model_state)
    noise = jax.random.normal(key, batch['y'].shape)
    return dict(batch, y=jax.lax.stop_gradient(0.5 * model(batch['x'])) + noise)

  def loss(self, model, batch, key, train):
    mse = base.masked_mean(((model(batch['x']) - batch['y']) ** 2)[:, 0], batch)
    return mse, {'loss': mse, 'target_mean': batch['y'].mean()}
