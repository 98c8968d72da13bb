"""Greedy and beam-search decoding of the encoder-decoder Transformer, jit-compiled.

The source is encoded once. Each step then feeds the newest target token only: the decoder's
self-attention keys and values of earlier positions come from the KV cache, and the
cross-attention keys and values of the source were projected once (`Transformer.init_cache`).
The uncached variant recomputes the whole target prefix at every step; the search code is the
same for both (a `step` function gives the next-token logits), so the tests can check that both
give identical outputs.

Beam search keeps `beam_size` alive hypotheses and the `beam_size` best finished ones; a
hypothesis finishes when it emits </s> from among the `beam_size` best candidates, scored by
log p / lp(length) with GNMT's length penalty lp(n) = ((5 + n) / 6)^alpha (alpha = 0: plain
log-probability). The loop stops at `max_len` or when no alive hypothesis can still beat the
worst finished one; hypotheses cut at `max_len` compete with the finished ones. With beam size 1
and alpha 0 it returns exactly greedy decoding's tokens.

Shape suffixes: B sentences, K beams, N = B*K rows, S source positions, L output positions,
V vocabulary.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.data.ding import BOS, EOS, PAD
from jdl.models.attention import padding_mask

NEG = -1e9  # the score of a dead hypothesis: finite, so that arithmetic on it stays finite


def length_penalty(length, alpha: float):
  return ((5.0 + length) / 6.0) ** alpha


def _steps(model, src_BxS: jax.Array, beam_size: int, max_len: int, cached: bool):
  """(step, state, reorder): step(state, tokens_NxL1, i) gives the logits [N, V] of position
  i + 1 from tokens 0..i; reorder(state, rows_N) follows the hypotheses to their new rows.
  A model with its own `decoding_steps` (the recurrent encoder-decoders of jdl.models.seq2seq,
  whose cached state is a carry, not a KV cache) gives these three itself."""
  if hasattr(model, 'decoding_steps'):
    return model.decoding_steps(src_BxS, beam_size, max_len, cached)
  src_NxS = jnp.repeat(src_BxS, beam_size, axis=0)
  valid_NxS = src_NxS != PAD
  memory_NxSxD = model.encode(src_NxS, valid_NxS.astype(jnp.int32))
  cross_mask = padding_mask(valid_NxS)
  if cached:

    def step(cache, tokens_NxL1, i):
      token_Nx1 = jax.lax.dynamic_slice_in_dim(tokens_NxL1, i, 1, axis=1)
      logits_Nx1xV, cache = model.decode(
        token_Nx1, None, cross_mask=cross_mask, cache=cache, cache_index=i
      )
      return logits_Nx1xV[:, 0], cache

    def reorder(cache, rows_N):
      # Cross-attention keys depend on the source only, the same for every beam of a sentence.
      return [
        {'self': jax.tree.map(lambda c: c[rows_N], layer['self']), 'cross': layer['cross']}
        for layer in cache
      ]

    return step, model.init_cache(memory_NxSxD, max_len), reorder

  def step_uncached(state, tokens_NxL1, i):
    logits_NxLxV = model.decode(tokens_NxL1[:, :max_len], memory_NxSxD, cross_mask=cross_mask)
    return jax.lax.dynamic_index_in_dim(logits_NxLxV, i, axis=1, keepdims=False), state

  return step_uncached, (), lambda state, rows: state


def _greedy(model, src_BxS, max_len, cached):
  B = src_BxS.shape[0]
  step, state, _ = _steps(model, src_BxS, 1, max_len, cached)
  tokens_BxL1 = jnp.zeros((B, max_len + 1), jnp.int32).at[:, 0].set(BOS)

  def cond(carry):
    i, _, done_B, _ = carry
    return (i < max_len) & ~jnp.all(done_B)

  def body(carry):
    i, tokens_BxL1, done_B, state = carry
    logits_BxV, state = step(state, tokens_BxL1, i)
    next_B = jnp.where(done_B, PAD, jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32))
    tokens_BxL1 = jax.lax.dynamic_update_slice_in_dim(tokens_BxL1, next_B[:, None], i + 1, 1)
    return i + 1, tokens_BxL1, done_B | (next_B == EOS), state

  carry = (jnp.zeros((), jnp.int32), tokens_BxL1, jnp.zeros((B,), bool), state)
  _, tokens_BxL1, _, _ = jax.lax.while_loop(cond, body, carry)
  return tokens_BxL1[:, 1:]


def _beam(model, src_BxS, max_len, beam_size, alpha, cached):
  B, K = src_BxS.shape[0], beam_size
  step, state, reorder = _steps(model, src_BxS, K, max_len, cached)
  seqs_BxKxL1 = jnp.zeros((B, K, max_len + 1), jnp.int32).at[:, :, 0].set(BOS)
  # Only the first beam is alive at the start: the others would duplicate it.
  alive_BxK = jnp.tile(jnp.where(jnp.arange(K) == 0, 0.0, NEG), (B, 1))
  finished_BxK = jnp.full((B, K), NEG)
  gather = lambda x, idx: jnp.take_along_axis(
    x, idx.reshape(*idx.shape, *[1] * (x.ndim - 2)), axis=1
  )

  def cond(carry):
    i, _, alive_BxK, _, finished_BxK, _ = carry
    # The best an alive hypothesis can still reach (log p only falls; lp grows with length).
    best_alive_B = alive_BxK[:, 0] / length_penalty(max_len, alpha)
    return (i < max_len) & ~jnp.all(finished_BxK[:, -1] > best_alive_B)

  def body(carry):
    i, seqs_BxKxL1, alive_BxK, fin_seqs_BxKxL1, finished_BxK, state = carry
    logits_NxV, state = step(state, seqs_BxKxL1.reshape(B * K, -1), i)
    V = logits_NxV.shape[-1]
    logp_BxKxV = jax.nn.log_softmax(logits_NxV.astype(jnp.float32), axis=-1).reshape(B, K, V)
    candidates_BxKV = (alive_BxK[:, :, None] + logp_BxKxV).reshape(B, K * V)
    # 2K candidates: even if K of them end in </s>, K remain to stay alive.
    top_Bx2K, index_Bx2K = jax.lax.top_k(candidates_BxKV, 2 * K)
    beam_Bx2K, token_Bx2K = index_Bx2K // V, (index_Bx2K % V).astype(jnp.int32)
    cand_seqs = gather(seqs_BxKxL1, beam_Bx2K)
    cand_seqs = jax.lax.dynamic_update_slice_in_dim(cand_seqs, token_Bx2K[:, :, None], i + 1, 2)
    is_eos_Bx2K = token_Bx2K == EOS
    # </s> finishes a hypothesis only from among the K best candidates (as Hugging Face's
    # beam search): a lower-ranked </s> would not have been kept by a beam of K.
    ends_Bx2K = is_eos_Bx2K & (jnp.arange(2 * K) < K)

    alive_BxK, pick_BxK = jax.lax.top_k(jnp.where(is_eos_Bx2K, NEG, top_Bx2K), K)
    seqs_BxKxL1 = gather(cand_seqs, pick_BxK)
    source_beam_BxK = jnp.take_along_axis(beam_Bx2K, pick_BxK, axis=1)
    rows_N = (jnp.arange(B)[:, None] * K + source_beam_BxK).reshape(-1)
    state = reorder(state, rows_N)

    scores_Bx2K = jnp.where(ends_Bx2K, top_Bx2K / length_penalty(i + 1, alpha), NEG)
    finished_BxK, pick_BxK = jax.lax.top_k(jnp.concatenate([finished_BxK, scores_Bx2K], axis=1), K)
    fin_seqs_BxKxL1 = gather(jnp.concatenate([fin_seqs_BxKxL1, cand_seqs], axis=1), pick_BxK)
    return i + 1, seqs_BxKxL1, alive_BxK, fin_seqs_BxKxL1, finished_BxK, state

  carry = (jnp.zeros((), jnp.int32), seqs_BxKxL1, alive_BxK, seqs_BxKxL1, finished_BxK, state)
  steps, seqs_BxKxL1, alive_BxK, fin_seqs_BxKxL1, finished_BxK, _ = jax.lax.while_loop(
    cond, body, carry
  )
  # Hypotheses still alive at the end (cut at max_len) compete with the finished ones.
  scores_Bx2K = jnp.concatenate([finished_BxK, alive_BxK / length_penalty(steps, alpha)], 1)
  best_B = jnp.argmax(scores_Bx2K, axis=1)
  best_BxL1 = gather(jnp.concatenate([fin_seqs_BxKxL1, seqs_BxKxL1], 1), best_B[:, None])[:, 0]
  return best_BxL1[:, 1:]


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def _decode(graphdef, state, src_BxS, max_len, beam_size, alpha, cached):
  model = nnx.merge(graphdef, state)
  if beam_size == 0:
    return _greedy(model, src_BxS, max_len, cached)
  return _beam(model, src_BxS, max_len, beam_size, alpha, cached)


def decode(
  model, src_BxS, max_len: int, *, beam_size: int = 0, alpha: float = 0.0, cached: bool = True
) -> jax.Array:
  """Output tokens [B, max_len] (</s> and then padding where a sentence ended): greedy when
  `beam_size` is 0, beam search otherwise."""
  if max_len >= model.cfg.max_len:
    raise ValueError(f"max_len {max_len} must be below the model's {model.cfg.max_len} positions")
  graphdef, state = nnx.split(model)
  return _decode(
    graphdef,
    state,
    jnp.asarray(src_BxS, jnp.int32),
    int(max_len),
    int(beam_size),
    float(alpha),
    bool(cached),
  )


def greedy(model, src_BxS, max_len: int, cached: bool = True) -> jax.Array:
  return decode(model, src_BxS, max_len, cached=cached)


def beam_search(
  model, src_BxS, max_len: int, beam_size: int = 4, alpha: float = 0.6, cached: bool = True
) -> jax.Array:
  return decode(model, src_BxS, max_len, beam_size=beam_size, alpha=alpha, cached=cached)


def pad_batch(ids: list[list[int]], multiple: int = 16, rows: int = 0) -> np.ndarray:
  """Source ids right-padded to a multiple of `multiple` positions (few distinct shapes, few
  compilations), and to `rows` rows (empty sources) if given."""
  width = max(1, max(len(x) for x in ids))
  width = -(-width // multiple) * multiple
  out = np.zeros((max(rows, len(ids)), width), np.int32)
  for i, x in enumerate(ids):
    out[i, : len(x)] = x
  return out


def translate(
  model,
  tokenizer,
  sentences: list[str],
  *,
  beam_size: int = 4,
  length_penalty: float = 0.6,
  max_extra_tokens: int = 16,
  batch_size: int = 64,
) -> list[str]:
  """Translations of `sentences`, in order, decoded in batches of similar length (sorted by
  source length, padded to a few fixed shapes so that the compiled decoder is reused).
  `beam_size` 0 is greedy; at most the source length
  plus `max_extra_tokens` (rounded up to the shape bucket) tokens are generated."""
  if not sentences:
    return []
  ids = tokenizer.encode_batch(sentences)
  limit = model.cfg.max_len - max_extra_tokens - 1
  ids = [x[:limit] for x in ids]
  order = np.argsort([len(x) for x in ids], kind='stable')
  out = [''] * len(sentences)
  for start in range(0, len(order), batch_size):
    chunk = order[start : start + batch_size]
    src_BxS = pad_batch([ids[i] for i in chunk], rows=min(batch_size, len(order)))
    max_len = min(src_BxS.shape[1] + max_extra_tokens, model.cfg.max_len - 1)
    tokens_BxL = np.asarray(
      decode(model, src_BxS, max_len, beam_size=beam_size, alpha=length_penalty)
    )
    for row, i in enumerate(chunk):
      out[i] = tokenizer.decode(tokens_BxL[row])
  return out
