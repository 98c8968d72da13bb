"""The Keras "simple convnet" for 28x28 images: Conv 32 3x3, MaxPool, Conv 64 3x3, MaxPool,
Flatten, Dropout 0.5, Dense 10 (34,826 parameters for one input channel and 10 classes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def conv(n_in: int, n_out: int, kernel: int, *, stride: int = 1, padding='SAME', bias=True,
         dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Conv:
  """A convolution whose kernel names its axes, so tensor parallel can split output channels."""
  return nnx.Conv(n_in, n_out, (kernel, kernel), strides=(stride, stride), padding=padding,
                  use_bias=bias, dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
                  kernel_init=nnx.with_partitioning(nnx.initializers.glorot_uniform(),
                                                    (None, None, 'conv_in', 'conv_out')),
                  bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('conv_out',)))


def dense(n_in: int, n_out: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(n_in, n_out, dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
                    kernel_init=nnx.with_partitioning(nnx.initializers.glorot_uniform(),
                                                      ('embed', 'vocab')),
                    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('vocab',)))


def max_pool(x: jax.Array, window: int, stride: int, padding: str = 'VALID') -> jax.Array:
  return nnx.max_pool(x, (window, window), (stride, stride), padding)


class SimpleConvNet(nnx.Module):

  def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, *,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.conv1 = conv(in_channels, 32, 3, padding='VALID', dtype=dtype, rngs=rngs)
    self.conv2 = conv(32, 64, 3, padding='VALID', dtype=dtype, rngs=rngs)
    side = ((image_size - 2) // 2 - 2) // 2  # 28 -> 26 -> 13 -> 11 -> 5
    self.dropout = nnx.Dropout(0.5)
    self.head = dense(side * side * 64, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxHxWxC: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    h = max_pool(jax.nn.relu(self.conv1(x_BxHxWxC)), 2, 2)
    h = max_pool(jax.nn.relu(self.conv2(h)), 2, 2)
    h = h.reshape(h.shape[0], -1)
    h = self.dropout(h, deterministic=not train, rngs=rngs)
    return self.head(h)
