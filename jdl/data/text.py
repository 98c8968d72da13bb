"""Plain-text corpora for language models, offline: the King James Bible (as the whole, or as
its Old and New Testaments, two corpora for a mixture), tokenized and cut into training windows.

Install:  apt-get install -y diatheke sword-text-kjv
(the first load runs diatheke once, about 15 s, and caches the text in ~/.cache/jdl/kjv.txt).

Split (fixed, whatever the tokenizer): verses are grouped in runs of 100 consecutive verses; of
every 20 runs the 19th goes to validation and the 20th to test, the rest to training. Held-out
text is thus spread over every book, and a training window never straddles held-out text it
could memorize (each split's text is tokenized on its own).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np

from jdl.data import streams, tokenizers
from jdl.data.mixture import Mixture
from jdl.data.splits import Splits

INSTALL_KJV = 'apt-get install -y diatheke sword-text-kjv'
CACHE = tokenizers.CACHE
_VERSE = re.compile(r'^\s*(.+?) (\d+):(\d+): ?(.*?)\s*$')
RUN, EVERY = 100, 20


def kjv_present() -> bool:
  return (CACHE / 'kjv.txt').is_file() or _sword_module() is not None


def _sword_module() -> str | None:
  """The installed SWORD module of the KJV (Debian's sword-text-kjv names it engKJV2006eb)."""
  if shutil.which('diatheke') is None:
    return None
  out = subprocess.run(
    ['diatheke', '-b', 'system', '-k', 'modulelist'], capture_output=True, text=True
  ).stdout
  names = [line.split(' : ')[0].strip() for line in out.splitlines() if ' : ' in line]
  kjv = [n for n in names if 'KJV' in n.upper()]
  return kjv[0] if kjv else None


def kjv_verses() -> list[tuple[str, str]]:
  """[(book, verse text)] for the 31,102 verses, Genesis 1:1 to Revelation 22:21."""
  path = CACHE / 'kjv.txt'
  if not path.is_file():
    module = _sword_module()
    if module is None:
      raise FileNotFoundError(
        f'the King James Bible is not installed; install it with:\n  {INSTALL_KJV}'
      )
    text = subprocess.run(
      ['diatheke', '-b', module, '-f', 'plain', '-k', 'Genesis 1:1-Revelation of John 22:21'],
      capture_output=True,
      text=True,
      check=True,
    ).stdout
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f'.{os.getpid()}.tmp')
    tmp.write_text(text)
    tmp.replace(path)
  verses = []
  # diatheke repeats some Psalm headings on lines of their own: only verse lines are kept.
  for line in path.read_text().splitlines():
    m = _VERSE.match(line)
    if m and m.group(4):
      verses.append((m.group(1), ' '.join(m.group(4).split())))
  return verses


def _split_verses(name: str) -> dict[str, list[tuple[str, str]]]:
  """{'train', 'validation', 'test'} -> [(book, verse)] of one corpus, in order."""
  verses = kjv_verses()
  first_nt = next(i for i, (book, _) in enumerate(verses) if book == 'Matthew')
  picked = {'kjv': verses, 'kjv_ot': verses[:first_nt], 'kjv_nt': verses[first_nt:]}
  if name not in picked:
    raise ValueError(f'unknown corpus {name!r}; known: {sorted(picked)}')
  out = {'train': [], 'validation': [], 'test': []}
  for i, verse in enumerate(picked[name]):
    slot = (i // RUN) % EVERY
    out['validation' if slot == EVERY - 2 else 'test' if slot == EVERY - 1 else 'train'].append(
      verse
    )
  return out


def corpus_texts(name: str) -> dict[str, str]:
  """{'train', 'validation', 'test'} -> text, one verse per line."""
  return {
    split: '\n'.join(text for _, text in verses) + '\n'
    for split, verses in _split_verses(name).items()
  }


def book_documents(name: str, split: str, tokenizer: str) -> list[np.ndarray]:
  """Token ids of each book's verses of one corpus split: the documents of a stream layout."""
  books: dict[str, list[str]] = {}
  for book, text in _split_verses(name)[split]:
    books.setdefault(book, []).append(text)
  encode = make_tokenizer(tokenizer).encode
  return [np.asarray(encode('\n'.join(lines) + '\n'), np.int32) for lines in books.values()]


def char_alphabet() -> str:
  """Every character of the whole Bible (so all splits encode); sorted."""
  return ''.join(sorted(set('\n'.join(t for _, t in kjv_verses()) + '\n')))


def make_tokenizer(name: str) -> tokenizers.Tokenizer:
  if name == 'gpt2':
    return tokenizers.gpt2()
  if name == 'char':
    return tokenizers.CharTokenizer(char_alphabet())
  raise ValueError(f"unknown tokenizer {name!r} ('gpt2' or 'char')")


def encoded(name: str, split: str, tokenizer: str) -> np.ndarray:
  """Token ids of one corpus split, cached in ~/.cache/jdl/tokens (BPE of the Bible takes
  seconds; the cache makes every later run and test start at once)."""
  path = CACHE / 'tokens' / f'{name}.{split}.{tokenizer}.v{RUN}x{EVERY}.npy'
  if path.is_file():
    return np.load(path)
  ids = make_tokenizer(tokenizer).encode(corpus_texts(name)[split]).astype(np.int32)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f'.{os.getpid()}.tmp.npy')
  np.save(tmp, ids)
  tmp.replace(path)
  return ids


def _eval_rows(tokens: np.ndarray, length: int, limit: int) -> np.ndarray:
  """Non-overlapping windows, evenly thinned to at most `limit` rows."""
  n = len(tokens) // length
  rows = tokens[: n * length].reshape(n, length)
  if limit and n > limit:
    rows = rows[np.linspace(0, n - 1, limit).astype(int)]
  return rows


def load(
  corpora: dict | tuple,
  tokenizer: str,
  context: int,
  train_rows: int,
  eval_rows: int = 0,
  seed: int = 0,
):
  """Rows of `context + 1` tokens (inputs and shifted targets) in field 'tokens'.

  corpora: {name: weight} (or pairs); training rows are drawn through the weighted `Mixture`,
  evaluation rows are every corpus's held-out windows (at most `eval_rows` per corpus and split).
  The 'source' field records each training row's corpus."""
  weights = dict(corpora)
  mixture = Mixture.of(weights)
  length = context + 1
  train = {name: encoded(name, 'train', tokenizer) for name in weights}
  rows, source = mixture.windows(train, train_rows, length, seed)
  evals = {}
  for split in ('validation', 'test'):
    parts = [_eval_rows(encoded(name, split, tokenizer), length, eval_rows) for name in weights]
    evals[split] = {'tokens': np.concatenate(parts)}
  return Splits(train={'tokens': rows, 'source': source.astype(np.int32)}, evals=evals)


def load_streams(
  corpora: dict | tuple, tokenizer: str, context: int, streams_per_batch: int, eval_rows: int = 0
) -> Splits:
  """Every book of the corpora's training text, in order, as `streams_per_batch` parallel streams
  of `context` + 1 token windows (jdl.data.streams), read unshuffled so that a recurrent state
  carries from one batch to the next and restarts at each book. Evaluation rows are the same
  held-out windows as `load`'s."""
  names = [name for name, _ in dict(corpora).items()]
  documents = [doc for name in names for doc in book_documents(name, 'train', tokenizer)]
  train = streams.stream_rows(documents, streams_per_batch, context)
  evals = {}
  for split in ('validation', 'test'):
    parts = [_eval_rows(encoded(name, split, tokenizer), context + 1, eval_rows) for name in names]
    evals[split] = {'tokens': np.concatenate(parts)}
  return Splits(train=train, evals=evals, shuffle=False)
