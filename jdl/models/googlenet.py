"""GoogLeNet (Szegedy et al. 2014, "Going deeper with convolutions"), as the paper's Table 1 gives
it: a stem, inception modules 3a-5b, two auxiliary classifiers on 4a and 4d (training only),
dropout 0.4 and global average pooling.

Variants (config `variant`):
  'paper':     convolutions with biases, local response normalisation in the stem, true 5x5
               convolutions in the 5x5 branch, no batch norm.
  'batchnorm': every convolution followed by batch norm (no bias, no LRN), and the 5x5 branch
               with a 3x3 kernel, as torchvision's GoogLeNet has it.
Stems (config `stem`): 'imagenet' (7x7/2 conv, pools; 224x224 input) or 'small' for 28x28 images
(3x3/1 conv, one pool less), which keeps every inception module's widths.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models.cnn import conv, dense, max_pool

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION = {
  '3a': (64, 96, 128, 16, 32, 32),
  '3b': (128, 128, 192, 32, 96, 64),
  '4a': (192, 96, 208, 16, 48, 64),
  '4b': (160, 112, 224, 24, 64, 64),
  '4c': (128, 128, 256, 24, 64, 64),
  '4d': (112, 144, 288, 32, 64, 64),
  '4e': (256, 160, 320, 32, 128, 128),
  '5a': (256, 160, 320, 32, 128, 128),
  '5b': (384, 192, 384, 48, 128, 128),
}
# Table 1's "params" column (thousands), for `jdl params` to print beside the exact count.
TABLE1_PARAMS_K = {
  'stem': 2.7 + 112,
  '3a': 159,
  '3b': 380,
  '4a': 364,
  '4b': 437,
  '4c': 463,
  '4d': 580,
  '4e': 840,
  '5a': 1072,
  '5b': 1388,
  'classifier': 1000,
}


def local_response_norm(
  x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> jax.Array:
  """AlexNet's LRN across channels, which the paper's stem uses (no parameters)."""
  sq = jnp.square(x)
  pad = size // 2
  summed = jax.lax.reduce_window(
    sq, 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1), ((0, 0), (0, 0), (0, 0), (pad, pad))
  )
  return x / (k + alpha / size * summed) ** beta


class ConvUnit(nnx.Module):
  """Convolution, then batch norm (batchnorm variant) or bias (paper), then ReLU."""

  def __init__(self, n_in, n_out, kernel, *, stride=1, batchnorm: bool, dtype, rngs):
    self.conv = conv(n_in, n_out, kernel, stride=stride, bias=not batchnorm, dtype=dtype, rngs=rngs)
    self.norm = (
      nnx.BatchNorm(n_out, epsilon=1e-3, momentum=0.9, dtype=dtype, rngs=rngs)
      if batchnorm
      else None
    )

  def __call__(self, x):
    h = self.conv(x)
    if self.norm is not None:
      h = self.norm(h)
    return jax.nn.relu(h)


class Inception(nnx.Module):
  """Four branches concatenated on channels: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1."""

  def __init__(self, n_in, widths, *, batchnorm, dtype, rngs):
    c1, r3, c3, r5, c5, pool = widths
    unit = lambda a, b, k: ConvUnit(a, b, k, batchnorm=batchnorm, dtype=dtype, rngs=rngs)
    self.branch1 = unit(n_in, c1, 1)
    self.branch3 = nnx.Sequential(unit(n_in, r3, 1), unit(r3, c3, 3))
    self.branch5 = nnx.Sequential(unit(n_in, r5, 1), unit(r5, c5, 3 if batchnorm else 5))
    self.branch_pool = unit(n_in, pool, 1)
    self.out_channels = c1 + c3 + c5 + pool

  def __call__(self, x):
    pooled = max_pool(x, 3, 1, 'SAME')
    return jnp.concatenate(
      [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(pooled)], axis=-1
    )


class AuxClassifier(nnx.Module):
  """Paper section 5: 5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7, linear."""

  def __init__(self, n_in, side, num_classes, *, batchnorm, dtype, rngs):
    self.window = min(5, side)
    pooled = (side - self.window) // 3 + 1
    self.conv = ConvUnit(n_in, 128, 1, batchnorm=batchnorm, dtype=dtype, rngs=rngs)
    self.fc = dense(pooled * pooled * 128, 1024, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(0.7)
    self.out = dense(1024, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x, *, train, rngs):
    h = nnx.avg_pool(x, (self.window, self.window), (3, 3), 'VALID')
    h = self.conv(h).reshape(x.shape[0], -1)
    h = self.dropout(jax.nn.relu(self.fc(h)), deterministic=not train, rngs=rngs)
    return self.out(h)


class GoogLeNet(nnx.Module):
  def __init__(
    self,
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int = 224,
    *,
    variant: str = 'paper',
    stem: str = 'imagenet',
    aux_heads: bool = True,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    if variant not in ('paper', 'batchnorm') or stem not in ('imagenet', 'small'):
      raise ValueError(
        f"GoogLeNet: variant must be 'paper' or 'batchnorm' (got {variant!r}), "
        f"stem 'imagenet' or 'small' (got {stem!r})"
      )
    bn = variant == 'batchnorm'
    self.lrn = not bn
    self.stem_kind = stem
    unit = lambda a, b, k, s=1: ConvUnit(a, b, k, stride=s, batchnorm=bn, dtype=dtype, rngs=rngs)
    if stem == 'imagenet':
      self.stem_conv = unit(in_channels, 64, 7, 2)
      side = math.ceil(math.ceil(image_size / 2) / 2)  # conv /2, pool /2
    else:
      self.stem_conv = unit(in_channels, 64, 3)
      side = math.ceil(image_size / 2)  # pool /2
    self.stem_reduce = unit(64, 64, 1)
    self.stem_conv3 = unit(64, 192, 3)
    side = math.ceil(side / 2)  # the stem's last pool: 28 for ImageNet, 7 for 28x28 input
    blocks, n_in = {}, 192
    for name, widths in INCEPTION.items():
      blocks[name] = Inception(n_in, widths, batchnorm=bn, dtype=dtype, rngs=rngs)
      n_in = blocks[name].out_channels
    self.blocks = nnx.Dict(blocks)
    side4 = math.ceil(side / 2)
    self.aux = (
      nnx.Dict(
        {
          '4a': AuxClassifier(512, side4, num_classes, batchnorm=bn, dtype=dtype, rngs=rngs),
          '4d': AuxClassifier(528, side4, num_classes, batchnorm=bn, dtype=dtype, rngs=rngs),
        }
      )
      if aux_heads
      else None
    )
    self.dropout = nnx.Dropout(0.4)
    self.classifier = dense(1024, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxHxWxC: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None):
    """Logits; in training, also the auxiliary heads' logits {'4a': ..., '4d': ...}."""
    h = self.stem_conv(x_BxHxWxC)
    h = max_pool(h, 3, 2, 'SAME')
    if self.lrn:
      h = local_response_norm(h)
    h = self.stem_conv3(self.stem_reduce(h))
    if self.lrn:
      h = local_response_norm(h)
    h = max_pool(h, 3, 2, 'SAME')
    aux = {}
    for name, block in self.blocks.items():
      if name in ('4a', '5a'):
        h = max_pool(h, 3, 2, 'SAME')
      h = block(h)
      if train and self.aux is not None and name in self.aux:
        aux[name] = self.aux[name](h, train=train, rngs=rngs)
    h = h.mean(axis=(1, 2))  # global average pooling (7x7 at 224x224 input)
    logits = self.classifier(self.dropout(h, deterministic=not train, rngs=rngs))
    return (logits, aux) if train else logits
