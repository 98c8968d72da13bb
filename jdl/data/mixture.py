"""A weighted mixture of corpora, as GPT-3 trained on its five: each training sequence is drawn
from corpus i with probability w_i, at a uniformly random offset.

Deterministic: the rows drawn depend only on (seed, sizes, weights, number of rows), so a run
and its resumption, or two machines, see the same data. Weights need not sum to one (GPT-3's
published weights sum to 101%); they are normalized.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Mixture:
  names: tuple[str, ...]
  weights: tuple[float, ...]  # as given; `probabilities` are the normalized ones

  def __post_init__(self):
    if len(self.names) != len(self.weights) or not self.names:
      raise ValueError('a mixture needs one weight per corpus, and at least one corpus')
    if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
      raise ValueError(f'mixture weights must be >= 0 with a positive sum: {self.weights}')

  @classmethod
  def of(cls, weights: dict[str, float]) -> Mixture:
    return cls(tuple(weights), tuple(float(w) for w in weights.values()))

  @property
  def probabilities(self) -> np.ndarray:
    w = np.asarray(self.weights, np.float64)
    return w / w.sum()

  def sources(self, n: int, seed: int) -> np.ndarray:
    """The corpus index of each of n draws."""
    rng = np.random.default_rng((seed, 0))
    return rng.choice(len(self.names), size=n, p=self.probabilities)

  def epochs(self, sizes: dict[str, float], tokens_trained: float) -> dict[str, float]:
    """Expected passes over each corpus when training on `tokens_trained` tokens:
    tokens_trained * p_i / size_i (GPT-3's 'epochs elapsed when training for 300B tokens')."""
    return {
      name: tokens_trained * p / sizes[name] for name, p in zip(self.names, self.probabilities)
    }

  def windows(
    self, corpora: dict[str, np.ndarray], n_rows: int, length: int, seed: int
  ) -> tuple[np.ndarray, np.ndarray]:
    """n_rows windows of `length` tokens: ([n_rows, length] int32, [n_rows] corpus index)."""
    src_N = self.sources(n_rows, seed)
    rows_NxL = np.empty((n_rows, length), np.int32)
    for i, name in enumerate(self.names):
      tokens = corpora[name]
      if len(tokens) < length:
        raise ValueError(f'corpus {name!r} has {len(tokens)} tokens, fewer than {length}')
      picked = np.flatnonzero(src_N == i)
      # One generator per corpus, so adding rows of one corpus does not move another's offsets.
      rng = np.random.default_rng((seed, 1, i))
      starts = rng.integers(0, len(tokens) - length + 1, size=picked.size)
      rows_NxL[picked] = tokens[starts[:, None] + np.arange(length)]
    return rows_NxL, src_N
