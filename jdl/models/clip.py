"""A small CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"): an image encoder and a text encoder, each projected into one shared space, trained
so that an image and the text that describes it are close.

    I_f = image_encoder(I)        [B, W_i]     jdl's simple convnet (jdl.models.cnn) + Dense, ReLU
    T_f = text_encoder(T)         [B, D]       Transformer encoder (jdl.models.transformer), mean
                                               over the real tokens
    I_e = l2_normalize(I_f W_i)   [B, E]       linear projections, no bias (as CLIP)
    T_e = l2_normalize(T_f W_t)   [B, E]
    logits = exp(t) I_e T_e^T     [B, B]       t the learned log inverse temperature, init
                                               log(1/0.07), exp(t) clipped at 100 (CLIP's clip)

The loss is CLIP's symmetric cross-entropy over the rows and the columns of `logits`, with
multi-positive targets: with only a few classes, several texts in a batch describe the class of
image i, and they are positives, not negatives:

    P_ij = [y_i = y_j] / sum_k [y_i = y_k]
    loss = 1/2 (mean_i CE(logits_i., P_i.) + mean_j CE(logits_.j, P_.j))

With one class per pair (all labels distinct) this is exactly CLIP's loss. The batch is the
global batch: under `jit` with the batch split over the mesh's data axis, the [B, B] matrix needs
every device's embeddings, and XLA gathers them, as CLIP gathers its features across GPUs.

Shape suffixes: B batch, L text positions, D text width, W image feature width, E shared width.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models import layers
from jdl.models.cnn import conv, dense, max_pool
from jdl.models.transformer import EncoderLayer, TransformerConfig, sinusoidal_positions


@dataclasses.dataclass(frozen=True)
class ClipConfig:
  vocab_size: int
  embed_dim: int = 128  # E, the shared space
  image_width: int = 256  # W, the image features (what the linear probe reads)
  d_model: int = 128  # D, the text encoder
  n_heads: int = 4
  d_ff: int = 512
  n_layers: int = 2
  max_len: int = 64
  dropout: float = 0.1
  init_temperature: float = 0.07
  max_logit_scale: float = 100.0
  dtype: str = 'float32'

  @classmethod
  def from_config(cls, model, dtype: str = 'float32') -> ClipConfig:
    return layers.config_from_section(cls, model, dtype)

  def text_config(self) -> TransformerConfig:
    return TransformerConfig(
      vocab_size=self.vocab_size,
      d_model=self.d_model,
      n_heads=self.n_heads,
      d_ff=self.d_ff,
      n_encoder_layers=self.n_layers,
      n_decoder_layers=0,
      dropout=self.dropout,
      pre_ln=True,
      max_len=self.max_len,
      dtype=self.dtype,
    )


class ImageEncoder(nnx.Module):
  """Conv 32 3x3, MaxPool, Conv 64 3x3, MaxPool, Flatten, Dense W, ReLU: the simple convnet's
  body with a feature layer in place of its classifier."""

  def __init__(self, width: int, image_size: int = 28, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.conv1 = conv(1, 32, 3, padding='VALID', dtype=dtype, rngs=rngs)
    self.conv2 = conv(32, 64, 3, padding='VALID', dtype=dtype, rngs=rngs)
    side = ((image_size - 2) // 2 - 2) // 2
    self.fc = dense(side * side * 64, width, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxHxWx1: jax.Array) -> jax.Array:
    h = max_pool(jax.nn.relu(self.conv1(x_BxHxWx1)), 2, 2)
    h = max_pool(jax.nn.relu(self.conv2(h)), 2, 2)
    return jax.nn.relu(self.fc(h.reshape(h.shape[0], -1)))


class TextEncoder(nnx.Module):
  """x = E[tokens] sqrt(D) + PE; pre-LN Transformer encoder layers over the real tokens (PAD = 0
  masked as keys); final LayerNorm; the mean over the real tokens."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embedding = layers.param(
      rngs,
      nnx.initializers.normal(cfg.d_model**-0.5),
      (cfg.vocab_size, cfg.d_model),
      ('vocab', 'embed'),
    )
    self.layers = nnx.List([EncoderLayer(cfg, None, rngs) for _ in range(cfg.n_encoder_layers)])
    self.norm = layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs)

  def __call__(self, tokens_BxL: jax.Array, key: jax.Array | None = None) -> jax.Array:
    cfg = self.cfg
    valid_BxL = tokens_BxL > 0
    keys = (
      (None,) * (len(self.layers) + 1)
      if key is None
      else jax.random.split(key, len(self.layers) + 1)
    )
    x_BxLxD = jnp.take(self.embedding[...], tokens_BxL, axis=0) * math.sqrt(cfg.d_model)
    x_BxLxD = (
      x_BxLxD + jnp.asarray(sinusoidal_positions(cfg.max_len, cfg.d_model))[: tokens_BxL.shape[1]]
    )
    x_BxLxD = layers.dropout(x_BxLxD.astype(jnp.dtype(cfg.dtype)), cfg.dropout, keys[0])
    mask = jnp.logical_and(valid_BxL[:, None, :, None], valid_BxL[:, None, None, :])
    for layer, k in zip(self.layers, keys[1:]):
      x_BxLxD = layer(x_BxLxD, mask, k)
    x_BxLxD = self.norm(x_BxLxD)
    w_BxL = valid_BxL.astype(jnp.float32)
    return (x_BxLxD * w_BxL[..., None]).sum(1) / jnp.maximum(w_BxL.sum(1, keepdims=True), 1.0)


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  return x / jnp.sqrt(jnp.maximum((x * x).sum(-1, keepdims=True), eps * eps))


class Clip(nnx.Module):
  def __init__(self, cfg: ClipConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dtype = jnp.dtype(cfg.dtype)
    self.image_encoder = ImageEncoder(cfg.image_width, dtype=dtype, rngs=rngs)
    self.text_encoder = TextEncoder(cfg.text_config(), rngs=rngs)
    init = nnx.initializers.lecun_normal()
    self.image_projection = layers.param(
      rngs, init, (cfg.image_width, cfg.embed_dim), ('mlp', 'embed')
    )
    self.text_projection = layers.param(rngs, init, (cfg.d_model, cfg.embed_dim), ('mlp', 'embed'))
    # t = log(1 / temperature): CLIP learns it in log space, from 1/0.07.
    self.log_scale = nnx.Param(jnp.asarray(math.log(1 / cfg.init_temperature), jnp.float32))

  def image_features(self, images_BxHxWx1: jax.Array) -> jax.Array:
    """[B, W]: the features before the projection (what a linear probe reads)."""
    return self.image_encoder(images_BxHxWx1)

  def embed_images(self, images_BxHxWx1: jax.Array) -> jax.Array:
    """[B, E], unit length."""
    f = self.image_features(images_BxHxWx1).astype(jnp.float32)
    return l2_normalize(f @ self.image_projection[...])

  def embed_texts(self, tokens_BxL: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """[B, E], unit length."""
    f = self.text_encoder(tokens_BxL, key).astype(jnp.float32)
    return l2_normalize(f @ self.text_projection[...])

  def logit_scale(self) -> jax.Array:
    """exp(t), clipped to at most max_logit_scale (CLIP clamps at 100 "to prevent scaling the
    logits by more than 100"); past the clip its gradient is 0."""
    return jnp.exp(jnp.minimum(self.log_scale[...], math.log(self.cfg.max_logit_scale)))

  def __call__(self, images_BxHxWx1, tokens_BxL, key=None):
    """(image embeddings [B, E], text embeddings [B, E], logit scale)."""
    return self.embed_images(images_BxHxWx1), self.embed_texts(tokens_BxL, key), self.logit_scale()


def contrastive_loss(
  image_BxE: jax.Array,
  text_BxE: jax.Array,
  labels_B: jax.Array,
  scale: jax.Array,
  mask_B: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """CLIP's symmetric InfoNCE with multi-positive targets (module doc). Rows with mask 0
  (evaluation padding) are neither queries nor candidates. Returns (loss, logits [B, B])."""
  B = image_BxE.shape[0]
  mask_B = jnp.ones((B,), jnp.float32) if mask_B is None else mask_B.astype(jnp.float32)
  logits_BxB = scale * image_BxE.astype(jnp.float32) @ text_BxE.astype(jnp.float32).T
  real_BxB = mask_B[:, None] * mask_B[None, :]
  positive_BxB = (labels_B[:, None] == labels_B[None, :]).astype(jnp.float32) * real_BxB
  # Padded candidates get a large negative logit: no probability, no gradient.
  logits_BxB = jnp.where(real_BxB > 0, logits_BxB, -1e9)

  def cross_entropy(logits, positive):  # over the last axis
    target = positive / jnp.maximum(positive.sum(-1, keepdims=True), 1.0)
    return -(target * jax.nn.log_softmax(logits, axis=-1)).sum(-1)

  n = jnp.maximum(mask_B.sum(), 1.0)
  image_to_text = (cross_entropy(logits_BxB, positive_BxB) * mask_B).sum() / n
  text_to_image = (cross_entropy(logits_BxB.T, positive_BxB.T) * mask_B).sum() / n
  return (image_to_text + text_to_image) / 2, logits_BxB
