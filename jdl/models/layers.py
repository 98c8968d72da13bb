"""Small building blocks that the Transformer-family models (gpt.py, transformer.py) share."""

from __future__ import annotations

import dataclasses
import difflib

import jax
import jax.numpy as jnp
from flax import nnx


def config_from_section(cls, model, dtype: str):
  """A model's dataclass config from the ConfigDict `config.model`: every key must be a field
  of `cls` (or 'name', which picks the model); a key it does not know is a ConfigError."""
  from jdl.config import ConfigError

  names = {f.name for f in dataclasses.fields(cls)} - {'dtype'}
  for key in model:
    if key != 'name' and key not in names:
      close = difflib.get_close_matches(key, sorted(names), n=1)
      hint = f"; did you mean 'model.{close[0]}'?" if close else ''
      raise ConfigError(
        f"config.model.{key}: {cls.__name__} has no field '{key}'{hint} (fields: {sorted(names)})"
      )
  return cls(**{k: v for k, v in model.items() if k in names}, dtype=dtype)


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
