"""The variational autoencoder of Kingma and Welling (2014), with MLP encoder and decoder as in
the paper's experiments.

The encoder maps an image x to the mean and log-variance of a diagonal Gaussian q(z|x); a latent
is drawn by the reparameterisation z = mu + sigma * eps, eps ~ N(0, I), so the sample is a
differentiable function of (mu, sigma) and the ELBO's gradient flows through it. The decoder maps
z to one logit per pixel: the parameters of independent Bernoulli distributions p(x|z).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def dense(
  n_in: int, n_out: int, axes: tuple[str | None, str | None], *, dtype, rngs: nnx.Rngs
) -> nnx.Linear:
  return nnx.Linear(
    n_in,
    n_out,
    dtype=dtype,
    param_dtype=jnp.float32,
    rngs=rngs,
    kernel_init=nnx.with_partitioning(nnx.initializers.glorot_uniform(), axes),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (axes[1],)),
  )


def mlp(widths: Sequence[int], *, dtype, rngs: nnx.Rngs) -> nnx.List:
  """Linear layers of the given widths; consecutive kernels split on opposite sides under tensor
  parallelism (embed x mlp, then mlp x embed)."""
  return nnx.List(
    [
      dense(a, b, ('embed', 'mlp') if i % 2 == 0 else ('mlp', 'embed'), dtype=dtype, rngs=rngs)
      for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
    ]
  )


class VAE(nnx.Module):
  def __init__(
    self,
    latent_dim: int,
    hidden: Sequence[int] = (512, 256),
    image_shape: Sequence[int] = (28, 28, 1),
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
    pixels = math.prod(self.image_shape)
    self.encoder = mlp([pixels, *hidden], dtype=dtype, rngs=rngs)
    self.to_mu = dense(hidden[-1], latent_dim, ('embed', None), dtype=dtype, rngs=rngs)
    self.to_log_var = dense(hidden[-1], latent_dim, ('embed', None), dtype=dtype, rngs=rngs)
    self.decoder = mlp([latent_dim, *hidden[::-1]], dtype=dtype, rngs=rngs)
    self.to_logits = dense(hidden[0], pixels, ('embed', None), dtype=dtype, rngs=rngs)

  def encode(self, x_BxHxWxC: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mu, log sigma^2) of q(z|x), each [B, latent]."""
    h = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
    for layer in self.encoder:
      h = jax.nn.relu(layer(h))
    return self.to_mu(h), self.to_log_var(h)

  def decode(self, z_BxZ: jax.Array) -> jax.Array:
    """Bernoulli logits of every pixel, [B, H, W, C]."""
    h = z_BxZ
    for layer in self.decoder:
      h = jax.nn.relu(layer(h))
    return self.to_logits(h).reshape(z_BxZ.shape[0], *self.image_shape)

  def __call__(
    self, x_BxHxWxC: jax.Array, key: jax.Array
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(logits of p(x|z), mu, log sigma^2) for one reparameterised sample z per image."""
    mu_BxZ, log_var_BxZ = self.encode(x_BxHxWxC)
    eps_BxZ = jax.random.normal(key, mu_BxZ.shape, mu_BxZ.dtype)
    z_BxZ = mu_BxZ + jnp.exp(0.5 * log_var_BxZ) * eps_BxZ
    return self.decode(z_BxZ), mu_BxZ, log_var_BxZ
