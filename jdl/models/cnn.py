"""The Keras "simple convnet" for 28x28 images: Conv 32 3x3, MaxPool, Conv 64 3x3, MaxPool,
Flatten, Dropout 0.5, Dense 10 (34,826 parameters for one input channel and 10 classes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def conv(
  n_in: int,
  n_out: int,
  kernel: int,
  *,
  stride: int = 1,
  padding='SAME',
  bias=True,
  dtype=jnp.float32,
  rngs: nnx.Rngs,
) -> nnx.Conv:
  """A convolution whose kernel names its axes, so tensor parallel can split output channels."""
  return nnx.Conv(
    n_in,
    n_out,
    (kernel, kernel),
    strides=(stride, stride),
    padding=padding,
    use_bias=bias,
    dtype=dtype,
    param_dtype=jnp.float32,
    rngs=rngs,
    kernel_init=nnx.with_partitioning(
      nnx.initializers.glorot_uniform(), (None, None, 'conv_in', 'conv_out')
    ),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('conv_out',)),
  )


def dense(n_in: int, n_out: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(
    n_in,
    n_out,
    dtype=dtype,
    param_dtype=jnp.float32,
    rngs=rngs,
    kernel_init=nnx.with_partitioning(nnx.initializers.glorot_uniform(), ('embed', 'vocab')),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('vocab',)),
  )


def max_pool(x_BxHxWxC: jax.Array, window: int, stride: int, padding: str = 'VALID') -> jax.Array:
  """Max pooling. Non-overlapping windows (window == stride, 'VALID', as the simple convnet's
  2x2 pools) are a reshape and a max over the window axes: the same values and gradients as
  `reduce_window`, but the gradient is a plain comparison instead of XLA's select-and-scatter,
  which is slow on CPU (the simple convnet's training step is about 30% faster)."""
  if window != stride or padding != 'VALID':
    return nnx.max_pool(x_BxHxWxC, (window, window), (stride, stride), padding)
  B, H, W, C = x_BxHxWxC.shape
  h, w = H // window, W // window  # 'VALID' drops the last rows/columns that fill no window
  x = x_BxHxWxC[:, : h * window, : w * window]
  return x.reshape(B, h, window, w, window, C).max(axis=(2, 4))


class SimpleConvNet(nnx.Module):
  def __init__(
    self,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.conv1 = conv(in_channels, 32, 3, padding='VALID', dtype=dtype, rngs=rngs)
    self.conv2 = conv(32, 64, 3, padding='VALID', dtype=dtype, rngs=rngs)
    side = ((image_size - 2) // 2 - 2) // 2  # 28 -> 26 -> 13 -> 11 -> 5
    self.dropout = nnx.Dropout(0.5)
    self.head = dense(side * side * 64, num_classes, dtype=dtype, rngs=rngs)

  def features(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """The penultimate layer: the flattened convolutional features the Dense layer reads
    ([B, 1600] at 28x28), used to score generated images (jdl.generative.scoring)."""
    h = max_pool(jax.nn.relu(self.conv1(x_BxHxWxC)), 2, 2)
    h = max_pool(jax.nn.relu(self.conv2(h)), 2, 2)
    return h.reshape(h.shape[0], -1)

  def __call__(
    self, x_BxHxWxC: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None
  ) -> jax.Array:
    h = self.dropout(self.features(x_BxHxWxC), deterministic=not train, rngs=rngs)
    return self.head(h)
