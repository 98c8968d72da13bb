"""The lecture's Keras multilayer perceptron: Dense(10, relu) -> Dense(2, relu) -> Dense(1).

Initialisation follows Keras' Dense defaults (Glorot-uniform kernels, zero biases) so that jdl's
run and the lecture's `model.fit` start from the same distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
  """Linear layers with ReLU between them (none after the last one)."""

  def __init__(
    self, in_features: int, features: Sequence[int], *, dtype=jnp.float32, rngs: nnx.Rngs
  ):
    widths = [in_features, *features]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
      # Alternate the logical axes so that consecutive kernels shard on opposite sides, as
      # Megatron-style tensor parallelism pairs column- and row-split layers.
      axes = ('embed', 'mlp') if i % 2 == 0 else ('mlp', 'embed')
      layers.append(
        nnx.Linear(
          n_in,
          n_out,
          dtype=dtype,
          param_dtype=jnp.float32,
          rngs=rngs,
          kernel_init=nnx.with_partitioning(nnx.initializers.glorot_uniform(), axes),
          bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (axes[1],)),
        )
      )
    self.layers = nnx.List(layers)

  def __call__(self, x_BxF: jax.Array) -> jax.Array:
    h = x_BxF
    for i, layer in enumerate(self.layers):
      h = layer(h)
      if i < len(self.layers) - 1:
        h = jax.nn.relu(h)
    return h
