"""Scaled dot-product attention, multi-head, with padding and causal masks and a KV cache.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

This is the one attention of jdl: the GPT decoder uses it as causal self-attention, and the
encoder-decoder Transformer (jdl/models/transformer.py) uses the same module for encoder
self-attention (padding mask), causal decoder self-attention and cross-attention
(`self_attention=False`, keys and values from the encoder, projected once when decoding).

Shape suffixes: B batch, T query positions, S key positions, H heads, K per-head width
(d_k = d_model / H), D model width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jdl import sharding
from jdl.models import fused_attention

# Shardings come from the config's rules when the loop places the state, not at construction.
nnx.use_eager_sharding(False)

# A hook sees an activation by name and returns it (or a replacement): how jdl.models.hooks
# caches and patches a model's insides. Modules take `hooks=None`, which leaves the computation
# as it is; with hooks, each call site is one Python call while tracing and nothing else.
Hooks = Callable[[str, jax.Array], jax.Array]

# ---- activation sharding -----------------------------------------------------------------------


def constrain(x: jax.Array, logical: tuple, rules: Sequence | None) -> jax.Array:
  """Pins an activation's sharding by logical axis names (the weights' rules), so that the
  compiler keeps e.g. heads split over 'tensor' rather than gathering them. A no-op without
  rules or outside a mesh (unit tests, `jdl params`, sampling on one device)."""
  if rules is None:
    return x
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return x
  spec = sharding.logical_to_spec(logical, x.shape, rules, mesh)
  return jax.lax.with_sharding_constraint(x, spec)


# ---- masks: True where a query may look at a key ---------------------------------------------


def causal_mask(query_positions_T: jax.Array, key_positions_S: jax.Array) -> jax.Array:
  """[1, 1, T, S]: query t sees key s only if s <= t (no position attends to the future).

  Positions rather than lengths, so that the same rule serves a full sequence (both 0..T-1) and
  a decoding step whose queries sit at cache offsets."""
  return (key_positions_S[None, :] <= query_positions_T[:, None])[None, None]


def padding_mask(key_valid_BxS: jax.Array) -> jax.Array:
  """[B, 1, 1, S]: padded keys (valid == False) get zero weight from every query."""
  return key_valid_BxS.astype(bool)[:, None, None, :]


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
  present = [m for m in masks if m is not None]
  if not present:
    return None
  out = present[0]
  for m in present[1:]:
    out = jnp.logical_and(out, m)
  return out


def attention_weights(
  q_BxTxHxK: jax.Array, k_BxSxHxK: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  """softmax(Q K^T / sqrt(d_k)) [B, H, T, S], float32; `mask` broadcasts to [B, H, T, S]."""
  d_k = q_BxTxHxK.shape[-1]
  # Scaling q rather than the scores costs T*K multiplies instead of T*S.
  q_BxTxHxK = q_BxTxHxK * jnp.asarray(1 / math.sqrt(d_k), q_BxTxHxK.dtype)
  scores_BxHxTxS = jnp.einsum('bthk,bshk->bhts', q_BxTxHxK, k_BxSxHxK)
  # The softmax runs in float32 even under bfloat16 compute: its exponentials overflow otherwise.
  scores_BxHxTxS = scores_BxHxTxS.astype(jnp.float32)
  if mask is not None:
    # A large finite negative, not -inf: a row whose keys are all masked gives a uniform average
    # instead of NaN (it only happens for padded queries, whose outputs are ignored).
    scores_BxHxTxS = jnp.where(mask, scores_BxHxTxS, jnp.finfo(jnp.float32).min)
  return jax.nn.softmax(scores_BxHxTxS, axis=-1)


def dot_product_attention(
  q_BxTxHxK: jax.Array,
  k_BxSxHxK: jax.Array,
  v_BxSxHxK: jax.Array,
  mask: jax.Array | None = None,
  hooks: Hooks | None = None,
) -> jax.Array:
  """softmax(Q K^T / sqrt(d_k)) V per head: [B, T, H, K]. `hooks` sees (and may replace) the
  weights as 'pattern' [B, H, T, S], float32."""
  weights_BxHxTxS = attention_weights(q_BxTxHxK, k_BxSxHxK, mask)
  if hooks is not None:
    weights_BxHxTxS = hooks('pattern', weights_BxHxTxS)
  return jnp.einsum('bhts,bshk->bthk', weights_BxHxTxS.astype(v_BxSxHxK.dtype), v_BxSxHxK)


# ---- the KV cache ------------------------------------------------------------------------------


def init_cache(batch: int, max_len: int, n_heads: int, d_head: int, dtype=jnp.float32) -> dict:
  """Keys and values of every position decoded so far, [B, S_max, H, K]; slots past the current
  length hold zeros and are masked out by the causal rule (their positions lie in the future)."""
  zeros = jnp.zeros((batch, max_len, n_heads, d_head), dtype)
  return {'k': zeros, 'v': zeros}


# ---- the module ------------------------------------------------------------------------------


class MultiHeadAttention(nnx.Module):
  """Multi-head attention with output projection; weights carry logical axis names.

  Kernels are stored per head ([D, H, K] and [H, K, D]) so that tensor parallelism splits whole
  heads ('heads' axis) and FSDP splits the model width ('embed').

  `implementation` picks how softmax(QK^T/sqrt(d_k))V is computed (jdl.models.fused_attention:
  'einsum', the reference, or 'blocked', 'xla', 'cudnn', 'splash'); calls with hooks or a KV
  cache, and calls a fused path does not cover, use the reference.
  """

  def __init__(
    self,
    d_model: int,
    n_heads: int,
    *,
    self_attention: bool = True,
    use_bias: bool = True,
    dtype=jnp.float32,
    kernel_init=None,
    out_init=None,
    sharding_rules: Sequence | None = None,
    implementation: str = 'einsum',
    rngs: nnx.Rngs,
  ):
    if d_model % n_heads:
      raise ValueError(f'd_model {d_model} is not divisible by n_heads {n_heads}')
    fused_attention.check(implementation, dtype)
    self.implementation = implementation
    self.n_heads, self.d_head = n_heads, d_model // n_heads
    self.self_attention, self.use_bias, self.dtype = self_attention, use_bias, dtype
    self.rules = tuple(sharding_rules) if sharding_rules else None
    kernel_init = kernel_init or nnx.initializers.normal(0.02)
    out_init = out_init or kernel_init
    h, k = n_heads, self.d_head

    def param(init, shape, axes):
      return nnx.Param(nnx.with_partitioning(init, axes)(rngs.params(), shape, jnp.float32))

    zeros = nnx.initializers.zeros_init()
    if self_attention:
      # One fused projection for q, k and v: a single larger matmul is faster than three.
      self.qkv_kernel = param(kernel_init, (d_model, 3, h, k), ('embed', None, 'heads', 'kv'))
      self.qkv_bias = param(zeros, (3, h, k), (None, 'heads', 'kv')) if use_bias else None
    else:
      self.q_kernel = param(kernel_init, (d_model, h, k), ('embed', 'heads', 'kv'))
      self.q_bias = param(zeros, (h, k), ('heads', 'kv')) if use_bias else None
      self.kv_kernel = param(kernel_init, (d_model, 2, h, k), ('embed', None, 'heads', 'kv'))
      self.kv_bias = param(zeros, (2, h, k), (None, 'heads', 'kv')) if use_bias else None
    self.out_kernel = param(out_init, (h, k, d_model), ('heads', 'kv', 'embed'))
    self.out_bias = param(zeros, (d_model,), ('embed',)) if use_bias else None

  def _project(self, x_BxTxD, kernel, bias, spec):
    y = jnp.einsum(spec, x_BxTxD.astype(self.dtype), kernel[...].astype(self.dtype))
    return y if bias is None else y + bias[...].astype(self.dtype)

  def project_context(self, context_BxSxD: jax.Array) -> dict:
    """Cross-attention's keys and values of a context, {'k', 'v'}: [B, S, H, K]. They do not
    change while a decoder emits tokens, so decoding computes them once and passes them back
    in as `cache`."""
    if self.self_attention:
      raise ValueError('project_context is for cross-attention (self_attention=False)')
    kv_BxSx2xHxK = self._project(context_BxSxD, self.kv_kernel, self.kv_bias, 'bsd,dchk->bschk')
    return {'k': kv_BxSx2xHxK[:, :, 0], 'v': kv_BxSx2xHxK[:, :, 1]}

  def _queries_keys_values(self, x_BxTxD, context_BxSxD, mask, causal, cache, cache_index):
    """q [B, T, H, K], k and v [B, S, H, K], the mask to apply, and the updated cache."""
    new_cache = None
    if self.self_attention:
      qkv_BxTx3xHxK = self._project(x_BxTxD, self.qkv_kernel, self.qkv_bias, 'btd,dchk->btchk')
      q_BxTxHxK, k_BxSxHxK, v_BxSxHxK = (qkv_BxTx3xHxK[:, :, i] for i in range(3))
    else:
      q_BxTxHxK = self._project(x_BxTxD, self.q_kernel, self.q_bias, 'btd,dhk->bthk')
      # A cross-attention cache holds the context's keys and values (project_context).
      kv = self.project_context(context_BxSxD) if cache is None else cache
      k_BxSxHxK, v_BxSxHxK = kv['k'].astype(self.dtype), kv['v'].astype(self.dtype)
      new_cache = cache
    q_BxTxHxK = constrain(q_BxTxHxK, ('batch', None, 'heads', 'kv'), self.rules)

    T = x_BxTxD.shape[1]
    if cache is not None and self.self_attention:
      start = jnp.asarray(cache_index, jnp.int32)
      zero = jnp.zeros((), jnp.int32)
      k_BxSxHxK = jax.lax.dynamic_update_slice(
        cache['k'], k_BxSxHxK.astype(cache['k'].dtype), (zero, start, zero, zero)
      )
      v_BxSxHxK = jax.lax.dynamic_update_slice(
        cache['v'], v_BxSxHxK.astype(cache['v'].dtype), (zero, start, zero, zero)
      )
      new_cache = {'k': k_BxSxHxK, 'v': v_BxSxHxK}
      query_pos_T = start + jnp.arange(T, dtype=jnp.int32)
      # The cache's empty slots lie "in the future" of every query, so the causal rule hides them.
      mask = combine_masks(mask, causal_mask(query_pos_T, jnp.arange(k_BxSxHxK.shape[1])))
      k_BxSxHxK, v_BxSxHxK = k_BxSxHxK.astype(self.dtype), v_BxSxHxK.astype(self.dtype)
    elif causal:
      S = k_BxSxHxK.shape[1]
      mask = combine_masks(mask, causal_mask(jnp.arange(T), jnp.arange(S)))
    return q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask, new_cache

  def __call__(
    self,
    x_BxTxD: jax.Array,
    context_BxSxD: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    causal: bool = False,
    cache: dict | None = None,
    cache_index: jax.Array | int = 0,
    hooks: Hooks | None = None,
  ) -> tuple[jax.Array, dict | None]:
    """Returns (output [B, T, D], updated cache or None).

    With a cache and self-attention, x holds the T new positions starting at `cache_index`:
    their keys and values are written into the cache and the queries attend over the cache.
    With a cache and cross-attention, the cache holds the context's keys and values
    (`project_context`) and `context_BxSxD` is not needed.

    `hooks` sees 'q', 'k', 'v' [B, T or S, H, K], 'pattern' [B, H, T, S] and 'z' [B, T, H, K],
    each head's output before the output projection.
    """
    impl = self.implementation
    if impl != 'einsum' and hooks is None and cache is None:
      T = x_BxTxD.shape[1]
      S = T if context_BxSxD is None else context_BxSxD.shape[1]
      if not fused_attention.supports(impl, T, S, causal, mask):
        impl = 'einsum'
    else:
      impl = 'einsum'
    # The fused paths apply the causal rule themselves (and skip what it hides).
    q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask, new_cache = self._queries_keys_values(
      x_BxTxD, context_BxSxD, mask, causal and impl == 'einsum', cache, cache_index
    )
    if hooks is not None:
      q_BxTxHxK, k_BxSxHxK = hooks('q', q_BxTxHxK), hooks('k', k_BxSxHxK)
      v_BxSxHxK = hooks('v', v_BxSxHxK)
    if impl == 'blocked':
      out_BxTxHxK = fused_attention.blocked_causal(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask)
    elif impl == 'splash':
      out_BxTxHxK = fused_attention.splash_causal(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK)
    elif impl in ('xla', 'cudnn'):
      out_BxTxHxK = fused_attention.jax_dot_product(
        q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask, causal, impl
      )
    else:
      out_BxTxHxK = dot_product_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask, hooks)
    if hooks is not None:
      out_BxTxHxK = hooks('z', out_BxTxHxK)
    y_BxTxD = jnp.einsum('bthk,hkd->btd', out_BxTxHxK, self.out_kernel[...].astype(self.dtype))
    if self.out_bias is not None:
      y_BxTxD = y_BxTxD + self.out_bias[...].astype(self.dtype)
    return y_BxTxD, new_cache

  def weights(
    self,
    x_BxTxD: jax.Array,
    context_BxSxD: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    causal: bool = False,
    cache: dict | None = None,
    cache_index: jax.Array | int = 0,
  ) -> jax.Array:
    """The attention weights softmax(QK^T/sqrt(d_k)) [B, H, T, S] that `__call__` with the same
    arguments applies: what the lecture's attention figures draw."""
    q_BxTxHxK, k_BxSxHxK, _, mask, _ = self._queries_keys_values(
      x_BxTxD, context_BxSxD, mask, causal, cache, cache_index
    )
    return attention_weights(q_BxTxHxK, k_BxSxHxK, mask)
