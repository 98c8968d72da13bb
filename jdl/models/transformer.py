"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017).

    x = E[src] * sqrt(d) + PE(pos)              (shared source/target embedding E, sinusoidal PE)
    encoder layer:  x = x + Attn(x, x)           masked by padding (and by segment when packed)
                    x = x + FFN(x)
    decoder layer:  y = y + Attn(y, y)           causal
                    y = y + Attn(y, encoder(x))  cross-attention
                    y = y + FFN(y)
    logits = y E^T                               (the output layer is the embedding, transposed)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2

Each `+ f(x)` is post-LN as in the paper (x = LN(x + Dropout(f(x)))) or pre-LN
(x = x + Dropout(f(LN(x))), with a final LN after each stack) by `pre_ln`. The attention is
jdl's one implementation (jdl/models/attention.py). Every weight names its logical axes ('vocab',
'embed', 'heads', 'kv', 'mlp'), so data parallel, FSDP and tensor parallel are config choices.

Rows may be *packed*: several sentence pairs share one row, told apart by segment ids (0 is
padding), and positions restart at 0 for each sentence. Masks then keep every sentence to
itself; an unpacked batch is the special case of one segment per row.

Shape suffixes: B batch, S source positions, T target positions, D d_model, F FFN width,
V vocabulary, H heads, K per-head width.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.models import attention, layers
from jdl.models.attention import constrain


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  vocab_size: int  # shared by source and target
  d_model: int = 512
  n_heads: int = 8
  d_ff: int = 2048
  n_encoder_layers: int = 6
  n_decoder_layers: int = 6
  dropout: float = 0.1  # on embeddings + positions and on every residual branch (the paper's)
  pre_ln: bool = False  # False: the paper's post-LN
  max_len: int = 256  # rows of the sinusoidal table
  ln_epsilon: float = 1e-6
  dtype: str = 'float32'  # compute dtype; parameters stay float32

  @classmethod
  def from_config(cls, model, dtype: str = 'float32') -> TransformerConfig:
    """From a ConfigDict `config.model`; a key that is not a field is a ConfigError."""
    return layers.config_from_section(cls, model, dtype)


@functools.cache
def sinusoidal_positions(max_len: int, d_model: int) -> np.ndarray:
  """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
  pos_Px1 = np.arange(max_len, dtype=np.float64)[:, None]
  freq_D2 = 1.0 / 10000 ** (np.arange(0, d_model, 2, dtype=np.float64) / d_model)
  table = np.zeros((max_len, d_model), np.float64)
  table[:, 0::2] = np.sin(pos_Px1 * freq_D2)
  table[:, 1::2] = np.cos(pos_Px1 * freq_D2)
  return table.astype(np.float32)


def xavier(in_axes, out_axes, batch_axes=()):
  """Glorot-uniform over the named fan axes (the paper's code, tensor2tensor, initialises so);
  per-head kernels have several output (or input) axes, which count together."""
  return nnx.initializers.variance_scaling(
    1.0, 'fan_avg', 'uniform', in_axis=in_axes, out_axis=out_axes, batch_axis=batch_axes
  )


def _attention(cfg: TransformerConfig, self_attention: bool, rules, rngs) -> nnx.Module:
  return attention.MultiHeadAttention(
    cfg.d_model,
    cfg.n_heads,
    self_attention=self_attention,
    dtype=jnp.dtype(cfg.dtype),
    kernel_init=xavier(0, (-2, -1), (1,) if self_attention else ()),
    out_init=xavier((0, 1), 2),
    sharding_rules=rules,
    rngs=rngs,
  )


# ---- masks from segment ids: True where a query may look at a key ------------------------------


def segment_mask(query_segments_BxT: jax.Array, key_segments_BxS: jax.Array) -> jax.Array:
  """[B, 1, T, S]: a query sees the keys of its own sentence; padding (segment 0) is seen by
  nobody. With one sentence per row this is exactly the padding mask."""
  same = query_segments_BxT[:, :, None] == key_segments_BxS[:, None, :]
  return jnp.logical_and(same, key_segments_BxS[:, None, :] > 0)[:, None]


@jax.custom_vjp
def tied_logits(y_BxTxD: jax.Array, embedding_VxD: jax.Array) -> jax.Array:
  """y E^T. The custom gradient computes dE as (y^T g)^T rather than g^T y: the same numbers,
  but XLA:CPU then transposes the small [D, V] result instead of the large [B*T, V] gradient
  (which cost a tenth of a training step)."""
  return jnp.einsum('btd,vd->btv', y_BxTxD, embedding_VxD)


def _tied_forward(y_BxTxD, embedding_VxD):
  return tied_logits(y_BxTxD, embedding_VxD), (y_BxTxD, embedding_VxD)


def _tied_backward(residuals, g_BxTxV):
  y_BxTxD, embedding_VxD = residuals
  dy_BxTxD = jnp.einsum('btv,vd->btd', g_BxTxV, embedding_VxD)
  dE_DxV = jnp.einsum('btd,btv->dv', y_BxTxD, g_BxTxV)
  return dy_BxTxD, dE_DxV.T


tied_logits.defvjp(_tied_forward, _tied_backward)


class FeedForward(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rules, rngs: nnx.Rngs):
    self.rules, self.dtype = rules, jnp.dtype(cfg.dtype)
    zeros = nnx.initializers.zeros_init()
    self.w1 = layers.param(rngs, xavier(0, 1), (cfg.d_model, cfg.d_ff), ('embed', 'mlp'))
    self.b1 = layers.param(rngs, zeros, (cfg.d_ff,), ('mlp',))
    self.w2 = layers.param(rngs, xavier(0, 1), (cfg.d_ff, cfg.d_model), ('mlp', 'embed'))
    self.b2 = layers.param(rngs, zeros, (cfg.d_model,), ('embed',))

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    dt = self.dtype
    h_BxTxF = x_BxTxD.astype(dt) @ self.w1[...].astype(dt) + self.b1[...].astype(dt)
    h_BxTxF = constrain(jax.nn.relu(h_BxTxF), ('batch', None, 'mlp'), self.rules)
    return h_BxTxF @ self.w2[...].astype(dt) + self.b2[...].astype(dt)


class _Residual(nnx.Module):
  """One sub-layer's residual connection with its LayerNorm, post- or pre-LN."""

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    self.pre_ln, self.rate, self.dtype = cfg.pre_ln, cfg.dropout, jnp.dtype(cfg.dtype)
    self.norm = layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs)

  def __call__(self, x_BxTxD, sublayer, key):
    if self.pre_ln:
      out_BxTxD = sublayer(self.norm(x_BxTxD).astype(self.dtype))
      return x_BxTxD + layers.dropout(out_BxTxD, self.rate, key)
    return self.norm(x_BxTxD + layers.dropout(sublayer(x_BxTxD), self.rate, key)).astype(self.dtype)


def _keys(key, n):
  return (None,) * n if key is None else tuple(jax.random.split(key, n))


class EncoderLayer(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rules, rngs: nnx.Rngs):
    self.self_attn = _attention(cfg, True, rules, rngs)
    self.ffn = FeedForward(cfg, rules, rngs)
    self.res_attn, self.res_ffn = _Residual(cfg, rngs), _Residual(cfg, rngs)

  def __call__(self, x_BxSxD, mask, key=None, record=None):
    k1, k2 = _keys(key, 2)
    if record is not None:
      record.append(self.self_attn.weights(self._attn_input(x_BxSxD), mask=mask))
    x_BxSxD = self.res_attn(x_BxSxD, lambda h: self.self_attn(h, mask=mask)[0], k1)
    return self.res_ffn(x_BxSxD, self.ffn, k2)

  def _attn_input(self, x):
    return self.res_attn.norm(x).astype(x.dtype) if self.res_attn.pre_ln else x


class DecoderLayer(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rules, rngs: nnx.Rngs):
    self.self_attn = _attention(cfg, True, rules, rngs)
    self.cross_attn = _attention(cfg, False, rules, rngs)
    self.ffn = FeedForward(cfg, rules, rngs)
    self.res_self, self.res_cross, self.res_ffn = (_Residual(cfg, rngs) for _ in range(3))

  def __call__(
    self,
    y_BxTxD,
    memory_BxSxD,
    self_mask,
    cross_mask,
    key=None,
    cache=None,
    cache_index=0,
    record=None,
  ):
    """With a cache ({'self': KV cache, 'cross': the memory's keys and values}) the T new
    positions start at `cache_index`, and `memory_BxSxD` may be None."""
    k1, k2, k3 = _keys(key, 3)
    self_cache = cross_cache = None
    if cache is not None:
      self_cache, cross_cache = cache['self'], cache['cross']
    new_self = None

    def self_attention(h):
      nonlocal new_self
      out, new_self = self.self_attn(
        h, mask=self_mask, causal=True, cache=self_cache, cache_index=cache_index
      )
      return out

    y_BxTxD = self.res_self(y_BxTxD, self_attention, k1)
    if record is not None:
      h = self.res_cross.norm(y_BxTxD).astype(y_BxTxD.dtype) if self.res_cross.pre_ln else y_BxTxD
      record.append(self.cross_attn.weights(h, memory_BxSxD, mask=cross_mask, cache=cross_cache))
    y_BxTxD = self.res_cross(
      y_BxTxD, lambda h: self.cross_attn(h, memory_BxSxD, mask=cross_mask, cache=cross_cache)[0], k2
    )
    y_BxTxD = self.res_ffn(y_BxTxD, self.ffn, k3)
    new_cache = None if cache is None else {'self': new_self, 'cross': cross_cache}
    return y_BxTxD, new_cache


class Transformer(nnx.Module):
  def __init__(
    self, cfg: TransformerConfig, *, sharding_rules: Sequence | None = None, rngs: nnx.Rngs
  ):
    self.cfg = cfg
    self.rules = tuple(sharding_rules) if sharding_rules else None
    self.dtype = jnp.dtype(cfg.dtype)
    # N(0, d^-1/2), scaled by sqrt(d) on the way in: inputs of unit variance, and logits of
    # the tied output layer that start small.
    self.embedding = layers.param(
      rngs,
      nnx.initializers.normal(cfg.d_model**-0.5),
      (cfg.vocab_size, cfg.d_model),
      ('vocab', 'embed'),
    )
    self.encoder = nnx.List(
      [EncoderLayer(cfg, self.rules, rngs) for _ in range(cfg.n_encoder_layers)]
    )
    self.decoder = nnx.List(
      [DecoderLayer(cfg, self.rules, rngs) for _ in range(cfg.n_decoder_layers)]
    )
    # Pre-LN leaves each stack's output un-normalised: a final LayerNorm closes it.
    self.encoder_norm = layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs) if cfg.pre_ln else None
    self.decoder_norm = layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs) if cfg.pre_ln else None

  def embed(self, tokens_BxT: jax.Array, positions_BxT: jax.Array, key=None) -> jax.Array:
    x = jnp.take(self.embedding[...], tokens_BxT, axis=0) * math.sqrt(self.cfg.d_model)
    # The sinusoids are a constant of the compiled program, not a parameter.
    table = jnp.asarray(sinusoidal_positions(self.cfg.max_len, self.cfg.d_model))
    x = x + jnp.take(table, positions_BxT, axis=0)
    x = constrain(x.astype(self.dtype), ('batch', None, 'embed'), self.rules)
    return layers.dropout(x, self.cfg.dropout, key)

  def encode(
    self,
    src_BxS: jax.Array,
    src_segments_BxS: jax.Array,
    src_positions_BxS: jax.Array | None = None,
    *,
    dropout_key=None,
    record: list | None = None,
  ) -> jax.Array:
    """The encoder's output ("memory") [B, S, D]. `record`, a list, receives each layer's
    self-attention weights [B, H, S, S]."""
    if src_positions_BxS is None:
      src_positions_BxS = jnp.broadcast_to(jnp.arange(src_BxS.shape[1]), src_BxS.shape)
    keys = _keys(dropout_key, len(self.encoder) + 1)
    x_BxSxD = self.embed(src_BxS, src_positions_BxS, keys[0])
    mask = segment_mask(src_segments_BxS, src_segments_BxS)
    for layer, key in zip(self.encoder, keys[1:]):
      x_BxSxD = constrain(layer(x_BxSxD, mask, key, record), ('batch', None, 'embed'), self.rules)
    if self.encoder_norm is not None:
      x_BxSxD = self.encoder_norm(x_BxSxD).astype(self.dtype)
    return x_BxSxD

  def logits(self, y_BxTxD: jax.Array) -> jax.Array:
    if self.decoder_norm is not None:
      y_BxTxD = self.decoder_norm(y_BxTxD).astype(self.dtype)
    logits_BxTxV = tied_logits(y_BxTxD, self.embedding[...].astype(self.dtype))
    return constrain(logits_BxTxV, ('batch', None, 'vocab'), self.rules)

  def decode(
    self,
    tgt_BxT: jax.Array,
    memory_BxSxD: jax.Array | None,
    *,
    cross_mask: jax.Array,
    self_mask: jax.Array | None = None,
    tgt_positions_BxT: jax.Array | None = None,
    dropout_key=None,
    cache: list | None = None,
    cache_index: jax.Array | int = 0,
    record: list | None = None,
  ):
    """Logits [B, T, V]; with a cache (`init_cache`), (logits, updated cache), the T tokens
    being positions cache_index ... cache_index + T - 1. `record` receives each layer's
    cross-attention weights [B, H, T, S]."""
    T = tgt_BxT.shape[1]
    if tgt_positions_BxT is None:
      positions_T = jnp.asarray(cache_index, jnp.int32) + jnp.arange(T, dtype=jnp.int32)
      tgt_positions_BxT = jnp.broadcast_to(positions_T, tgt_BxT.shape)
    keys = _keys(dropout_key, len(self.decoder) + 1)
    y_BxTxD = self.embed(tgt_BxT, tgt_positions_BxT, keys[0])
    new_cache = []
    for i, (layer, key) in enumerate(zip(self.decoder, keys[1:])):
      y_BxTxD, layer_cache = layer(
        y_BxTxD,
        memory_BxSxD,
        self_mask,
        cross_mask,
        key,
        None if cache is None else cache[i],
        cache_index,
        record,
      )
      y_BxTxD = constrain(y_BxTxD, ('batch', None, 'embed'), self.rules)
      new_cache.append(layer_cache)
    logits_BxTxV = self.logits(y_BxTxD)
    return logits_BxTxV if cache is None else (logits_BxTxV, new_cache)

  def init_cache(self, memory_BxSxD: jax.Array, max_len: int) -> list:
    """Per decoder layer: an empty self-attention KV cache of `max_len` positions and the
    memory's cross-attention keys and values, projected once for the whole decoding."""
    c = self.cfg
    B = memory_BxSxD.shape[0]
    return [
      {
        'self': attention.init_cache(B, max_len, c.n_heads, c.d_model // c.n_heads, self.dtype),
        'cross': layer.cross_attn.project_context(memory_BxSxD),
      }
      for layer in self.decoder
    ]

  def __call__(
    self,
    src_BxS,
    tgt_in_BxT,
    *,
    src_segments_BxS,
    tgt_segments_BxT,
    src_positions_BxS=None,
    tgt_positions_BxT=None,
    dropout_key=None,
  ) -> jax.Array:
    """Teacher-forced logits [B, T, V] of a (possibly packed) batch."""
    enc_key = dec_key = None
    if dropout_key is not None:
      enc_key, dec_key = jax.random.split(dropout_key)
    memory_BxSxD = self.encode(src_BxS, src_segments_BxS, src_positions_BxS, dropout_key=enc_key)
    return self.decode(
      tgt_in_BxT,
      memory_BxSxD,
      cross_mask=segment_mask(tgt_segments_BxT, src_segments_BxS),
      self_mask=segment_mask(tgt_segments_BxT, tgt_segments_BxT),
      tgt_positions_BxT=tgt_positions_BxT,
      dropout_key=dec_key,
    )
