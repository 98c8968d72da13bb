"""Documents laid out as parallel token streams, for a recurrent state carried between batches
(truncated backpropagation through time).

With B streams, global batch s holds window s of every stream: row j of batch s + 1 continues
row j of batch s where it stopped, so the state a recurrent network ends one batch with is the
state it should start the next with. Documents are dealt to the streams in order, each to the
stream that is shortest so far; a window never straddles two documents, and the first window of
each document has `reset` = 1 (the carried state starts afresh there). Streams that run out
early are padded with windows whose `mask` is 0. Rows must be read in order (`Splits(...,
shuffle=False)`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def windows(tokens: np.ndarray, length: int) -> np.ndarray:
  """Windows of `length` + 1 tokens (inputs and shifted targets) that continue one another: window
  i covers tokens [i*length, (i+1)*length]; a tail too short for a window is dropped."""
  n = (len(tokens) - 1) // length
  index_NxL1 = np.arange(n)[:, None] * length + np.arange(length + 1)[None]
  return tokens[index_NxL1] if n else np.zeros((0, length + 1), tokens.dtype)


def stream_rows(
  documents: Sequence[np.ndarray], streams: int, length: int
) -> dict[str, np.ndarray]:
  """{'tokens' [W*B, length+1], 'reset' [W*B], 'mask' [W*B]}: row s*B + j is window s of stream
  j, for B = `streams` and W the longest stream's number of windows."""
  lanes: list[list[np.ndarray]] = [[] for _ in range(streams)]
  starts: list[list[bool]] = [[] for _ in range(streams)]
  for doc in documents:
    rows = windows(np.asarray(doc), length)
    if not len(rows):
      continue
    j = min(range(streams), key=lambda j: len(starts[j]))
    lanes[j].extend(rows)
    starts[j].extend([True] + [False] * (len(rows) - 1))
  width = max(len(s) for s in starts)
  if width == 0:
    raise ValueError(f'no document is longer than one window of {length} + 1 tokens')
  tokens = np.zeros((width, streams, length + 1), np.int32)
  reset = np.ones((width, streams), np.float32)
  mask = np.zeros((width, streams), np.float32)
  for j in range(streams):
    n = len(starts[j])
    if n:
      tokens[:n, j] = np.stack(lanes[j])
      reset[:n, j] = starts[j]
      mask[:n, j] = 1.0
  return {
    'tokens': tokens.reshape(width * streams, length + 1),
    'reset': reset.reshape(-1),
    'mask': mask.reshape(-1),
  }
