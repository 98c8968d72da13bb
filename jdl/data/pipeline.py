"""grain pipelines over in-memory arrays: shuffled training batches and padded evaluation batches.

Both are split by process: with P processes and a global batch of B rows, process p holds rows
[p*B/P, (p+1)*B/P) of every global batch, so the global batch (and therefore the loss) is the
same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import numpy as np


def _gather(arrays: dict[str, np.ndarray]):
  def take(indices: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[indices] for k, v in arrays.items()}
  return take


def num_rows(arrays: dict[str, np.ndarray]) -> int:
  lengths = {len(v) for v in arrays.values()}
  if len(lengths) != 1:
    raise ValueError(f'fields have different numbers of rows: '
                     f'{ {k: len(v) for k, v in arrays.items()} }')
  return lengths.pop()


def local_batch_size(global_batch: int, process_count: int) -> int:
  if global_batch % process_count:
    raise ValueError(f'batch_size {global_batch} is not divisible by {process_count} processes')
  return global_batch // process_count


def train_dataset(arrays: dict[str, np.ndarray], global_batch: int, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  steps_per_call: int = 1) -> grain.IterDataset:
  """Endless batches, reshuffled every epoch from `seed`; the incomplete last batch is dropped.

  Each element holds `steps_per_call` consecutive batches stacked on a leading axis, ready for a
  compiled call that runs that many steps.
  """
  n = num_rows(arrays)
  local = local_batch_size(global_batch, process_count)
  if n < global_batch:
    raise ValueError(f'the training split has {n} rows, fewer than batch_size {global_batch}')
  # Indices are shuffled and batched, then rows are gathered a whole batch at a time: one numpy
  # fancy-index per batch rather than one Python call per row.
  batches = grain.MapDataset.range(n).shuffle(seed=seed).batch(local, drop_remainder=True)
  usable = len(batches) // process_count * process_count
  ds = batches[process_index:usable:process_count].repeat(None).map(_gather(arrays))
  if steps_per_call > 1:
    ds = ds.batch(steps_per_call)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=4))


def steps_per_epoch(arrays: dict[str, np.ndarray], global_batch: int) -> int:
  return num_rows(arrays) // global_batch


def eval_batches(arrays: dict[str, np.ndarray], global_batch: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Every row exactly once; the last global batch is padded and its padding has mask 0."""
  n = num_rows(arrays)
  local = local_batch_size(global_batch, process_count)
  padded = -(-n // global_batch) * global_batch
  take = _gather(arrays)

  def with_mask(indices: np.ndarray) -> dict[str, np.ndarray]:
    batch = take(np.minimum(indices, n - 1))
    batch['mask'] = (indices < n).astype(np.float32)
    return batch

  ds = grain.MapDataset.range(padded).batch(local)[process_index::process_count].map(with_mask)
  return iter(ds)
