"""Faster implementations of the same attention, chosen by name (`model.attention`):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

  'einsum'   the reference (jdl.models.attention.dot_product_attention): the [B, H, T, S] weights
             are materialised, so hooks can read and patch them; every mask, every KV cache.
  'blocked'  causal self-attention on any backend, the CPU's fast path: queries in blocks of
             `BLOCK` rows, each block against only the keys it may see (block i against keys
             0 .. end of block i), so the fully masked upper-right blocks of the score matrix are
             never computed (10 of 16 blocks at T = 256); the softmax of each row is exact (all of
             the row's visible keys are in its block's product), so no online rescaling is needed.
  'xla'      `jax.nn.dot_product_attention(implementation='xla')`.
  'cudnn'    the same with `implementation='cudnn'` (NVIDIA GPUs; bfloat16/float16 only).
  'splash'   Pallas splash attention (TPUs): a flash-attention kernel that skips masked blocks
             of 128 x 128 in the forward and backward passes.

All take and return [B, T, H, K] like the reference; they give the reference's outputs up to
float32 rounding (tests/models/test_attention_paths.py). A path that does not apply to a call
(hooks, a KV cache, lengths splash cannot block) uses the reference; see `supports`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

IMPLEMENTATIONS = ('einsum', 'blocked', 'xla', 'cudnn', 'splash')
# 64 rows per query block: at T = 256 the products compute 10 of 16 blocks (62.5% of the full
# score matrix); smaller blocks skip more but run smaller, slower products on XLA:CPU.
BLOCK = 64
SPLASH_BLOCK = 128  # the TPU kernel's tiles are multiples of 128 on the sequence axes


def check(implementation: str, dtype) -> None:
  """A clear ValueError for a name that is not an implementation or a dtype it cannot run."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'attention {implementation!r} is not one of {IMPLEMENTATIONS}')
  if implementation == 'cudnn' and jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
    raise ValueError(
      f"attention 'cudnn' (cuDNN's fused kernel) takes bfloat16 or float16, not "
      f"{jnp.dtype(dtype).name}: set dtype = 'bfloat16', or attention = 'xla' for float32"
    )


def supports(implementation: str, T: int, S: int, causal: bool, mask) -> bool:
  """Whether `implementation` runs this call itself (else the reference does)."""
  if implementation == 'blocked':
    return causal and T == S and T > BLOCK
  if implementation == 'splash':
    return causal and mask is None and T == S and T % SPLASH_BLOCK == 0
  return implementation in ('xla', 'cudnn')


def blocked_causal(
  q_BxTxHxK: jax.Array,
  k_BxTxHxK: jax.Array,
  v_BxTxHxK: jax.Array,
  mask: jax.Array | None = None,
  block: int = BLOCK,
) -> jax.Array:
  """Causal self-attention computing only the lower-triangular blocks of the scores.

  `mask` (broadcasting to [B, H, T, T], the causal rule folded in or not) is applied on top of
  the causal rule; a row's weights are softmax over keys 0 .. (its block's end), of which the
  causal rule hides the ones after the row itself, exactly as in the full product."""
  T, d_k = q_BxTxHxK.shape[1], q_BxTxHxK.shape[-1]
  q_BxTxHxK = q_BxTxHxK * jnp.asarray(1 / math.sqrt(d_k), q_BxTxHxK.dtype)
  if mask is not None:
    mask = jnp.broadcast_to(mask, (*mask.shape[:2], T, T))
  outs = []
  for t0 in range(0, T, block):
    t1 = min(t0 + block, T)
    # This block's queries against every key up to its last row; the causal rule only cuts
    # inside the diagonal block (a numpy constant: no work at run time).
    visible = (np.arange(t1)[None, :] <= np.arange(t0, t1)[:, None])[None, None]
    if mask is not None:
      visible = jnp.logical_and(visible, mask[:, :, t0:t1, :t1])
    # [B, H, t1 - t0, t1], the softmax in float32 as in the reference
    scores = jnp.einsum('bthk,bshk->bhts', q_BxTxHxK[:, t0:t1], k_BxTxHxK[:, :t1])
    scores = jnp.where(visible, scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1).astype(v_BxTxHxK.dtype)
    outs.append(jnp.einsum('bhts,bshk->bthk', weights, v_BxTxHxK[:, :t1]))
  return jnp.concatenate(outs, axis=1)


def jax_dot_product(
  q_BxTxHxK: jax.Array,
  k_BxSxHxK: jax.Array,
  v_BxSxHxK: jax.Array,
  mask: jax.Array | None,
  causal: bool,
  implementation: str,
) -> jax.Array:
  """jax.nn.dot_product_attention ('xla' or 'cudnn'); `mask` without the causal rule."""
  return jax.nn.dot_product_attention(
    q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask=mask, is_causal=causal, implementation=implementation
  )


@functools.cache
def _splash_kernel(n_heads: int, T: int, interpret: bool):
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

  mask = sm.MultiHeadMask([sm.CausalMask((T, T)) for _ in range(n_heads)])
  b = SPLASH_BLOCK
  sizes = sk.BlockSizes(
    block_q=b,
    block_kv=b,
    block_kv_compute=b,
    block_q_dkv=b,
    block_kv_dkv=b,
    block_kv_dkv_compute=b,
    block_q_dq=b,
    block_kv_dq=b,
  )
  return sk.make_splash_mha(
    mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret
  )


def splash_causal(
  q_BxTxHxK: jax.Array,
  k_BxTxHxK: jax.Array,
  v_BxTxHxK: jax.Array,
  interpret: bool | None = None,
) -> jax.Array:
  """Causal self-attention through Pallas splash attention, one kernel call per row ([H, T, K]).

  Splash does not scale the scores, so q is scaled here. `interpret` (default: off a TPU) runs
  the kernel in Pallas' interpreter: how it is tested on the CPU, far too slow to train with."""
  _, T, H, d_k = q_BxTxHxK.shape
  if interpret is None:
    interpret = jax.default_backend() != 'tpu'
  kernel = _splash_kernel(H, T, interpret)
  q_BxTxHxK = q_BxTxHxK * jnp.asarray(1 / math.sqrt(d_k), q_BxTxHxK.dtype)
  head_major = lambda x: jnp.swapaxes(x, 1, 2)  # [B, H, T, K], the kernel's layout
  out_BxHxTxK = jax.vmap(kernel)(
    head_major(q_BxTxHxK), head_major(k_BxTxHxK), head_major(v_BxTxHxK)
  )
  return head_major(out_BxHxTxK)
