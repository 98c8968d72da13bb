"""German-English sentence pairs from the Ding dictionary (Debian `trans-de-en`), offline.

Each line of /usr/share/trans/de-en reads `German | German2 :: English | English2`, the `|` parts
aligned. A part is kept when, after cleaning (grammar tags `{f}`, labels `[coll.]`, spelling
variants `<...>` removed; of `X.; Y.` alternatives the first), both sides are sentences: they end
in . ? or ! and have at least 3 words. Pairs are de-duplicated, and the split is made over
*German sentences*: every pair of one German sentence lands in the same split, so no test German
sentence occurs in training; validation and test pairs whose English occurs in training are
dropped too, so that en->de is held out the same way.

A joint subword vocabulary (byte-pair encoding with Hugging Face `tokenizers`; one table serves
both languages, as the shared embedding needs) is trained on the training split only and cached
in ~/.cache/jdl/translation/, beside the split. The dictionary and both caches are checked when
read (a cut file, garbage, a tokenizer without the special ids) and a DataError names the file.

Training rows are *packed*: sentence pairs are placed first-fit into rows of `length` source and
`length` target tokens, with segment ids (0 = padding) and positions that restart per sentence,
so that almost no compute goes to padding.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import unicodedata

import numpy as np

from jdl.data.errors import DataError
from jdl.data.tokenizers import CACHE

SOURCE = pathlib.Path('/usr/share/trans/de-en')
INSTALL = 'apt-get update && apt-get install -y trans-de-en'
REINSTALL = 'apt-get update && apt-get install --reinstall -y trans-de-en'
# trans-de-en 1.9 yields 19,686 pairs; far fewer means a cut or another file.
MIN_PAIRS = 15_000
SPLIT_VERSION = 2
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ('<pad>', '<s>', '</s>', '<unk>')

_SENTENCE_END = re.compile(r'[.?!]["\'”“’»«]?$')
_MARKUP = re.compile(r'\{[^}]*\}|\[[^\]]*\]|<[^>]*>')
_ALTERNATIVES = re.compile(r'(?<=[.?!])\s*;\s*')


def present() -> bool:
  return SOURCE.is_file()


def clean(text: str) -> str:
  """Dictionary markup out, the first of `X.; Y.` alternatives, single spaces, NFC."""
  text = _MARKUP.sub(' ', text)
  text = _ALTERNATIVES.split(text.strip())[0]
  return unicodedata.normalize('NFC', ' '.join(text.split()))


# The dictionary's placeholders ("etw. tun", "to do sth."): phrase templates, not sentences.
_PLACEHOLDERS = {'etw.', 'jdn.', 'jdm.', 'jds.', 'sth.', 'sb.', "sb.'s", 'sb.’s', 'etc.'}


def is_sentence(text: str) -> bool:
  """Ends in . ? or !, has at least 3 words, starts like a sentence (capital, digit or quote)
  and uses none of the dictionary's placeholders."""
  words = text.split()
  return (
    bool(_SENTENCE_END.search(text))
    and len(words) >= 3
    and (text[0].isupper() or text[0].isdigit() or text[0] in '"\'„“‚‘«»')
    and not _PLACEHOLDERS.intersection(words)
  )


def read_pairs(path: pathlib.Path = SOURCE) -> list[tuple[str, str]]:
  """Every cleaned (German, English) sentence pair of the dictionary, de-duplicated, in file
  order."""
  if not path.is_file():
    raise DataError(
      path, 'the Ding dictionary is missing', f'install it with: {INSTALL} (or `make data`)'
    )
  reinstall = f'reinstall it with: {REINSTALL}'
  seen, pairs, line = set(), [], ''
  try:
    with open(path, encoding='utf-8') as f:
      for line in f:
        if line.startswith('#') or '::' not in line:
          continue
        german, english = line.rstrip('\n').split('::', 1)
        de_parts, en_parts = german.split('|'), english.split('|')
        if len(de_parts) != len(en_parts):
          continue  # not aligned: nothing to trust
        for de, en in zip(de_parts, en_parts):
          de, en = clean(de), clean(en)
          if is_sentence(de) and is_sentence(en) and (de, en) not in seen:
            seen.add((de, en))
            pairs.append((de, en))
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(path, f'not readable as UTF-8 text ({e})', reinstall) from None
  if line and not line.endswith('\n'):
    raise DataError(path, f'its last line {line[-60:]!r} has no newline (a cut file)', reinstall)
  if len(pairs) < MIN_PAIRS:
    raise DataError(
      path,
      f'{len(pairs)} sentence pairs, fewer than {MIN_PAIRS:,} (trans-de-en 1.9 yields 19,686)',
      reinstall,
    )
  return pairs


def split_pairs(
  pairs: list[tuple[str, str]], n_test: int = 1000, n_validation: int = 500, seed: int = 0
) -> dict[str, list[tuple[str, str]]]:
  """Train / validation / test by German sentence (a seeded permutation of the sorted unique
  German sentences: the first `n_test` are test, the next `n_validation` validation)."""
  german = sorted({de for de, _ in pairs})
  order = np.random.default_rng(seed).permutation(len(german))
  split_of = {}
  for rank, i in enumerate(order):
    split_of[german[i]] = (
      'test' if rank < n_test else 'validation' if rank < n_test + n_validation else 'train'
    )
  out = {'train': [], 'validation': [], 'test': []}
  for de, en in pairs:
    out[split_of[de]].append((de, en))
  train_english = {en for _, en in out['train']}
  for name in ('validation', 'test'):
    out[name] = [(de, en) for de, en in out[name] if en not in train_english]
  return out


def _cache_dir() -> pathlib.Path:
  path = CACHE / 'translation'
  path.mkdir(parents=True, exist_ok=True)
  return path


def _read_split(path: pathlib.Path) -> dict[str, list[tuple[str, str]]]:
  """A cached split, checked: three non-empty lists of (German, English) string pairs."""
  fix = f'delete it (rm {path}): the next run splits the dictionary again'
  try:
    raw = json.loads(path.read_text(encoding='utf-8'))
  except (OSError, ValueError) as e:  # ValueError: not UTF-8, or not JSON
    raise DataError(path, f'not a readable JSON split ({e})', fix) from None
  names = ('train', 'validation', 'test')
  if not isinstance(raw, dict) or sorted(raw) != sorted(names):
    keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
    raise DataError(path, f'holds {keys}, not the splits {list(names)}', fix)
  for name in names:
    pairs = raw[name]
    if not isinstance(pairs, list) or not pairs:
      raise DataError(path, f'split {name!r} is empty or not a list', fix)
    bad = [
      p
      for p in pairs
      if not (isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) for t in p))
    ]
    if bad:
      raise DataError(path, f'split {name!r} holds {bad[0]!r}, not a sentence pair', fix)
  return {name: [tuple(p) for p in raw[name]] for name in names}


@functools.cache
def splits(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
  """The fixed split, computed once and cached as JSON (parsing the dictionary takes seconds)."""
  path = _cache_dir() / f'ding_de_en.split{SPLIT_VERSION}.seed{seed}.json'
  if path.is_file():
    return _read_split(path)
  out = split_pairs(read_pairs(), seed=seed)
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(out, ensure_ascii=False), encoding='utf-8')
  tmp.replace(path)
  return out


# ---- the subword tokenizer -----------------------------------------------------------------------


class SubwordTokenizer:
  """A Hugging Face `tokenizers` BPE with SentencePiece-style word boundaries ('▁'), so that
  decoding restores the spaces: decode(encode(s)) == s for text of the training alphabet."""

  def __init__(self, tokenizer):
    self.tokenizer = tokenizer
    self.n_vocab = tokenizer.get_vocab_size()

  @classmethod
  def train(cls, texts, vocab_size: int) -> SubwordTokenizer:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token='<unk>'))
    tok.normalizer = normalizers.NFC()
    # Words (with their leading '▁'), then punctuation on its own: "design." is "▁design" ".".
    tok.pre_tokenizer = pre_tokenizers.Sequence(
      [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return cls(tok)

  @classmethod
  def load(cls, path: pathlib.Path, vocab_size: int) -> SubwordTokenizer:
    """A cached tokenizer, checked: the ids PAD, BOS, EOS and UNK stand for, at most
    `vocab_size` ids."""
    from tokenizers import Tokenizer

    fix = f'delete it (rm {path}): the next run trains it again'
    try:
      tok = cls(Tokenizer.from_file(str(path)))
    except Exception as e:  # the Rust library raises a bare Exception for a file it cannot parse
      raise DataError(path, f'not a readable tokenizer ({e})', fix) from None
    specials = tuple(tok.token(i) for i in range(len(SPECIALS)))
    if specials != SPECIALS or tok.n_vocab > vocab_size:
      raise DataError(
        path,
        f'a tokenizer of {tok.n_vocab} ids starting {specials}, not at most {vocab_size} '
        f'starting {SPECIALS}',
        fix,
      )
    return tok

  def save(self, path: pathlib.Path) -> None:
    tmp = path.with_suffix('.tmp')
    self.tokenizer.save(str(tmp))
    tmp.replace(path)

  def encode(self, text: str) -> list[int]:
    return self.tokenizer.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids) -> str:
    """Text of the ids up to the first </s>; padding and <s> are skipped."""
    ids = [int(i) for i in ids]
    if EOS in ids:
      ids = ids[: ids.index(EOS)]
    return self.tokenizer.decode([i for i in ids if i not in (PAD, BOS)])

  def token(self, i: int) -> str:
    return self.tokenizer.id_to_token(int(i))


@functools.cache
def tokenizer(vocab_size: int = 8000, seed: int = 0) -> SubwordTokenizer:
  """The joint BPE of the training split (both languages), trained once and cached."""
  path = _cache_dir() / f'ding_de_en.split{SPLIT_VERSION}.seed{seed}.bpe{vocab_size}.json'
  if path.is_file():
    return SubwordTokenizer.load(path, vocab_size)
  train = splits(seed)['train']
  tok = SubwordTokenizer.train([s for pair in train for s in pair], vocab_size)
  tok.save(path)
  return tok


# ---- packed rows -------------------------------------------------------------------------------


def pack(
  src_ids: list[list[int]], tgt_ids: list[list[int]], length: int, seed: int
) -> dict[str, np.ndarray]:
  """Pairs placed first-fit (in a seeded random order) into rows of `length` source and target
  tokens. Target rows hold <s> y (decoder input) and y </s> (what it must predict)."""
  order = np.random.default_rng(seed).permutation(len(src_ids))
  src_used = np.zeros(len(src_ids), np.int64)
  tgt_used = np.zeros(len(src_ids), np.int64)
  row_of = np.zeros(len(src_ids), np.int64)
  n_rows = 0
  for i in order:
    ls, lt = len(src_ids[i]), len(tgt_ids[i]) + 1
    fits = np.flatnonzero((src_used[:n_rows] + ls <= length) & (tgt_used[:n_rows] + lt <= length))
    row = fits[0] if fits.size else n_rows
    n_rows += not fits.size
    src_used[row] += ls
    tgt_used[row] += lt
    row_of[i] = row
  names = (
    'src',
    'src_segments',
    'src_positions',
    'tgt_in',
    'tgt_out',
    'tgt_segments',
    'tgt_positions',
  )
  out = {k: np.zeros((n_rows, length), np.int32) for k in names}
  src_fill = np.zeros(n_rows, np.int64)
  tgt_fill = np.zeros(n_rows, np.int64)
  segment = np.zeros(n_rows, np.int64)
  for i in order:
    r = row_of[i]
    segment[r] += 1
    s, t = src_ids[i], tgt_ids[i]
    a, b = src_fill[r], tgt_fill[r]
    out['src'][r, a : a + len(s)] = s
    out['src_segments'][r, a : a + len(s)] = segment[r]
    out['src_positions'][r, a : a + len(s)] = np.arange(len(s))
    out['tgt_in'][r, b : b + len(t) + 1] = [BOS, *t]
    out['tgt_out'][r, b : b + len(t) + 1] = [*t, EOS]
    out['tgt_segments'][r, b : b + len(t) + 1] = segment[r]
    out['tgt_positions'][r, b : b + len(t) + 1] = np.arange(len(t) + 1)
    src_fill[r] += len(s)
    tgt_fill[r] += len(t) + 1
  return out


def oriented(pairs: list[tuple[str, str]], direction: str) -> tuple[list[str], list[str]]:
  """(sources, targets) for 'de-en' or 'en-de'."""
  if direction not in ('de-en', 'en-de'):
    raise ValueError(f"direction must be 'de-en' or 'en-de', got {direction!r}")
  de, en = [p[0] for p in pairs], [p[1] for p in pairs]
  return (de, en) if direction == 'de-en' else (en, de)


def packed_split(
  pairs, tok: SubwordTokenizer, direction: str, length: int, seed: int
) -> tuple[dict[str, np.ndarray], int]:
  """Packed rows of the pairs that fit in `length` tokens, and how many did not fit."""
  sources, targets = oriented(pairs, direction)
  src_ids, tgt_ids = tok.encode_batch(sources), tok.encode_batch(targets)
  keep = [
    i for i in range(len(src_ids)) if len(src_ids[i]) <= length and len(tgt_ids[i]) + 1 <= length
  ]
  rows = pack([src_ids[i] for i in keep], [tgt_ids[i] for i in keep], length, seed)
  return rows, len(src_ids) - len(keep)


def load(
  direction: str = 'de-en', vocab_size: int = 8000, length: int = 64, seed: int = 0, limit: int = 0
):
  """Splits for the training loop: packed train rows, and packed validation and test rows
  (their teacher-forced loss). `limit` > 0 keeps the first pairs of each split (smoke runs)."""
  from jdl.data.splits import Splits

  tok = tokenizer(vocab_size, seed)
  parts = splits(seed)
  out = {}
  for name, pairs in parts.items():
    pairs = pairs[:limit] if limit else pairs
    out[name], _ = packed_split(pairs, tok, direction, length, seed)
  return Splits(train=out['train'], evals={'validation': out['validation'], 'test': out['test']})


def test_set(kwargs, split: str = 'test') -> tuple[list[str], list[str]]:
  """(sources, references) of the held-out test split in the config's direction."""
  pairs = splits(kwargs.seed)[split]
  pairs = pairs[: kwargs.limit] if kwargs.get('limit') else pairs
  return oriented(pairs, kwargs.direction)


def validation_set(kwargs) -> tuple[list[str], list[str]]:
  return test_set(kwargs, 'validation')
