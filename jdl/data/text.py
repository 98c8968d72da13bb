"""Plain-text corpora for language models, offline: the King James Bible (as the whole, or as
its Old and New Testaments, two corpora for a mixture), tokenized and cut into training windows.

Install:  apt-get install -y diatheke sword-text-kjv
(the first load runs diatheke once, about 15 s, and caches the text in ~/.cache/jdl/kjv.txt).
The text must hold all 31,102 verses, and a cached token array must be 1-D integer ids within its
tokenizer's vocabulary; a file that is not raises a DataError that names it and how to rebuild it.

Split (fixed, whatever the tokenizer): verses are grouped in runs of 100 consecutive verses; of
every 20 runs the 19th goes to validation and the 20th to test, the rest to training. Held-out
text is thus spread over every book, and a training window never straddles held-out text it
could memorize (each split's text is tokenized on its own).

The `ioi` corpus is generated, not read: whole sentences of the indirect-object task
(jdl.data.ioi), training text from the names and templates that evaluation does not use,
validation and test text from the held-out ones. Mixed with the Bible it teaches a small GPT the
task on sentences among prose (experiments/interp/ioi_gpt.py).
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np

from jdl.data import ioi, streams, tokenizers
from jdl.data.errors import DataError
from jdl.data.mixture import Mixture
from jdl.data.splits import Splits

INSTALL_KJV = 'apt-get install -y diatheke sword-text-kjv'
REINSTALL_KJV = 'apt-get install --reinstall -y diatheke sword-text-kjv'
KJV_VERSES = 31_102  # Genesis 1:1 to Revelation 22:21
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


def _parse_verses(text: str) -> list[tuple[str, str]]:
  verses = []
  # diatheke repeats some Psalm headings on lines of their own: only verse lines are kept.
  for line in text.splitlines():
    m = _VERSE.match(line)
    if m and m.group(4):
      verses.append((m.group(1), ' '.join(m.group(4).split())))
  return verses


def _check_verses(verses: list[tuple[str, str]], source: str | os.PathLike, fix: str) -> None:
  """The whole Bible or an error: a cut or garbled text holds fewer verses, or ends elsewhere."""
  last = verses[-1][0] if verses else None
  if len(verses) != KJV_VERSES or last != 'Revelation of John':
    raise DataError(
      source,
      f"{len(verses)} verses ending in {last!r}, not the KJV's {KJV_VERSES:,} ending in "
      "'Revelation of John' (a cut or other text)",
      fix,
    )


def kjv_verses() -> list[tuple[str, str]]:
  """[(book, verse text)] for the 31,102 verses, Genesis 1:1 to Revelation 22:21."""
  path = CACHE / 'kjv.txt'
  if path.is_file():
    # The cache is derived from the SWORD module, but may be the only copy: it is reported, and
    # deleted only by the user.
    fix = f'delete it (rm {path}) and run again: diatheke writes it anew ({INSTALL_KJV})'
    try:
      verses = _parse_verses(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError) as e:
      raise DataError(path, f'not readable as UTF-8 text ({e})', fix) from None
    _check_verses(verses, path, fix)
    return verses
  module = _sword_module()
  if module is None:
    raise DataError(
      path,
      'the King James Bible is not installed (no file, and diatheke finds no KJV module)',
      f'install it with: {INSTALL_KJV}   (or: make data)',
    )
  command = ['diatheke', '-b', module, '-f', 'plain', '-k', 'Genesis 1:1-Revelation of John 22:21']
  reinstall = f'reinstall it with: {REINSTALL_KJV}'
  run = subprocess.run(command, capture_output=True, text=True)
  if run.returncode:
    raise DataError(module, f'`{" ".join(command)}` failed: {run.stderr.strip()}', reinstall)
  verses = _parse_verses(run.stdout)
  _check_verses(verses, f'the SWORD module {module}', reinstall)  # checked before it is cached
  CACHE.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f'.{os.getpid()}.tmp')
  tmp.write_text(run.stdout, encoding='utf-8')
  tmp.replace(path)
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


IOI_SENTENCES = {'train': 200_000, 'validation': 2_000, 'test': 2_000}


def ioi_texts() -> dict[str, str]:
  """The generated IOI corpus: {'train', 'validation', 'test'} -> text, one sentence per line.
  Names, places and objects are those GPT-2's BPE writes as one token; the split of names and
  templates is `ioi.held_out`'s default (a quarter of the names, 3 of the 15 templates)."""
  train, held = ioi.held_out(ioi.Vocabulary.single(tokenizers.gpt2()))
  vocab = {'train': train, 'validation': held, 'test': held}
  return {
    split: '\n'.join(ioi.sentences(vocab[split], n, seed=i)) + '\n'
    for i, (split, n) in enumerate(IOI_SENTENCES.items())
  }


def corpus_texts(name: str) -> dict[str, str]:
  """{'train', 'validation', 'test'} -> text, one verse (or sentence) per line."""
  if name == 'ioi':
    return ioi_texts()
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


@functools.cache  # read once per process: every cached token array is checked against its size
def char_alphabet() -> str:
  """Every character of the whole Bible (so all splits encode); sorted."""
  return ''.join(sorted(set('\n'.join(t for _, t in kjv_verses()) + '\n')))


@functools.cache
def make_tokenizer(name: str) -> tokenizers.Tokenizer:
  """'gpt2', 'char', or 'gpt2:A+B': GPT-2's BPE over the ids that corpora A and B use (every
  split) and the end-of-text id (tokenizers.SubsetBPE)."""
  if name == 'gpt2':
    return tokenizers.gpt2()
  if name == 'char':
    return tokenizers.CharTokenizer(char_alphabet())
  if name.startswith('gpt2:'):
    base = tokenizers.gpt2()
    corpora = name.removeprefix('gpt2:').split('+')
    used = [encoded(c, split, 'gpt2') for c in corpora for split in ('train', 'validation', 'test')]
    return tokenizers.SubsetBPE(base, np.concatenate([*used, [base.eot]]), name)
  raise ValueError(f"unknown tokenizer {name!r} ('gpt2', 'char' or 'gpt2:CORPUS+CORPUS')")


def _read_tokens(path: pathlib.Path, n_vocab: int) -> np.ndarray:
  """A cached token array, checked: a cut, float or out-of-range cache would train on garbage
  (a float array cast to int32 is all zeros, and ids >= the vocabulary make the loss NaN). It is
  reported, not deleted: something wrote it wrong, which the user should know."""
  fix = f'delete it (rm {path}): the next run tokenizes the text again'
  try:
    ids = np.load(path)
  except (OSError, ValueError, EOFError) as e:
    raise DataError(path, f'not a readable .npy token array ({e})', fix) from None
  if not isinstance(ids, np.ndarray) or ids.dtype.kind not in 'iu' or ids.ndim != 1:
    what = f'{ids.dtype} {ids.shape}' if isinstance(ids, np.ndarray) else type(ids).__name__
    raise DataError(path, f'holds {what}, not a 1-D integer array of token ids', fix)
  if not ids.size:
    raise DataError(path, 'holds no tokens', fix)
  low, high = int(ids.min()), int(ids.max())
  if low < 0 or high >= n_vocab:
    raise DataError(path, f'token ids {low}..{high} outside the vocabulary 0..{n_vocab - 1}', fix)
  return ids.astype(np.int32, copy=False)


def encoded(name: str, split: str, tokenizer: str) -> np.ndarray:
  """Token ids of one corpus split, cached in ~/.cache/jdl/tokens (BPE of the Bible takes
  seconds; the cache makes every later run and test start at once)."""
  version = f'v{RUN}x{EVERY}' if name != 'ioi' else f'n{IOI_SENTENCES[split]}'
  path = CACHE / 'tokens' / f'{name}.{split}.{tokenizer}.{version}.npy'
  if path.is_file():
    # GPT-2's vocabulary size is known without reading its BPE files.
    n_vocab = tokenizers.GPT2_VOCAB if tokenizer == 'gpt2' else make_tokenizer(tokenizer).n_vocab
    return _read_tokens(path, n_vocab)
  tok = make_tokenizer(tokenizer)
  if isinstance(tok, tokenizers.SubsetBPE):  # the GPT-2 ids renumbered: no second tokenization
    ids = tok.from_base(encoded(name, split, 'gpt2'))
  else:
    ids = tok.encode(corpus_texts(name)[split]).astype(np.int32)
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
