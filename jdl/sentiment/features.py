"""What a trained byte-level recurrent language model holds after reading a text: the cell state
c_T and hidden state h_T of its top layer at the text's last byte (the released sentiment-neuron
code used the cell state), computed in batched, jitted inference; and the per-byte trace of both
for one text (the paper's coloured-text figure).

Texts are sorted by length and read in batches padded to a multiple of `PAD` bytes, so a batch
of short reviews does not pay for the longest one; each batch compiles once (a few large
batches: the scan's per-step cost, not the arithmetic, dominates a narrow network on a CPU).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.data import reviews
from jdl.models import rnn

PAD = 256
KINDS = ('cell', 'hidden')


def check_model(model) -> None:
  """Refuses a model these features cannot read: a byte-level CharRNN whose cells carry (c, h)."""
  cells = getattr(getattr(model, 'rnn', None), 'forward_cells', None)
  if not isinstance(model, rnn.CharRNN) or cells is None or model.vocab_size != reviews.N_BYTES:
    raise ValueError('not a byte-level recurrent language model (a CharRNN over 256 byte ids)')
  if not isinstance(cells[-1], (rnn.MLSTMCell, rnn.LSTMCell)):
    raise ValueError(f'its cell {type(cells[-1]).__name__} has no cell state (mLSTM or LSTM only)')


@functools.partial(jax.jit, static_argnums=0)
def _final_states(graphdef, state, tokens_BxT, lengths_B):
  model = nnx.merge(graphdef, state)
  _, _, finals = model.rnn.run(model.embed(tokens_BxT), lengths_B)
  c_BxH, h_BxH = finals[-1]  # a step past a text's length leaves its carry unchanged
  return c_BxH, h_BxH


def final_states(
  model, texts, batch_size: int = 250, max_bytes: int = 0, keep: str = 'first'
) -> dict[str, np.ndarray]:
  """{'cell', 'hidden'} -> [N, H] float32: the top layer's state after each text's last byte
  (texts cut to `max_bytes` when > 0, keeping the first or last bytes)."""
  check_model(model)
  graphdef, state = nnx.split(model)
  tokens, lengths = reviews.padded_bytes(texts, max_bytes, keep)
  if (lengths == 0).any():
    raise ValueError(f'text {int(np.flatnonzero(lengths == 0)[0])} is empty')
  order = np.argsort(lengths, kind='stable')
  out = {
    k: np.zeros((len(texts), model.rnn.forward_cells[-1].hidden_size), np.float32) for k in KINDS
  }
  for start in range(0, len(order), batch_size):
    idx = order[start : start + batch_size]
    width = -(-int(lengths[idx].max()) // PAD) * PAD
    rows = np.zeros((batch_size, width), np.int32)  # a fixed batch: one shape per width
    n = min(width, tokens.shape[1])
    rows[: len(idx), :n] = tokens[idx, :n]
    lens = np.ones(batch_size, np.int32)
    lens[: len(idx)] = lengths[idx]
    c, h = _final_states(graphdef, state, jnp.asarray(rows), jnp.asarray(lens))
    out['cell'][idx] = np.asarray(c)[: len(idx)]
    out['hidden'][idx] = np.asarray(h)[: len(idx)]
  return out


@functools.partial(jax.jit, static_argnums=0)
def _trace(graphdef, state, tokens_1xT):
  model = nnx.merge(graphdef, state)
  x_1xTxF = model.embed(tokens_1xT)
  cells = model.rnn.forward_cells
  for cell in cells[:-1]:
    _, x_1xTxF, _ = rnn.run_cell(cell, x_1xTxF)
  top = cells[-1]

  def body(carry, x_1xF):
    carry, _ = top(carry, x_1xF)
    return carry, carry

  _, (c_Tx1xH, h_Tx1xH) = jax.lax.scan(body, top.initial_carry(1), jnp.swapaxes(x_1xTxF, 0, 1))
  return c_Tx1xH[:, 0], h_Tx1xH[:, 0]


def byte_trace(model, data: bytes) -> dict[str, np.ndarray]:
  """{'cell', 'hidden'} -> [T, H]: the top layer's state after each byte of `data`."""
  check_model(model)
  if not data:
    raise ValueError('the text is empty')
  graphdef, state = nnx.split(model)
  width = -(-len(data) // 64) * 64  # trailing padding is read after the text: it changes nothing
  tokens = np.zeros((1, width), np.int32)
  tokens[0, : len(data)] = np.frombuffer(data, np.uint8)
  c, h = _trace(graphdef, state, jnp.asarray(tokens))
  return {'cell': np.asarray(c)[: len(data)], 'hidden': np.asarray(h)[: len(data)]}
