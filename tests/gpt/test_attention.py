"""jdl's attention against a NumPy reference; padding and causal masks; the KV cache."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.models import attention


def numpy_attention(q, k, v, mask):
  """softmax(QK^T/sqrt(d_k))V, written out per batch row and head."""
  B, T, H, K = q.shape
  out = np.zeros_like(q)
  for b in range(B):
    for h in range(H):
      scores = q[b, :, h] @ k[b, :, h].T / np.sqrt(K)
      scores = np.where(mask[b, 0], scores, -np.inf)
      w = np.exp(scores - scores.max(-1, keepdims=True))
      w /= w.sum(-1, keepdims=True)
      out[b, :, h] = w @ v[b, :, h]
  return out


def test_matches_numpy_with_padding_and_causal_masks():
  rng = np.random.default_rng(0)
  B, T, H, K = 2, 5, 3, 4
  q, k, v = (rng.normal(size=(B, T, H, K)).astype(np.float32) for _ in range(3))
  valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
  mask = np.asarray(
    attention.combine_masks(
      attention.padding_mask(valid), attention.causal_mask(jnp.arange(T), jnp.arange(T))
    )
  )
  got = attention.dot_product_attention(q, k, v, mask)
  np.testing.assert_allclose(
    got, numpy_attention(q, k, v, np.broadcast_to(mask, (B, 1, T, T))), rtol=1e-5, atol=1e-6
  )


def test_padded_key_gets_zero_weight_and_no_position_sees_the_future():
  rng = np.random.default_rng(1)
  q, k = (rng.normal(size=(2, 6, 2, 8)).astype(np.float32) for _ in range(2))
  valid = np.ones((2, 6), bool)
  valid[1, 4:] = False
  w_pad = np.asarray(attention.attention_weights(q, k, attention.padding_mask(valid)))
  assert np.all(w_pad[1, :, :, 4:] == 0) and np.all(w_pad[0] > 0)
  np.testing.assert_allclose(w_pad.sum(-1), 1, rtol=1e-6)
  causal = attention.causal_mask(jnp.arange(6), jnp.arange(6))
  w_causal = np.asarray(attention.attention_weights(q, k, causal))
  future = np.triu(np.ones((6, 6), bool), k=1)
  assert np.all(w_causal[:, :, future] == 0)
  assert np.all(w_causal[:, :, ~future] > 0)


def test_multi_head_module_matches_numpy_and_cache_matches_full():
  d, h = 12, 3
  mha = attention.MultiHeadAttention(d, h, rngs=nnx.Rngs(0))
  x = np.random.default_rng(2).normal(size=(2, 7, d)).astype(np.float32)
  full, _ = mha(x, causal=True)
  # Reference: project with the module's own kernels in NumPy, then the NumPy attention.
  W, bias = np.asarray(mha.qkv_kernel[...]), np.asarray(mha.qkv_bias[...])
  qkv = np.einsum('btd,dchk->btchk', x, W) + bias
  mask = np.broadcast_to(np.tril(np.ones((7, 7), bool)), (2, 1, 7, 7))
  ref = numpy_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], mask)
  ref = np.einsum('bthk,hkd->btd', ref, np.asarray(mha.out_kernel[...])) + np.asarray(
    mha.out_bias[...]
  )
  np.testing.assert_allclose(full, ref, rtol=1e-4, atol=1e-5)
  # The cache: 4 positions at once, then 3 one at a time, equal the full causal pass.
  cache = attention.init_cache(2, 7, h, d // h)
  first, cache = mha(x[:, :4], cache=cache, cache_index=0)
  outs = [first]
  for i in range(4, 7):
    y, cache = mha(x[:, i : i + 1], cache=cache, cache_index=i)
    outs.append(y)
  np.testing.assert_allclose(jnp.concatenate(outs, 1), full, rtol=1e-5, atol=1e-6)


def test_cross_attention_with_padding():
  mha = attention.MultiHeadAttention(8, 2, self_attention=False, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(3)
  x, ctx = rng.normal(size=(1, 3, 8)), rng.normal(size=(1, 5, 8))
  valid = np.array([[1, 1, 1, 0, 0]], bool)
  y1, _ = mha(x, ctx, mask=attention.padding_mask(valid))
  ctx2 = ctx.copy()
  ctx2[0, 3:] = 100.0  # what sits in padded positions must not matter
  y2, _ = mha(x, ctx2, mask=attention.padding_mask(valid))
  np.testing.assert_allclose(y1, y2, rtol=1e-6)
  assert jax.tree.leaves(y1)[0].shape == (1, 3, 8)
