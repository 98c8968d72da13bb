"""The variational autoencoder (Kingma and Welling 2014) on Fashion-MNIST.

Training maximises the evidence lower bound
  ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)),   p(z) = N(0, I),
with one reparameterised sample of z per image; the loss is -ELBO in nats per image, reported as
its two terms: `reconstruction` (-E_q log p(x|z), the Bernoulli decoder's cross-entropy summed
over the 784 pixels) and `kl` (closed form for two diagonal Gaussians).

The Bernoulli decoder models binary pixels, so the images are binarised: training draws a fresh
binarisation of every image at every step (pixel on with probability intensity/255, the usual
"dynamic binarisation"), evaluation uses one fixed binarisation of the test set (numpy seed 0),
so the test number is a true bound on -log p(x) of those binary images, in nats.
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
from jdl.data import fashion_mnist
from jdl.models.vae import VAE
from jdl.plots import save_grid
from jdl.train import task as base

EVAL_BINARIZE_SEED = 0


def bernoulli_nll(logits_BxHxWxC: jax.Array, x_BxHxWxC: jax.Array) -> jax.Array:
  """-log p(x|z) per image: the sum over pixels of the Bernoulli cross-entropy, in nats."""
  nll = optax.sigmoid_binary_cross_entropy(logits_BxHxWxC, x_BxHxWxC)
  return nll.reshape(nll.shape[0], -1).sum(-1)


def gaussian_kl(mu_q: jax.Array, log_var_q: jax.Array, mu_p=0.0, log_var_p=0.0) -> jax.Array:
  """KL(N(mu_q, var_q) || N(mu_p, var_p)) of diagonal Gaussians, summed over the last axis:
  0.5 sum(log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1). Against the prior
  N(0, I) this is the paper's 0.5 sum(mu^2 + sigma^2 - 1 - log sigma^2)."""
  terms = (
    log_var_p - log_var_q + (jnp.exp(log_var_q) + (mu_q - mu_p) ** 2) / jnp.exp(log_var_p) - 1.0
  )
  return 0.5 * terms.sum(-1)


def binarize(images_u8: np.ndarray, seed: int) -> np.ndarray:
  """One fixed Bernoulli draw per pixel (probability intensity/255), as uint8 0 or 255."""
  rng = np.random.default_rng(seed)
  on = rng.random(images_u8.shape, dtype=np.float32) < images_u8 / np.float32(255)
  return (on * 255).astype(np.uint8)


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    if config.model.name != 'vae':
      raise ConfigError(
        f"config.model.name: the vae task has model 'vae', not {config.model.name!r}"
      )

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return VAE(m.latent_dim, m.hidden, m.image_shape, dtype=self.compute_dtype, rngs=rngs)

  def load_data(self) -> base.Splits:
    data = fashion_mnist.load(**self.config.data.kwargs.to_dict())
    if self.config.data.binarize:
      data.evals = {
        name: dict(split, image=binarize(split['image'], EVAL_BINARIZE_SEED + i))
        for i, (name, split) in enumerate(data.evals.items())
      }
    return data

  def loss(self, model, batch, key, train):
    key = key if key is not None else jax.random.key(EVAL_BINARIZE_SEED)
    key_binary, key_z = jax.random.split(key)
    x = batch['image'].astype(jnp.float32) / 255.0
    if train and self.config.data.binarize:
      x = jax.random.bernoulli(key_binary, x).astype(jnp.float32)
    logits, mu, log_var = model(x.astype(self.compute_dtype), key_z)
    reconstruction = base.masked_mean(bernoulli_nll(logits.astype(jnp.float32), x), batch)
    kl = base.masked_mean(gaussian_kl(mu.astype(jnp.float32), log_var.astype(jnp.float32)), batch)
    loss = reconstruction + kl
    return loss, {'loss': loss, 'reconstruction': reconstruction, 'kl': kl}

  def sample(self, model: nnx.Module, n: int, seed: int = 0) -> np.ndarray:
    """n images from the model, [n, H, W, C] in [0, 1]: the decoder's Bernoulli means at
    z ~ N(0, I) (the mean image, as VAE figures show it, rather than one binary draw)."""
    decode = jax.jit(lambda z: jax.nn.sigmoid(model.decode(z).astype(jnp.float32)))
    z = jax.random.normal(jax.random.key(seed), (n, self.config.model.latent_dim))
    return np.concatenate([np.asarray(decode(z[i : i + 1000])) for i in range(0, n, 1000)])

  def encode(self, model: nnx.Module, images_u8: np.ndarray) -> np.ndarray:
    """Posterior means mu(x), [N, latent], of grey images scaled to [0, 1]."""
    encode = jax.jit(lambda x: model.encode(x.astype(jnp.float32) / 255.0)[0])
    return np.concatenate(
      [np.asarray(encode(images_u8[i : i + 1000])) for i in range(0, len(images_u8), 1000)]
    )

  def report(self, plan, state, history, workdir, data):
    final = history[-1] if history else {}
    for split in data.evals:
      if f'{split}_loss' in final:
        print(
          f'{split}: negative ELBO {final[f"{split}_loss"]:.2f} nats/image = reconstruction '
          f'{final[f"{split}_reconstruction"]:.2f} + KL {final[f"{split}_kl"]:.2f}'
        )
    path = epath.Path(workdir) / 'samples.png'
    save_grid(
      self.sample(plan.merge(state.params, state.model_state), 64),
      path,
      f'VAE samples (Bernoulli means), step {int(state.step)}',
    )
    (epath.Path(workdir) / 'report.json').write_text(
      json.dumps({'step': int(state.step), **final}, indent=1)
    )
    print(f'samples: {path}')
