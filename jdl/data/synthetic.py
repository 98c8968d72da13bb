"""Synthetic regression rows, for unit tests and speed benchmarks only (never for a result).

y = tanh(x @ w1) @ w2 + noise, with x standard normal: learnable by an MLP, cheap to make.
"""

from __future__ import annotations

import numpy as np

from jdl.data.splits import Splits


def regression(rows: int, features: int, outputs: int = 1, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((rows, features), dtype=np.float32)
  w1 = rng.standard_normal((features, 16), dtype=np.float32) / np.sqrt(features)
  w2 = rng.standard_normal((16, outputs), dtype=np.float32)
  y = np.tanh(x @ w1) @ w2 + 0.1 * rng.standard_normal((rows, outputs), dtype=np.float32)
  return x, y.astype(np.float32)


def load(
  rows: int = 2048, features: int = 8, outputs: int = 1, seed: int = 0, eval_rows: int = 256
) -> Splits:
  x, y = regression(rows + eval_rows, features, outputs, seed)
  return Splits(
    train={'x': x[:rows], 'y': y[:rows]}, evals={'validation': {'x': x[rows:], 'y': y[rows:]}}
  )
