"""Small building blocks that the Transformer-family models (gpt.py, transformer.py) share."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def param(rngs: nnx.Rngs, init, shape, axes) -> nnx.Param:
  """A float32 parameter whose logical axis names the sharding rules read."""
  return nnx.Param(nnx.with_partitioning(init, axes)(rngs.params(), shape, jnp.float32))


def layer_norm(d: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
  # Statistics in float32 whatever the compute dtype: bfloat16 variances lose too many bits.
  return nnx.LayerNorm(
    d,
    epsilon=eps,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    rngs=rngs,
    scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ('embed',)),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('embed',)),
  )


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
  """Inverted dropout with an explicit key; no key (evaluation) or rate 0 is the identity."""
  if key is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)
