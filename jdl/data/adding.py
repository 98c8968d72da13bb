"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4): synthetic by definition.

Each input is a sequence of T pairs (value, marker): values are uniform in [0, 1]; the marker is 1
at exactly two steps, one in the first half and one in the second half, and 0 elsewhere. The
target is the sum of the two marked values. Predicting the mean, 1.0, always gives MSE equal to
the variance of a sum of two uniforms, 2 * 1/12 = 1/6 ~ 0.167: a model must remember a value for
up to T steps to do better.
"""

from __future__ import annotations

import numpy as np

from jdl.data.splits import Splits

TRIVIAL_MSE = 1 / 6  # MSE of always predicting 1.0, the target's mean


def generate(rows: int, seq_len: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """{'x': float32 [rows, seq_len, 2] (value, marker), 'y': float32 [rows, 1]}."""
  if seq_len < 2:
    raise ValueError(f'seq_len must be >= 2 to hold one marker per half, got {seq_len}')
  half = seq_len // 2
  values = rng.uniform(0.0, 1.0, size=(rows, seq_len)).astype(np.float32)
  first = rng.integers(0, half, size=rows)
  second = rng.integers(half, seq_len, size=rows)
  markers = np.zeros((rows, seq_len), np.float32)
  markers[np.arange(rows), first] = 1.0
  markers[np.arange(rows), second] = 1.0
  target = values[np.arange(rows), first] + values[np.arange(rows), second]
  return {'x': np.stack([values, markers], axis=-1), 'y': target[:, None].astype(np.float32)}


def load(
  seq_len: int = 100, train_rows: int = 10_000, eval_rows: int = 1_000, seed: int = 0
) -> Splits:
  """Independent train, validation and test sets drawn from one seeded generator."""
  rng = np.random.default_rng(seed)
  return Splits(
    train=generate(train_rows, seq_len, rng),
    evals={
      'validation': generate(eval_rows, seq_len, rng),
      'test': generate(eval_rows, seq_len, rng),
    },
  )
