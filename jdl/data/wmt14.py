"""WMT14 English-German from tfds (`wmt14_translate/de-en`), the paper's data, for TPU runs.

Read with `tfds.data_source` (array_record, no TensorFlow at train time; prepare it once with
`tfds build wmt14_translate/de-en --file_format=array_record` on a machine with internet, or point
TFDS_DATA_DIR at a bucket that has it). The joint BPE is trained on the first
`tokenizer_sentences` training pairs (both languages) and cached beside the split's size, so a
run on mock data never reuses a real tokenizer or the other way round. Rows are tokenized on
demand, one sentence pair per row, truncated to `length` tokens. The test set is newstest2014
(tfds 'test').
"""

from __future__ import annotations

import functools

import numpy as np

from jdl.data.ding import BOS, EOS, SubwordTokenizer, _cache_dir, oriented
from jdl.data.tfds_images import data_source

NAME = 'wmt14_translate/de-en'


def _records(split: str, data_dir: str | None = None):
  # tfds imports its dataset collections lazily and swallows their import errors ("Dataset
  # wmt14_translate not found"); importing the builder's module registers it, or says why not.
  import tensorflow_datasets.translate.wmt14  # noqa: F401

  return data_source(NAME, split, data_dir)


def _text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


@functools.cache
def tokenizer(
  vocab_size: int = 37000, seed: int = 0, tokenizer_sentences: int = 1_000_000
) -> SubwordTokenizer:
  records = _records('train')
  n = min(len(records), tokenizer_sentences)
  path = _cache_dir() / f'wmt14_de_en.train{len(records)}.first{n}.bpe{vocab_size}.json'
  if path.is_file():
    return SubwordTokenizer.load(path, vocab_size)

  def texts():
    for i in range(n):
      record = records[i]
      yield _text(record['de'])
      yield _text(record['en'])

  tok = SubwordTokenizer.train(texts(), vocab_size)
  tok.save(path)
  return tok


class WmtPairs:
  """A tfds split as a jdl data source: each row one sentence pair, tokenized when read."""

  def __init__(
    self, split: str, tok: SubwordTokenizer, direction: str, length: int, limit: int = 0
  ):
    self.records, self.tok = _records(split), tok
    self.source_key, self.target_key = direction.split('-')
    self.length = length
    self.n = min(len(self.records), limit) if limit else len(self.records)

  def __len__(self) -> int:
    return self.n

  def batch(
    self, indices: np.ndarray, rng: np.random.Generator | None = None
  ) -> dict[str, np.ndarray]:
    L = self.length
    names = (
      'src',
      'src_segments',
      'src_positions',
      'tgt_in',
      'tgt_out',
      'tgt_segments',
      'tgt_positions',
    )
    flat = np.asarray(indices).reshape(-1)
    out = {k: np.zeros((len(flat), L), np.int32) for k in names}
    records = [self.records[int(i)] for i in flat]
    src = self.tok.encode_batch([_text(r[self.source_key]) for r in records])
    tgt = self.tok.encode_batch([_text(r[self.target_key]) for r in records])
    for row, (s, t) in enumerate(zip(src, tgt)):
      s, t = s[:L], t[: L - 1]
      out['src'][row, : len(s)] = s
      out['src_segments'][row, : len(s)] = 1
      out['src_positions'][row, : len(s)] = np.arange(len(s))
      out['tgt_in'][row, : len(t) + 1] = [BOS, *t]
      out['tgt_out'][row, : len(t) + 1] = [*t, EOS]
      out['tgt_segments'][row, : len(t) + 1] = 1
      out['tgt_positions'][row, : len(t) + 1] = np.arange(len(t) + 1)
    return {k: v.reshape(*np.shape(indices), L) for k, v in out.items()}


def load(
  direction: str = 'de-en',
  vocab_size: int = 37000,
  length: int = 128,
  seed: int = 0,
  limit: int = 0,
  tokenizer_sentences: int = 1_000_000,
):
  from jdl.data.splits import Splits

  tok = tokenizer(vocab_size, seed, tokenizer_sentences)
  return Splits(
    train=WmtPairs('train', tok, direction, length, limit),
    evals={'validation': WmtPairs('validation', tok, direction, length, limit)},
  )


def test_set(kwargs) -> tuple[list[str], list[str]]:
  """newstest2014 (tfds 'test') as (sources, references) in the config's direction."""
  records = _records('test')
  n = min(len(records), kwargs.limit) if kwargs.get('limit') else len(records)
  pairs = [(_text(records[i]['de']), _text(records[i]['en'])) for i in range(n)]
  return oriented(pairs, kwargs.direction)
