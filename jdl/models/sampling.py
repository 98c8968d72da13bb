"""Sampling from language models: temperature, top-k and nucleus filters, and generation with a
KV cache from any decoder with `init_cache` and `model(tokens, cache=, cache_index=)`.

Decoding is one compiled program: the prompt fills the KV cache in a single pass (prefill), then
`lax.scan` runs one step per new token, each step feeding only the newest token and reading the
keys and values of all earlier ones from the cache. `generate_uncached` recomputes the whole
sequence at every step; the tests check that both give the same tokens.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def filter_logits(logits_BxV: jax.Array, temperature: float, top_k: int, top_p: float) -> jax.Array:
  """Temperature, then top-k (keep the k largest), then nucleus top-p (keep the smallest set
  whose probability reaches p); the rest get -inf."""
  logits_BxV = logits_BxV.astype(jnp.float32) / max(temperature, 1e-6)
  neg = jnp.finfo(jnp.float32).min
  if top_k and top_k < logits_BxV.shape[-1]:
    kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_Bx1, neg, logits_BxV)
  if top_p < 1.0:
    sorted_BxV = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
    probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
    # A token stays if the probability of the tokens ranked above it is below p (so the most
    # likely token always stays).
    before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
    cutoff_Bx1 = jnp.min(jnp.where(before_BxV < top_p, sorted_BxV, jnp.inf), axis=-1, keepdims=True)
    logits_BxV = jnp.where(logits_BxV < cutoff_Bx1, neg, logits_BxV)
  return logits_BxV


def choose_token(logits_BxV, key, temperature, top_k, top_p):
  if temperature == 0.0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  return jax.random.categorical(key, filter_logits(logits_BxV, temperature, top_k, top_p)).astype(
    jnp.int32
  )


def kv_cache_prefill(model, prompt_BxP, max_new: int):
  """A decoder with a KV cache reads the prompt in one pass into a cache of P + N positions."""
  B, P = prompt_BxP.shape
  return model(prompt_BxP, cache=model.init_cache(B, P + max_new), cache_index=0)


def kv_cache_step(model, token_Bx1, cache, position):
  return model(token_Bx1, cache=cache, cache_index=position)


def recurrent_prefill(model, prompt_BxP, max_new: int):
  """A recurrent network reads the prompt once; its state is its memory."""
  return model(prompt_BxP)


def recurrent_step(model, token_Bx1, carries, position):
  return model(token_Bx1, carries)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 6, 7, 8, 9))
def _generate(
  graphdef, prefill, step, weights, prompt_BxP, key, max_new, temperature, top_k, top_p
):
  """Prefill, then one compiled step per new token carrying the model's memory (a KV cache or a
  recurrent state): `prefill(model, prompt, max_new) -> (logits, memory)`, `step(model, token,
  memory, position) -> (logits, memory)`."""
  model = nnx.merge(graphdef, weights)
  P = prompt_BxP.shape[1]
  logits_BxPxV, memory = prefill(model, prompt_BxP, max_new)
  first_B = choose_token(logits_BxPxV[:, -1], jax.random.fold_in(key, 0), temperature, top_k, top_p)

  def body(carry, i):
    token_B, memory, weights = carry
    # The weights ride in the carry and the model is merged inside the loop body: an nnx
    # module may not be closed over from an outer trace (scan_layers runs nnx.scan inside).
    step_model = nnx.merge(graphdef, weights)
    logits_Bx1xV, memory = step(step_model, token_B[:, None], memory, P + i)
    nxt_B = choose_token(
      logits_Bx1xV[:, 0], jax.random.fold_in(key, i + 1), temperature, top_k, top_p
    )
    return (nxt_B, memory, weights), token_B

  (last_B, _, _), tokens_NxB = jax.lax.scan(
    body, (first_B, memory, weights), jnp.arange(max_new - 1)
  )
  return jnp.concatenate([prompt_BxP, tokens_NxB.T, last_B[:, None]], axis=1)


def generate(
  model,
  prompt_BxP,
  max_new_tokens: int,
  *,
  key=None,
  temperature: float = 1.0,
  top_k: int = 0,
  top_p: float = 1.0,
  prefill=kv_cache_prefill,
  step=kv_cache_step,
) -> jax.Array:
  """Prompt followed by `max_new_tokens` sampled tokens ([B, P + N]); temperature 0 is greedy.
  A decoder with a KV cache by default; `prefill=recurrent_prefill, step=recurrent_step` for a
  recurrent network, which has no context limit."""
  check_options(max_new_tokens, temperature, top_k, top_p)
  prompt_BxP = jnp.asarray(prompt_BxP, jnp.int32)
  context = getattr(getattr(model, 'cfg', None), 'context', None)
  if context is not None and prompt_BxP.shape[1] + max_new_tokens > context:
    raise ValueError(
      f'prompt ({prompt_BxP.shape[1]}) + new tokens ({max_new_tokens}) exceed '
      f'the context of {context} positions'
    )
  graphdef, weights = nnx.split(model)
  key = jax.random.key(0) if key is None else key
  return _generate(
    graphdef,
    prefill,
    step,
    weights,
    prompt_BxP,
    key,
    max_new_tokens,
    float(temperature),
    int(top_k),
    float(top_p),
  )


def check_options(max_new_tokens: int, temperature: float, top_k: int, top_p: float) -> None:
  """Refuses what would sample something else than asked (a negative temperature would be read as
  greedy, a top-p of 0 would keep one token): ValueError naming the option."""
  for ok, what in (
    (max_new_tokens >= 1, f'max_new_tokens must be at least 1, got {max_new_tokens}'),
    (temperature >= 0, f'temperature must be >= 0 (0: greedy), got {temperature}'),
    (top_k >= 0, f'top_k must be >= 0 (0: no top-k filter), got {top_k}'),
    (0 < top_p <= 1, f'top_p must be in (0, 1] (1: no nucleus filter), got {top_p}'),
  ):
    if not ok:
      raise ValueError(what)


@nnx.jit
def _forward(model, tokens_BxT):
  return model(tokens_BxT)


def generate_uncached(
  model,
  prompt_BxP,
  max_new_tokens: int,
  *,
  key=None,
  temperature: float = 1.0,
  top_k: int = 0,
  top_p: float = 1.0,
):
  """The reference: every step runs the full sequence so far, no cache (slow; for tests)."""
  prompt_BxP = jnp.asarray(prompt_BxP, jnp.int32)
  B, P = prompt_BxP.shape
  key = jax.random.key(0) if key is None else key
  # A fixed length, zero-padded: causal attention makes the padding invisible to earlier
  # positions, and one compiled forward pass serves every step.
  tokens_BxN = jnp.zeros((B, P + max_new_tokens), jnp.int32).at[:, :P].set(prompt_BxP)
  for i in range(max_new_tokens):
    logits_BxNxV = _forward(model, tokens_BxN)
    nxt = choose_token(
      logits_BxNxV[:, P + i - 1], jax.random.fold_in(key, i), temperature, top_k, top_p
    )
    tokens_BxN = tokens_BxN.at[:, P + i].set(nxt)
  return tokens_BxN


def sample_text(
  model,
  tokenizer,
  prompt: str,
  *,
  max_new_tokens: int = 200,
  temperature: float = 1.0,
  top_k: int = 0,
  top_p: float = 1.0,
  seed: int = 0,
  prefill=kv_cache_prefill,
  step=kv_cache_step,
) -> str:
  """The prompt and its continuation of `max_new_tokens` tokens, as text.

  A model with a context of C positions continues past it with a sliding window: when the
  window is full, the last C/2 tokens are read again from position 0 (a fresh KV cache) and the
  next C/2 are sampled after them, so every token sees at least C/2 tokens before it. A prompt
  longer than the context is read from its last C - 1 tokens (the whole prompt is still shown).
  """
  check_options(max_new_tokens, temperature, top_k, top_p)
  ids = list(tokenizer.encode(prompt))
  context = getattr(getattr(model, 'cfg', None), 'context', None)
  options = dict(temperature=temperature, top_k=top_k, top_p=top_p, prefill=prefill, step=step)
  key = jax.random.key(seed)
  if context is None:  # a recurrent network: its state carries everything, one call
    out = generate(model, np.asarray(ids, np.int32)[None], max_new_tokens, key=key, **options)
    return tokenizer.decode(np.asarray(out[0]))
  part, remaining, window = 0, max_new_tokens, min(len(ids), context - 1)
  while remaining > 0:
    new = min(remaining, context - window)
    out = generate(
      model,
      np.asarray(ids[len(ids) - window :], np.int32)[None],
      new,
      key=key if part == 0 else jax.random.fold_in(key, part),
      **options,
    )
    ids += np.asarray(out[0, window:]).tolist()
    part, remaining, window = part + 1, remaining - new, context // 2
  return tokenizer.decode(np.asarray(ids))
