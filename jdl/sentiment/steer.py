"""Generation steered by one unit (the paper's Table 2 idea): while sampling, the unit's cell
state is overwritten with a fixed value after every byte, so the model writes as if that unit
read positive (or negative) all along."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jdl.models import sampling


def _clamp(carries, unit: int, value: float):
  *below, (c_BxH, h_BxH) = carries
  return [*below, (c_BxH.at[:, unit].set(value), h_BxH)]


def _steered_prefill(model, prompt_BxP, max_new: int, *, unit: int, value: float):
  """The prompt read byte by byte with the unit held at `value` after each one."""
  carries = model.rnn.initial_carries(prompt_BxP.shape[0])
  logits = None
  for t in range(prompt_BxP.shape[1]):  # prompts are short: unrolled
    logits, carries = model(prompt_BxP[:, t : t + 1], carries)
    carries = _clamp(carries, unit, value)
  return logits, carries


def _steered_step(model, token_Bx1, carries, position, *, unit: int, value: float):
  logits, carries = model(token_Bx1, carries)
  return logits, _clamp(carries, unit, value)


@functools.cache  # one pair of functions per (unit, value): the generator compiles once for it
def _functions(unit: int, value: float):
  return (
    functools.partial(_steered_prefill, unit=unit, value=value),
    functools.partial(_steered_step, unit=unit, value=value),
  )


def steered_samples(
  model,
  tokenizer,
  prompt: str,
  unit: int | None,
  value: float | None,
  *,
  n: int = 3,
  max_new_tokens: int = 200,
  temperature: float = 0.8,
  top_k: int = 40,
  seed: int = 0,
) -> list[str]:
  """`n` continuations of `prompt`; unit None samples without steering."""
  if not prompt:
    raise ValueError('the prompt is empty: a steered sample needs at least one byte to start')
  if unit is None:
    prefill, step = sampling.recurrent_prefill, sampling.recurrent_step
  else:
    prefill, step = _functions(int(unit), float(value))
  prompt_BxP = jnp.asarray(np.tile(tokenizer.encode(prompt)[None], (n, 1)), jnp.int32)
  out = sampling.generate(
    model,
    prompt_BxP,
    max_new_tokens,
    key=jax.random.key(seed),
    temperature=temperature,
    top_k=top_k,
    prefill=prefill,
    step=step,
  )
  return [tokenizer.decode(np.asarray(row)) for row in out]
