"""The generative adversarial network (Goodfellow et al. 2014) with DCGAN's networks, on
Fashion-MNIST.

The discriminator D minimises the cross-entropy of telling real images (label 1) from
generated ones (label 0). The generator minimises -log D(G(z)), the non-saturating loss of the
GAN paper: log(1 - D(G(z))) has no gradient where D rejects G's images confidently, which is
exactly where the generator starts; -log D(G(z)) has the same fixed point and a strong gradient
there. Images are scaled to [-1, 1] to match the generator's tanh.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.models.gan import DCGAN
from jdl.plots import save_grid
from jdl.train import task as base

EVAL_KEY_SEED = 1234  # evaluation draws its noise from a fixed key: the same z at every eval


def to_unit_range(images_u8: jax.Array) -> jax.Array:
  """uint8 pixels -> [-1, 1]."""
  return images_u8.astype(jnp.float32) / 127.5 - 1.0


class Task(base.Task):
  """Two networks in one state and one step (the base task's NETWORKS): the discriminator's
  loss is differentiated with respect to the discriminator only and the generator's with
  respect to the generator only, each updated by its own optimizer (`optimizer.<network>`
  overrides the shared fields)."""

  NETWORKS = ('generator', 'discriminator')

  def __init__(self, config):
    super().__init__(config)
    if config.model.name != 'dcgan':
      raise ConfigError(
        f"config.model.name: the gan task has model 'dcgan', not {config.model.name!r}"
      )

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return DCGAN(m.latent_dim, m.features, m.channels, dtype=self.compute_dtype, rngs=rngs)

  def losses(self, model, batch, key, train):
    model.train() if train else model.eval()
    key = key if key is not None else jax.random.key(EVAL_KEY_SEED)
    real = to_unit_range(batch['image']).astype(self.compute_dtype)
    z = jax.random.normal(key, (real.shape[0], model.latent_dim), self.compute_dtype)
    fake = model.generator(z)
    logit_real = model.discriminator(real).astype(jnp.float32)
    # D's loss looks at G's images as data: no gradient flows back into G through it.
    logit_fake_d = model.discriminator(jax.lax.stop_gradient(fake)).astype(jnp.float32)
    logit_fake_g = model.discriminator(fake).astype(jnp.float32)
    bce = optax.sigmoid_binary_cross_entropy
    d_loss = base.masked_mean(
      bce(logit_real, jnp.ones_like(logit_real)) + bce(logit_fake_d, jnp.zeros_like(logit_fake_d)),
      batch,
    )
    g_loss = base.masked_mean(bce(logit_fake_g, jnp.ones_like(logit_fake_g)), batch)
    metrics = {
      'loss': d_loss + g_loss,
      'd_loss': d_loss,
      'g_loss': g_loss,
      'd_real': base.masked_mean(jax.nn.sigmoid(logit_real), batch),
      'd_fake': base.masked_mean(jax.nn.sigmoid(logit_fake_d), batch),
    }
    return {'discriminator': d_loss, 'generator': g_loss}, metrics

  def sample(self, model: nnx.Module, n: int, seed: int = 0) -> np.ndarray:
    """n generated images in [0, 1], [n, 28, 28, C] (batch norm with its running averages)."""
    model.eval()
    generate = jax.jit(lambda z: (model.generator(z).astype(jnp.float32) + 1) / 2)
    z = jax.random.normal(jax.random.key(seed), (n, self.config.model.latent_dim))
    return np.concatenate([np.asarray(generate(z[i : i + 1000])) for i in range(0, n, 1000)])

  def report(self, plan, state, history, workdir, data):
    final = history[-1] if history else {}
    print(
      f'final D loss {final.get("d_loss", float("nan")):.4f}, G loss '
      f'{final.get("g_loss", float("nan")):.4f}; D(real) {final.get("d_real", 0):.3f}, '
      f'D(G(z)) {final.get("d_fake", 0):.3f}'
    )
    samples = self.sample(plan.merge(state.params, state.model_state), 64)
    path = epath.Path(workdir) / 'samples.png'
    save_grid(samples, path, f'DCGAN samples at step {int(state.step)}')
    (epath.Path(workdir) / 'report.json').write_text(
      json.dumps({'step': int(state.step), **{k: v for k, v in final.items()}}, indent=1)
    )
    print(f'samples: {path}')
