"""The grain pipeline: per-epoch shuffles from the seed, process shards, resumable position."""

import numpy as np

from jdl.data import pipeline, streams


def arrays(n=100):
  return {'x': np.arange(n, dtype=np.float32)[:, None], 'y': np.arange(n, dtype=np.int32)}


def take(it, k):
  return [next(it) for _ in range(k)]


def test_each_epoch_is_a_new_permutation_of_distinct_rows():
  it = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=3))
  epoch1 = np.concatenate([b['y'] for b in take(it, 10)])
  epoch2 = np.concatenate([b['y'] for b in take(it, 10)])
  assert sorted(epoch1) == list(range(100)) and sorted(epoch2) == list(range(100))
  assert not np.array_equal(epoch1, epoch2)
  again = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=3))
  assert np.array_equal(np.concatenate([b['y'] for b in take(again, 10)]), epoch1)
  other_seed = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=4))
  assert not np.array_equal(np.concatenate([b['y'] for b in take(other_seed, 10)]), epoch1)


def test_incomplete_last_batch_is_dropped():
  it = iter(pipeline.train_dataset(arrays(95), global_batch=10, seed=0))
  rows = np.concatenate([b['y'] for b in take(it, 9)])
  assert len(set(rows)) == 90  # an epoch is 9 full batches: 90 distinct rows, 5 left out


def test_process_shards_concatenate_to_the_global_batch():
  whole = iter(pipeline.train_dataset(arrays(), global_batch=20, seed=1))
  shards = [
    iter(pipeline.train_dataset(arrays(), 20, 1, process_index=p, process_count=4))
    for p in range(4)
  ]
  for _ in range(12):  # across an epoch boundary
    global_batch = next(whole)['y']
    parts = [next(s)['y'] for s in shards]
    assert all(len(p) == 5 for p in parts)
    assert np.array_equal(np.concatenate(parts), global_batch)


def test_steps_per_call_stacks_consecutive_batches():
  single = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=2))
  stacked = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=2, steps_per_call=4))
  first = next(stacked)
  assert first['x'].shape == (4, 10, 1)
  for i in range(4):
    assert np.array_equal(first['y'][i], next(single)['y'])


def test_iterator_state_resumes_the_position():
  it = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=5))
  take(it, 13)
  state = it.get_state()
  expected = take(it, 3)
  resumed = iter(pipeline.train_dataset(arrays(), global_batch=10, seed=5))
  resumed.set_state(state)
  for a, b in zip(take(resumed, 3), expected):
    assert np.array_equal(a['y'], b['y'])


def test_eval_batches_cover_every_row_once_with_a_mask():
  batches = list(pipeline.eval_batches(arrays(23), global_batch=10))
  assert len(batches) == 3
  mask = np.concatenate([b['mask'] for b in batches])
  rows = np.concatenate([b['y'] for b in batches])[mask > 0]
  assert sorted(rows) == list(range(23)) and mask.sum() == 23
  shards = [list(pipeline.eval_batches(arrays(23), 10, p, 2)) for p in range(2)]
  merged = np.concatenate(
    [np.concatenate([shards[0][i]['y'], shards[1][i]['y']]) for i in range(3)]
  )
  assert np.array_equal(merged, np.concatenate([b['y'] for b in batches]))


def test_unshuffled_batches_read_the_rows_in_order_and_wrap():
  it = iter(pipeline.train_dataset(arrays(35), global_batch=10, seed=0, shuffle=False))
  ys = [b['y'] for b in take(it, 4)]
  assert [list(y) for y in ys[:3]] == [list(range(i * 10, i * 10 + 10)) for i in range(3)]
  assert list(ys[3]) == list(range(10))  # the next epoch starts over; rows 30-34 are dropped
  parts = [
    next(iter(pipeline.train_dataset(arrays(35), 10, 0, p, 2, shuffle=False)))['y']
    for p in range(2)
  ]
  assert list(np.concatenate(parts)) == list(range(10))


def test_streams_continue_row_by_row_and_reset_at_each_document():
  docs = [np.arange(100, 121), np.arange(200, 209), np.arange(300, 313)]  # 21, 9 and 13 tokens
  rows = streams.stream_rows(docs, streams=2, length=4)
  # Stream 0 reads doc 0 (5 windows); doc 1 goes to the shorter stream 1 (2 windows), then
  # doc 2 too (3 windows): both streams have 5 windows, so there are 5 batches of 2 rows.
  tokens = rows['tokens'].reshape(5, 2, 5)
  assert np.array_equal(tokens[:, 0].reshape(-1)[np.arange(25) % 5 != 4], np.arange(100, 120))
  for s in range(4):  # each window's last token is the next window's first: targets continue
    assert tokens[s, 0, -1] == tokens[s + 1, 0, 0]
  assert list(tokens[2, 1]) == [300, 301, 302, 303, 304]  # doc 2 starts anew in stream 1
  assert list(rows['reset'].reshape(5, 2)[:, 1]) == [1, 0, 1, 0, 0]
  assert list(rows['reset'].reshape(5, 2)[:, 0]) == [1, 0, 0, 0, 0]
  assert rows['mask'].sum() == 10  # no stream needed padding

  padded = streams.stream_rows([np.arange(21), np.arange(5)], streams=2, length=4)
  assert list(padded['mask'].reshape(5, 2)[:, 1]) == [1, 0, 0, 0, 0]
  assert list(padded['reset'].reshape(5, 2)[:, 1]) == [1, 1, 1, 1, 1]
