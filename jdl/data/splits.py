"""What a data loader returns: the training split and the evaluation splits. Imports no JAX."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Splits:
  """A task's data. Each split is a dict of equally long numpy arrays (one row per example) or a
  source with `__len__` and `batch(indices, rng)` (see jdl.data.pipeline).

  `shuffle=False` keeps the training rows in order: global batch s is rows [s*B, (s+1)*B), so
  row j of consecutive batches continues one stream (jdl.data.streams lays text out that way,
  for a recurrent state carried from batch to batch).
  """

  train: Any
  evals: dict[str, Any]  # name ('validation', 'test') -> split
  shuffle: bool = True
