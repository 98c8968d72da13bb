"""grain pipelines: shuffled training batches and padded evaluation batches over a data source.

A source is either a dict of equally long numpy arrays (in-memory data) or an object with
`__len__` and `batch(indices, rng) -> dict of arrays` (records read and preprocessed on demand,
such as a tfds array_record data source with ImageNet's augmentation), or, for training, a
stream that makes its own batches: `batches(local_batch, seed, process_index, process_count)` ->
a grain IterDataset (documents tokenized and packed as they are read, jdl.data.webtext). Rows
are gathered a whole batch at a time, and random preprocessing draws from a generator seeded by
(seed, step, process), so every run, resumed or not, sees the same batches.

Both are split by process: with P processes and a global batch of B rows, process p holds rows
[p*B/P, (p+1)*B/P) of every global batch, so the global batch (and therefore the loss) is the
same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import numpy as np


class ArraySource:
  """In-memory rows: one numpy fancy-index per field and batch."""

  def __init__(self, arrays: dict[str, np.ndarray]):
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f'fields have different numbers of rows: {lengths}')
    self.arrays = arrays
    self.length = next(iter(lengths.values()))

  def __len__(self) -> int:
    return self.length

  def batch(
    self, indices: np.ndarray, rng: np.random.Generator | None = None
  ) -> dict[str, np.ndarray]:
    return {k: v[indices] for k, v in self.arrays.items()}


def as_source(data) -> ArraySource:
  return ArraySource(data) if isinstance(data, dict) else data


def num_rows(data) -> int:
  return len(as_source(data))


def local_batch_size(global_batch: int, process_count: int) -> int:
  if global_batch % process_count:
    raise ValueError(f'batch_size {global_batch} is not divisible by {process_count} processes')
  return global_batch // process_count


class _Steps:
  """Row indices of every training step: epoch e visits the rows in the order of a permutation
  drawn from (seed, e), split into global batches; a process takes its slice of each batch.

  The shuffle is one numpy permutation per epoch rather than grain's per-element shuffle: a
  200,000-row epoch of small batches spent seconds in per-row Python calls that way.
  """

  def __init__(
    self,
    n: int,
    global_batch: int,
    seed: int,
    process_index: int,
    process_count: int,
    shuffle: bool = True,
  ):
    self.n, self.global_batch, self.seed, self.shuffle = n, global_batch, seed, shuffle
    self.local = local_batch_size(global_batch, process_count)
    self.offset = process_index * self.local
    self.per_epoch = n // global_batch
    self._cache: dict[int, np.ndarray] = {}

  def permutation(self, epoch: int) -> np.ndarray:
    if not self.shuffle:  # rows in order: batch s continues the streams of batch s - 1
      return np.arange(self.n)
    if epoch not in self._cache:
      if len(self._cache) > 2:
        self._cache.pop(min(self._cache))
      self._cache[epoch] = np.random.default_rng((self.seed, epoch)).permutation(self.n)
    return self._cache[epoch]

  def __call__(self, step: int) -> np.ndarray:
    epoch, j = divmod(step, self.per_epoch)
    start = j * self.global_batch + self.offset
    return self.permutation(epoch)[start : start + self.local]


def train_dataset(
  data,
  global_batch: int,
  seed: int,
  process_index: int = 0,
  process_count: int = 1,
  steps_per_call: int = 1,
  shuffle: bool = True,
) -> grain.IterDataset:
  """Endless batches, reshuffled every epoch from `seed` (in row order with `shuffle=False`);
  the incomplete last batch is dropped.

  Element c holds the batches of steps [c*k, (c+1)*k) for k = `steps_per_call`, stacked on a
  leading axis when k > 1, ready for a compiled call that runs k steps. grain iterates it in a
  background thread and records its position for checkpoints.
  """
  if hasattr(data, 'batches'):  # a stream: it shuffles, shards and batches its own rows
    local = local_batch_size(global_batch, process_count)
    ds = data.batches(local, seed, process_index, process_count)
    return ds.batch(steps_per_call) if steps_per_call > 1 else ds
  source = as_source(data)
  n = len(source)
  if n < global_batch:
    raise ValueError(f'the training split has {n} rows, fewer than batch_size {global_batch}')
  steps = _Steps(n, global_batch, seed, process_index, process_count, shuffle)

  def element(call: int) -> dict[str, np.ndarray]:
    first = call * steps_per_call
    rng = np.random.default_rng((seed, first, process_index))
    if steps_per_call == 1:
      return source.batch(steps(first), rng)
    indices = np.stack([steps(s) for s in range(first, first + steps_per_call)])
    flat = source.batch(indices.reshape(-1), rng)
    return {k: v.reshape(*indices.shape, *v.shape[1:]) for k, v in flat.items()}

  ds = grain.MapDataset.range(2**62).map(element)  # endless: the loop decides when to stop
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))


def eval_batches(
  data, global_batch: int, process_index: int = 0, process_count: int = 1
) -> Iterator[dict[str, np.ndarray]]:
  """Every row exactly once; the last global batch is padded and its padding has mask 0."""
  source = as_source(data)
  n = len(source)
  local = local_batch_size(global_batch, process_count)
  padded = -(-n // global_batch) * global_batch

  def with_mask(indices: np.ndarray) -> dict[str, np.ndarray]:
    batch = source.batch(np.minimum(indices, n - 1))
    batch['mask'] = (indices < n).astype(np.float32)
    return batch

  ds = grain.MapDataset.range(padded).batch(local)[process_index::process_count].map(with_mask)
  return iter(ds)
