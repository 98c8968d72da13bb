"""CycleGAN (Zhu et al. 2017): two ResNet generators (A -> B and B -> A), two PatchGAN
discriminators, and the pool of previously generated images that the discriminators train on.

The generator is the paper's (after Johnson et al. 2016): c7s1-f, d2f, d4f, R4f x n, u2f, uf,
c7s1-C, i.e. a 7x7 convolution, two stride-2 downsamplings, n residual blocks, two stride-1/2
upsamplings (sub-pixel convolutions, see jdl.models.gan.Upsample) and a 7x7 convolution to the
image's channels with tanh; instance norm and ReLU after every convolution but the last; reflection
padding where the paper uses it. f = 64 and n = 9 at 256x256. The discriminator is the 70x70
PatchGAN: C64-C128-C256-C512 (4x4 convolutions, stride 2 for the first three, leaky ReLU 0.2,
instance norm from the second on) and a 4x4 convolution to one least-squares score per patch.
`downsamplings` scales it to small images: at 28x28, two stride-2 layers leave a 5x5 map of scores
(each patch 34x34, clipped at the border).

Instance norm carries no scale or shift, as in the paper's code (`affine=False`); weights are drawn
from N(0, 0.02)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models.gan import Upsample, conv


class ImagePool(nnx.Variable):
  """The pool's contents: part of the state (checkpointed, sharded, donated), never a
  parameter, so no optimizer touches it."""


def instance_norm(x_BxHxWxC: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Each image's channels normalised over their own pixels (Ulyanov et al. 2016)."""
  x = x_BxHxWxC.astype(jnp.float32)
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  return ((x - mean) * jax.lax.rsqrt(var + eps)).astype(x_BxHxWxC.dtype)


def reflect(x_BxHxWxC: jax.Array, pad: int) -> jax.Array:
  return jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


class ResidualBlock(nnx.Module):
  """x + IN(conv3x3(ReLU(IN(conv3x3(x))))), both convolutions reflection-padded."""

  def __init__(self, features: int, *, dtype, rngs: nnx.Rngs):
    self.conv1 = conv(features, features, 3, padding='VALID', dtype=dtype, rngs=rngs)
    self.conv2 = conv(features, features, 3, padding='VALID', dtype=dtype, rngs=rngs)

  def __call__(self, x):
    h = jax.nn.relu(instance_norm(self.conv1(reflect(x, 1))))
    return x + instance_norm(self.conv2(reflect(h, 1)))


class ResnetGenerator(nnx.Module):
  def __init__(
    self,
    channels: int = 3,
    features: int = 64,
    blocks: int = 9,
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    f = features
    c = lambda a, b, k, **kw: conv(a, b, k, dtype=dtype, rngs=rngs, **kw)
    self.stem = c(channels, f, 7, padding='VALID')
    self.down = nnx.List(
      [
        c(f, 2 * f, 3, stride=2, padding=((1, 1), (1, 1))),
        c(2 * f, 4 * f, 3, stride=2, padding=((1, 1), (1, 1))),
      ]
    )
    self.blocks = nnx.List([ResidualBlock(4 * f, dtype=dtype, rngs=rngs) for _ in range(blocks)])
    self.up = nnx.List(
      [Upsample(4 * f, 2 * f, dtype=dtype, rngs=rngs), Upsample(2 * f, f, dtype=dtype, rngs=rngs)]
    )
    self.out = c(f, channels, 7, padding='VALID')

  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    h = jax.nn.relu(instance_norm(self.stem(reflect(x_BxHxWxC, 3))))
    for layer in self.down:
      h = jax.nn.relu(instance_norm(layer(h)))
    for block in self.blocks:
      h = block(h)
    for layer in self.up:
      h = jax.nn.relu(instance_norm(layer(h)))
    return jnp.tanh(self.out(reflect(h, 3)))


class PatchDiscriminator(nnx.Module):
  def __init__(
    self,
    channels: int = 3,
    features: int = 64,
    downsamplings: int = 3,
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    pad = ((1, 1), (1, 1))
    widths = [channels] + [features * min(2**i, 8) for i in range(downsamplings + 1)]
    self.layers = nnx.List(
      [
        conv(a, b, 4, stride=2 if i < downsamplings else 1, padding=pad, dtype=dtype, rngs=rngs)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
      ]
    )
    self.out = conv(widths[-1], 1, 4, padding=pad, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """One score per patch, [B, H', W']."""
    h = x_BxHxWxC
    for i, layer in enumerate(self.layers):
      h = layer(h)
      if i > 0:
        h = instance_norm(h)
      h = jax.nn.leaky_relu(h, 0.2)
    return self.out(h)[..., 0]


def query_pool(
  pool_NxHxWxC: jax.Array, count: jax.Array, new_BxHxWxC: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The paper's image buffer (Shrivastava et al. 2017), one generated image at a time.

  While the pool holds fewer than N images, a new image is stored and handed back as it is.
  Once full, with probability 1/2 a random stored image is handed back and the new one takes
  its slot; otherwise the new image is handed back and the pool stays. So the discriminator sees
  a mix of the current generator's images and those of earlier generators, which damps the
  oscillation of the two players. Returns (pool, count, images for the discriminator).
  """
  size = pool_NxHxWxC.shape[0]

  def one(carry, inputs):
    pool, count = carry
    image, k = inputs
    k_coin, k_slot = jax.random.split(k)
    full = count >= size
    swap = full & jax.random.bernoulli(k_coin)
    slot = jnp.where(full, jax.random.randint(k_slot, (), 0, size), count)
    out = jnp.where(swap, pool[slot], image)
    stored = jnp.where(full & ~swap, pool[slot], image)  # a full pool keeps its image on tails
    pool = jax.lax.dynamic_update_index_in_dim(pool, stored.astype(pool.dtype), slot, 0)
    return (pool, jnp.minimum(count + 1, size)), out

  keys = jax.random.split(key, new_BxHxWxC.shape[0])
  (pool, count), out = jax.lax.scan(one, (pool_NxHxWxC, count), (new_BxHxWxC, keys))
  return pool, count, out


class CycleGAN(nnx.Module):
  """Both generators, both discriminators and both pools; one split gives params
  {'generator': {'a_to_b', 'b_to_a'}, 'discriminator': {'a', 'b'}} and the pools as state."""

  def __init__(
    self,
    channels: int = 3,
    image_size: int = 256,
    gen_features: int = 64,
    gen_blocks: int = 9,
    disc_features: int = 64,
    disc_downsamplings: int = 3,
    pool_size: int = 50,
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    gen = lambda: ResnetGenerator(channels, gen_features, gen_blocks, dtype=dtype, rngs=rngs)
    disc = lambda: PatchDiscriminator(
      channels, disc_features, disc_downsamplings, dtype=dtype, rngs=rngs
    )
    self.generator = nnx.Dict({'a_to_b': gen(), 'b_to_a': gen()})
    self.discriminator = nnx.Dict({'a': disc(), 'b': disc()})
    # Pool a holds generated images of domain A (from b_to_a), for discriminator a.
    shape = (pool_size, image_size, image_size, channels)
    self.pool = nnx.Dict({d: ImagePool(jnp.zeros(shape, jnp.float32)) for d in ('a', 'b')})
    self.pool_count = nnx.Dict({d: ImagePool(jnp.zeros((), jnp.int32)) for d in ('a', 'b')})
