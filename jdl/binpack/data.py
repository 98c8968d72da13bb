"""Bin packing datasets: the vendored OR-Library / FunSearch files and generated sets.

A dataset is a ``Dataset(name, capacity, instances)`` where ``instances`` maps an
instance name to a 1-D int64 array of item sizes in arrival order (order matters
for online packing).

* OR1..OR4 and Weibull 5k are read from the JSON files in ``data/`` (see the README
  there for provenance and licences).
* Weibull 10k and Weibull 100k were never released by the FunSearch authors; we
  regenerate them with the paper's recipe and fixed seeds (see ``weibull``).
* ``uniform_training`` is the search's own training set, disjoint from OR1..OR4:
  same distribution family as Falkenauer's instances but a separate random stream.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib

import numpy as np

DATA_DIR = pathlib.Path(__file__).parent / 'data'
# The best program of jdl's own search and its log (written by `jdl binpack search`).
FOUND_DIR = pathlib.Path(__file__).parent / 'found'
FOUND_PROGRAM = FOUND_DIR / 'best_priority.py'
FOUND_LOG = FOUND_DIR / 'search_log.jsonl'

# Table column name -> vendored file.
_FILES = {
  'OR1': 'or1_binpack1.json',
  'OR2': 'or2_binpack2.json',
  'OR3': 'or3_binpack3.json',
  'OR4': 'or4_binpack4.json',
  'Weibull 5k': 'weibull_5k_funsearch.json',
}

# Generated Weibull sets: (number of instances, items per instance, seed).
_WEIBULL_GENERATED = {
  'Weibull 10k': (5, 10_000, 10_000),
  'Weibull 100k': (1, 100_000, 100_000),
}

DATASET_NAMES = ('OR1', 'OR2', 'OR3', 'OR4', 'Weibull 5k', 'Weibull 10k', 'Weibull 100k')

# The search's training set (never the OR test files): uniform 20..100, capacity 150.
TRAIN_SEED = 2023
# Lengths like OR1..OR4's (120..1000 items), with more short instances than long ones:
# the search's score weighs every instance equally (bins / L1), and short sequences are
# where a heuristic tuned on long ones failed (run 1, see docs/binpack.md). 4,960 items.
TRAIN_LENGTHS = (120,) * 8 + (250,) * 4 + (500,) * 2 + (1000,) * 2


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  capacity: int
  instances: dict  # name -> np.ndarray[int64]

  @property
  def num_items(self) -> int:
    return sum(len(v) for v in self.instances.values())


def _load_json(name: str) -> Dataset:
  raw = json.loads((DATA_DIR / _FILES[name]).read_text())
  instances = {}
  for key, inst in raw['instances'].items():
    items = np.asarray(inst['items'], dtype=np.int64)
    # Every instance in these files carries its own capacity; the paper's code reads
    # it per instance, but all instances of one file share it, which we rely on.
    assert inst['capacity'] == raw['capacity'] and inst['num_items'] == len(items)
    instances[key] = items
  return Dataset(name, int(raw['capacity']), instances)


def weibull(
  num_items: int, seed: int, shape: float = 3.0, scale: float = 45.0, capacity: int = 100
) -> np.ndarray:
  """Paper recipe: Weibull(shape 3, scale 45) samples made integers in 1..capacity.

  The README of the vendored data notes that the released Weibull 5k items fit
  truncation (floor) better than rounding, so we floor, then clip to 1..100.
  """
  rng = np.random.default_rng(seed)
  x = scale * rng.weibull(shape, size=num_items)
  return np.clip(np.floor(x), 1, capacity).astype(np.int64)


def uniform(num_items: int, seed: int, low: int = 20, high: int = 100) -> np.ndarray:
  """Falkenauer-style items: integers uniform in low..high inclusive."""
  rng = np.random.default_rng(seed)
  return rng.integers(low, high + 1, size=num_items).astype(np.int64)


@functools.cache
def load(name: str) -> Dataset:
  """One table column's dataset by its display name (e.g. "OR3", "Weibull 10k")."""
  if name in _FILES:
    return _load_json(name)
  if name in _WEIBULL_GENERATED:
    count, n, seed = _WEIBULL_GENERATED[name]
    # One child seed per instance, so instance i does not depend on the count.
    instances = {f'{name.split()[1]}_{i}': weibull(n, seed + i) for i in range(count)}
    return Dataset(name, 100, instances)
  if name == 'train':
    return uniform_training()
  raise KeyError(f'unknown dataset {name!r}; known: {DATASET_NAMES + ("train",)}')


def uniform_training(lengths=TRAIN_LENGTHS, seed: int = TRAIN_SEED) -> Dataset:
  """The search's training instances: uniform 20..100, capacity 150, fixed seed.

  Seeds seed*1000+i never coincide with the OR-Library stream, so these are new
  instances from the same distribution as OR1..OR4.
  """
  instances = {f'train_{i}_{n}': uniform(n, seed * 1000 + i) for i, n in enumerate(lengths)}
  return Dataset('train', 150, instances)
