"""A policy run's language model, its continuations of prompts (KV-cache sampling) and their
log-probabilities: what `jdl rlhf pairs`, `label` and `eval` share.

A policy is a byte-level jdl GPT: the supervised run itself (task `lm`), or the policy network
inside a PPO / DPO / RLOO run (the model's `policy` attribute; the frozen reference is never
taken for it). Continuations have a fixed number of bytes (no end token): prompt + continuation
must fit the context, and a longer prompt is refused with the limit.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.data import reviews
from jdl.models import sampling
from jdl.models.gpt import GPT
from jdl.tasks.rlhf import losses
from jdl.train.errors import UsageError

POLICY_NAMES = ('policy', 'actor', 'model')  # where an RL run keeps the network it trains


def policy_of(model, workdir='') -> GPT:
  """The GPT a run's model is, or holds as its policy."""
  if isinstance(model, GPT):
    return model
  for name in POLICY_NAMES:
    if isinstance(getattr(model, name, None), GPT):
      return getattr(model, name)
  raise UsageError(
    f'{workdir}: the run holds no policy GPT (a {type(model).__name__} without any of the '
    f'attributes {POLICY_NAMES}): give a language-model run or a PPO / DPO / RLOO run'
  )


def load_policy(workdir, step: int | None = None) -> GPT:
  """The policy of a run (cached per process: the tools ask for it several times)."""
  return load_policy_step(workdir, step)[0]


def load_policy_step(workdir, step: int | None = None) -> tuple[GPT, int]:
  """(the policy GPT of a run, the step of its checkpoint: the newest, or `step`); one load per
  folder, step and process."""
  return _load(os.path.abspath(os.fspath(workdir)), step)


@functools.cache
def _load(workdir: str, step: int | None) -> tuple[GPT, int]:
  from jdl.train.run import load_run

  run = load_run(workdir, step)
  return policy_of(run.model, workdir), run.step


def check_lengths(model: GPT, prompts, n_bytes: int) -> None:
  """A prompt of P bytes and a continuation of N must fit the context: refused with the limit."""
  if n_bytes < 1:
    raise UsageError(f'a continuation has at least 1 byte, got {n_bytes}')
  context = model.cfg.context
  for i, prompt in enumerate(prompts):
    size = len(prompt.encode('utf-8'))
    if size == 0:
      raise UsageError(f'prompt {i} is empty: the policy continues at least one byte')
    if size + n_bytes > context:
      raise UsageError(
        f'prompt {i} has {size} bytes: with a {n_bytes}-byte continuation that exceeds the '
        f"policy's context of {context} bytes (prompts of at most {context - n_bytes} bytes)"
      )


def continuations(
  model: GPT,
  prompts,
  n_bytes: int,
  *,
  temperature: float = 1.0,
  seed: int = 0,
  batch: int = 128,
) -> np.ndarray:
  """Sampled continuations [N, n_bytes] (byte ids) of each prompt, with the KV cache. Prompts of
  equal byte length are sampled together in fixed batches (one compiled program per length);
  batch b draws from fold_in(key(seed), b), so a result does not depend on other prompts' sizes
  beyond their order."""
  prompts = list(prompts)
  check_lengths(model, prompts, n_bytes)
  encoded = [reviews.ByteTokenizer().encode(p) for p in prompts]
  out = np.zeros((len(prompts), n_bytes), np.int32)
  by_length: dict[int, list[int]] = {}
  for i, ids in enumerate(encoded):
    by_length.setdefault(len(ids), []).append(i)
  key, counter = jax.random.key(seed), 0
  for length in sorted(by_length):
    rows = by_length[length]
    for start in range(0, len(rows), batch):
      chunk = rows[start : start + batch]
      tokens = np.stack([encoded[i] for i in chunk] + [encoded[chunk[0]]] * (batch - len(chunk)))
      sampled = sampling.generate(
        model, tokens, n_bytes, key=jax.random.fold_in(key, counter), temperature=temperature
      )
      out[chunk] = np.asarray(sampled[: len(chunk), length:])
      counter += 1
  return out


def decode(ids_NxL: np.ndarray) -> list[str]:
  """Byte ids as text of as many bytes: a continuation that is not valid UTF-8 (rare: the
  reviews are ASCII) has each byte >= 128 written as '?', so that the text re-encodes to the
  same length (U+FFFD would take 3 bytes) and every stored continuation keeps its size."""
  out = []
  for row in np.asarray(ids_NxL, np.uint8):
    raw = row.tobytes()
    try:
      out.append(raw.decode('utf-8'))
    except UnicodeDecodeError:
      out.append(''.join(chr(b) if b < 128 else '?' for b in raw))
  return out


@functools.partial(jax.jit, static_argnums=(0, 4))
def _continuation_logprob(graphdef, weights, tokens_BxT, prompt_len_B, n_bytes):
  # The continuation is the completion of DPO's log-probabilities: its n_bytes after the prompt
  # (right padding after it is never counted, and causal attention never reads it).
  model = nnx.merge(graphdef, weights)
  return losses.sequence_logprobs(model, tokens_BxT, prompt_len_B, prompt_len_B + n_bytes)[0]


def continuation_logprob(
  model: GPT, prompts, continuations_NxL: np.ndarray, batch: int = 128
) -> np.ndarray:
  """log p(continuation | prompt) [N] in nats, summed over the continuation's bytes."""
  prompts = list(prompts)
  n_bytes = continuations_NxL.shape[1]
  check_lengths(model, prompts, n_bytes)
  encoded = [reviews.ByteTokenizer().encode(p) for p in prompts]
  graphdef, weights = nnx.split(model)
  width = max(len(e) for e in encoded) + n_bytes
  out = np.zeros(len(prompts))
  for start in range(0, len(prompts), batch):
    idx = list(range(start, min(start + batch, len(prompts))))
    tokens = np.zeros((batch, width), np.int32)
    prompt_len = np.full(batch, width + 1, np.int32)  # padding rows: nothing counted
    for row, i in enumerate(idx):
      ids = np.concatenate([encoded[i], continuations_NxL[i]])
      tokens[row, : len(ids)] = ids
      prompt_len[row] = len(encoded[i])
    logp = _continuation_logprob(
      graphdef, weights, jnp.asarray(tokens), jnp.asarray(prompt_len), n_bytes
    )
    out[idx] = np.asarray(logp, np.float64)[: len(idx)]
  return out
