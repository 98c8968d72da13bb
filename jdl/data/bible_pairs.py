"""Spanish-English verse pairs: the Reina-Valera 1909 (SWORD `spaRV1909eb`, Debian
`sword-text-sparv`) and the World English Bible (`engWEB2015eb`, `sword-text-web`), read with
`diatheke` and aligned by verse reference, offline.

Clean-up, as ../shared/DATA.md describes the modules' quirks:
- Strong's numbers (`<H2416>`, `<G5547>`) are removed; so are the WEB's footnotes `[1:1 ...]`,
  which is why the WEB is read with `-o f` (footnotes shown, then cut out): plain mode glues the
  words on either side of a footnote it hides ("Godcreated").
- A WEB verse spans several lines (poetry); its continuation lines are joined to it.
- diatheke prints a Psalm's superscription before *every* verse of the psalm, and carries it on
  to the verses of later psalms and books that have none (a heading line repeated before many
  verses): such repeated lines are dropped. The RV1909 has the superscription inside verse 1
  instead ("Salmo de David ... ¡OH Jehová, ..."); it ends where the verse proper begins, at the
  chapter's first word set in capitals, and is cut there, so both sides of Psalm C:1 hold the
  verse without its superscription. The capitals ("EN el principio") become "En".
- Each side's verses are keyed by (book, chapter, verse); a reference missing (or empty) on
  either side drops the pair, and `read_pairs` counts them. The WEB's deuterocanonical books have
  no Spanish side and drop out this way. A few chapters are numbered differently in the two
  Bibles (a verse moved across a chapter boundary): their pairs would be one verse apart, and
  those chapters are dropped whole (`shifted_chapters`: verse lengths that match better shifted).

Splits (fixed by a seed): one whole book (`held_out_book`, default Acts) is held out entirely as
the out-of-distribution test set 'book'; of the other verses, a seeded random sample of `n_test`
is the test set and the next `n_validation` the validation set, so both are spread over every
other book. The joint subword tokenizer (jdl.data.ding.SubwordTokenizer, BPE) is trained on the
training split only. Pairs, split and tokenizer are cached in ~/.cache/jdl/translation/.

Rows: packed (several pairs a row, told apart by segment ids: jdl.data.ding.pack; the
Transformer and, restarting their recurrences at every pair, the recurrent encoder-decoders) or
one pair a row (`packed=False`, right-padded: the layout a pair's packed loss is tested against),
with the same fields either way: src, src_segments, src_positions, tgt_in, tgt_out,
tgt_segments, tgt_positions.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import shutil
import subprocess
import unicodedata

import numpy as np

from jdl.data import ding
from jdl.data.errors import DataError
from jdl.data.tokenizers import CACHE

SPANISH, ENGLISH = 'spaRV1909eb', 'engWEB2015eb'
INSTALL = 'apt-get install -y diatheke sword-text-sparv sword-text-web'
REINSTALL = 'apt-get install --reinstall -y diatheke sword-text-sparv sword-text-web'
RANGE = 'Genesis 1:1-Revelation of John 22:21'
# The installed modules give 30,931 aligned pairs; far fewer means a cut or another text.
MIN_PAIRS = 30_000
SPLIT_VERSION = 2
DIRECTIONS = ('es-en', 'en-es')

Ref = tuple[str, int, int]  # (book, chapter, verse)

_VERSE = re.compile(r'^\s*((?:I{1,3}V? )?[A-Z][A-Za-z ]*?) (\d+):(\d+):(?: (.*))?$')
_MODULE_NAME = re.compile(r'^\(\w+\)$')  # diatheke's last line: "(spaRV1909eb)"
_MARKUP = re.compile(r'<[^>]*>')  # Strong's numbers <H2416>, and stray OSIS tags <title ...>
_FOOTNOTE = re.compile(r'\[[^\[\]]*\]')  # innermost first: footnotes nest
_CAPITALS = re.compile(r'\b([A-ZÁÉÍÓÚÑÜ]{2,})\b')


def present() -> bool:
  return shutil.which('diatheke') is not None and {SPANISH, ENGLISH} <= set(_modules())


def _modules() -> list[str]:
  out = subprocess.run(
    ['diatheke', '-b', 'system', '-k', 'modulelist'], capture_output=True, text=True
  ).stdout
  return [line.split(' : ')[0].strip() for line in out.splitlines() if ' : ' in line]


def _tidy(text: str) -> str:
  text = _MARKUP.sub(' ', text)
  while True:
    stripped = _FOOTNOTE.sub(' ', text)
    if stripped == text:
      break
    text = stripped
  text = text.replace('[', ' ').replace(']', ' ')  # what is left of a footnote cut at a line end
  text = ' '.join(text.split())
  # Removing a tag leaves a space before punctuation: "vida <H2416>, toda" -> "vida, toda".
  text = re.sub(r' ([,.;:!?)\]»])', r'\1', text)
  return unicodedata.normalize('NFC', text)


def parse_verses(text: str) -> dict[Ref, str]:
  """{reference: verse text} of one module's diatheke output (`-f plain`), in order.

  A line `Book C:V: text` starts a verse; other non-blank lines continue it, except heading
  lines: a line just before a verse line (after a blank one) whose text stands there more than
  once (diatheke's repeated Psalm superscriptions), and the text after the last verse's
  paragraph."""
  items = []  # ('verse', ref, text) | ('line', text) | ('blank',)
  for line in text.splitlines():
    if _MODULE_NAME.match(line.strip()):
      continue
    m = _VERSE.match(line)
    if m:
      items.append(('verse', (m.group(1), int(m.group(2)), int(m.group(3))), m.group(4) or ''))
    elif line.strip():
      items.append(('line', line.strip()))
    else:
      items.append(('blank',))
  candidates = {}
  for i, item in enumerate(items):
    if (
      item[0] == 'line'
      and i + 1 < len(items)
      and items[i + 1][0] == 'verse'
      and (i == 0 or items[i - 1][0] == 'blank')
    ):
      # Compared without footnotes: a repeated heading carries the next verse's footnote.
      heading = _tidy(item[1])
      candidates[heading] = candidates.get(heading, 0) + 1
  headings = {t for t, n in candidates.items() if n > 1}
  # After the last verse, past a blank line, comes the module's back matter (the WEB's glossary).
  last = max((i for i, item in enumerate(items) if item[0] == 'verse'), default=len(items))
  end = next((i for i in range(last, len(items)) if items[i][0] == 'blank'), len(items))
  items = items[:end]
  verses: dict[Ref, list[str]] = {}
  current = None
  for item in items:
    if item[0] == 'verse':
      current = verses.setdefault(item[1], [])
      current.append(item[2])
    elif item[0] == 'line' and current is not None and _tidy(item[1]) not in headings:
      current.append(item[1])
  # A heading also turns up glued to a verse's text (after a verse's last line, or as the whole
  # of a verse line): cut there too, the long ones only (a short one could be verse text).
  long_headings = [h for h in headings if len(h) >= 20]
  out = {}
  for ref, parts in verses.items():
    text = _tidy(' '.join(parts))
    for heading in long_headings:
      if heading in text:
        text = _tidy(text.replace(heading, ' '))
    out[ref] = text
  return out


def spanish_verse(ref: Ref, text: str) -> str:
  """A RV1909 verse as the WEB's: a Psalm's superscription (the text before verse 1's first
  word in capitals) cut, and words in capitals ("EN el principio") capitalised only."""
  book, _, verse = ref
  if book == 'Psalms' and verse == 1:
    m = _CAPITALS.search(text)
    if m and m.start() > 0:
      start = m.start()
      while start > 0 and text[start - 1] in '¡¿("\'':  # "¡OH Jehová": the ¡ is the verse's
        start -= 1
      text = text[start:]
  return _CAPITALS.sub(lambda m: m.group(1).capitalize(), text)


def align(spanish: dict[Ref, str], english: dict[Ref, str]) -> tuple[list[tuple], dict]:
  """[(reference, Spanish, English)] in the Spanish order, for references present and non-empty
  on both sides, and the counts of what was dropped."""
  pairs, missing_english, empty = [], 0, 0
  for ref, es in spanish.items():
    en = english.get(ref)
    if en is None:
      missing_english += 1
      continue
    es = spanish_verse(ref, es)
    if not es.strip() or not en.strip():
      empty += 1
      continue
    pairs.append((ref, es, en))
  missing_spanish = sum(ref not in spanish for ref in english)
  return pairs, {
    'pairs': len(pairs),
    'missing_english': missing_english,
    'missing_spanish': missing_spanish,  # the WEB's deuterocanonical books, mostly
    'empty': empty,
  }


def shifted_chapters(pairs: list[tuple], margin: float = 0.2) -> set[tuple[str, int]]:
  """Chapters whose verses the two Bibles number differently (the WEB moves Numbers 12:16 to
  13:1, for one): there the verse lengths (characters) of both sides correlate better when one
  side is shifted by a verse than as numbered, by more than `margin`."""
  chapters: dict[tuple[str, int], list] = {}
  for (book, chapter, verse), es, en in pairs:
    chapters.setdefault((book, chapter), []).append((verse, len(es), len(en)))
  out = set()
  for chapter, verses in chapters.items():
    if len(verses) < 4:
      continue
    _, es, en = np.array(sorted(verses), float).T
    as_numbered = np.corrcoef(es, en)[0, 1]
    shifted = max(np.corrcoef(es[1:], en[:-1])[0, 1], np.corrcoef(es[:-1], en[1:])[0, 1])
    if shifted > as_numbered + margin:
      out.add(chapter)
  return out


def _diatheke(module: str, *options: str) -> str:
  command = ['diatheke', '-b', module, *options, '-f', 'plain', '-k', RANGE]
  run = subprocess.run(command, capture_output=True, text=True)
  if run.returncode or not run.stdout.strip():
    raise DataError(
      f'the SWORD module {module}',
      f'`{" ".join(command)}` failed: {run.stderr.strip() or "no output"}',
      f'reinstall it with: {REINSTALL}',
    )
  return run.stdout


def _cache_dir() -> pathlib.Path:
  path = CACHE / 'translation'
  path.mkdir(parents=True, exist_ok=True)
  return path


def _write_json(path: pathlib.Path, value) -> None:
  tmp = path.with_suffix(f'.{os.getpid()}.tmp')
  tmp.write_text(json.dumps(value, ensure_ascii=False), encoding='utf-8')
  tmp.replace(path)


@functools.cache
def read_pairs() -> tuple[list[tuple], dict]:
  """The aligned pairs [(reference, Spanish, English)] and the drop counts; diatheke runs once
  (about 8 s) and the result is cached as JSON."""
  path = _cache_dir() / f'bible_es_en.pairs{SPLIT_VERSION}.json'
  fix = f'delete it (rm {path}): the next run reads the SWORD modules again'
  if path.is_file():
    try:
      raw = json.loads(path.read_text(encoding='utf-8'))
      pairs = [((b, int(c), int(v)), es, en) for (b, c, v), es, en in raw['pairs']]
      counts = raw['counts']
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise DataError(path, f'not a readable list of verse pairs ({e})', fix) from None
  else:
    if not present():
      raise DataError(
        'diatheke',
        f'the SWORD Bibles {SPANISH} and {ENGLISH} are not installed',
        f'install them with: {INSTALL}   (or: make data)',
      )
    spanish = parse_verses(_diatheke(SPANISH))
    english = parse_verses(_diatheke(ENGLISH, '-o', 'f'))
    pairs, counts = align(spanish, english)
    shifted = shifted_chapters(pairs)
    counts['shifted_chapters'] = sorted(f'{book} {chapter}' for book, chapter in shifted)
    kept = [p for p in pairs if p[0][:2] not in shifted]
    counts['shifted'], counts['pairs'] = len(pairs) - len(kept), len(kept)
    pairs = kept
    if len(pairs) >= MIN_PAIRS:
      _write_json(path, {'pairs': pairs, 'counts': counts})
  if len(pairs) < MIN_PAIRS:
    raise DataError(
      path if path.is_file() else f'the SWORD modules {SPANISH}, {ENGLISH}',
      f'{len(pairs)} aligned verse pairs, fewer than {MIN_PAIRS:,} (a cut or other text)',
      fix if path.is_file() else f'reinstall them with: {REINSTALL}',
    )
  return pairs, counts


def split_pairs(
  pairs: list[tuple],
  held_out_book: str = 'Acts',
  n_test: int = 1000,
  n_validation: int = 500,
  seed: int = 0,
) -> dict[str, list[tuple]]:
  """{'train', 'validation', 'test', 'book'}: the held-out book's pairs are 'book'; of the rest,
  a seeded permutation puts the first `n_test` in test, the next `n_validation` in validation.
  Each split keeps the Bible's order."""
  book = [p for p in pairs if p[0][0] == held_out_book]
  if not book:
    raise ValueError(f'held_out_book {held_out_book!r} is not a book of the aligned pairs')
  rest = [p for p in pairs if p[0][0] != held_out_book]
  rank = np.empty(len(rest), np.int64)
  rank[np.random.default_rng(seed).permutation(len(rest))] = np.arange(len(rest))
  out = {'train': [], 'validation': [], 'test': [], 'book': book}
  for r, p in zip(rank, rest):
    out['test' if r < n_test else 'validation' if r < n_test + n_validation else 'train'].append(p)
  return out


@functools.cache
def splits(held_out_book: str = 'Acts', seed: int = 0) -> dict[str, list[tuple]]:
  return split_pairs(read_pairs()[0], held_out_book, seed=seed)


@functools.cache
def tokenizer(vocab_size: int = 8000, seed: int = 0, held_out_book: str = 'Acts'):
  """The joint BPE of the training split (both languages), trained once and cached."""
  name = f'bible_es_en.split{SPLIT_VERSION}.{held_out_book}.seed{seed}.bpe{vocab_size}.json'
  path = _cache_dir() / name.replace(' ', '_')
  if path.is_file():
    return ding.SubwordTokenizer.load(path, vocab_size)
  train = splits(held_out_book, seed)['train']
  tok = ding.SubwordTokenizer.train([s for _, es, en in train for s in (es, en)], vocab_size)
  tok.save(path)
  return tok


def oriented(pairs: list[tuple], direction: str) -> tuple[list[str], list[str]]:
  """(sources, targets) for 'es-en' or 'en-es'."""
  if direction not in DIRECTIONS:
    raise ValueError(f'direction must be one of {DIRECTIONS}, got {direction!r}')
  es, en = [p[1] for p in pairs], [p[2] for p in pairs]
  return (es, en) if direction == 'es-en' else (en, es)


def one_per_row(src_ids: list[list[int]], tgt_ids: list[list[int]], length: int) -> dict:
  """One pair a row, right-padded to `length`: the packed rows' fields with one segment."""
  n = len(src_ids)
  out = {
    k: np.zeros((n, length), np.int32)
    for k in ('src', 'src_segments', 'src_positions', 'tgt_in', 'tgt_out', 'tgt_segments')
  }
  out['tgt_positions'] = np.zeros((n, length), np.int32)
  for r, (s, t) in enumerate(zip(src_ids, tgt_ids)):
    out['src'][r, : len(s)] = s
    out['src_segments'][r, : len(s)] = 1
    out['src_positions'][r, : len(s)] = np.arange(len(s))
    out['tgt_in'][r, : len(t) + 1] = [ding.BOS, *t]
    out['tgt_out'][r, : len(t) + 1] = [*t, ding.EOS]
    out['tgt_segments'][r, : len(t) + 1] = 1
    out['tgt_positions'][r, : len(t) + 1] = np.arange(len(t) + 1)
  return out


def rows(pairs, tok, direction: str, length: int, packed: bool, seed: int) -> tuple[dict, int]:
  """Rows of the pairs that fit in `length` tokens, and how many did not fit."""
  sources, targets = oriented(pairs, direction)
  src_ids, tgt_ids = tok.encode_batch(sources), tok.encode_batch(targets)
  # The target row holds the sentence and </s> (or <s> and the sentence): one token more.
  keep = [i for i in range(len(src_ids)) if len(src_ids[i]) <= length and len(tgt_ids[i]) < length]
  src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
  if packed:
    return ding.pack(src_ids, tgt_ids, length, seed), len(sources) - len(keep)
  order = np.random.default_rng(seed).permutation(len(keep))
  src_ids, tgt_ids = [src_ids[i] for i in order], [tgt_ids[i] for i in order]
  return one_per_row(src_ids, tgt_ids, length), len(sources) - len(keep)


def load(
  direction: str = 'es-en',
  vocab_size: int = 8000,
  length: int = 128,
  seed: int = 0,
  limit: int = 0,
  held_out_book: str = 'Acts',
  packed: bool = True,
):
  """Splits for the training loop: training rows, and validation, test and held-out-book rows
  (their teacher-forced loss). `limit` > 0 keeps the first pairs of each split (smoke runs)."""
  from jdl.data.splits import Splits

  tok = tokenizer(vocab_size, seed, held_out_book)
  out = {}
  for name, pairs in splits(held_out_book, seed).items():
    pairs = pairs[:limit] if limit else pairs
    out[name], _ = rows(pairs, tok, direction, length, packed, seed)
  evals = {'validation': out['validation'], 'test': out['test'], 'book': out['book']}
  return Splits(train=out['train'], evals=evals)


def _set(kwargs, split: str) -> tuple[list[str], list[str]]:
  pairs = splits(kwargs.get('held_out_book', 'Acts'), kwargs.seed)[split]
  pairs = pairs[: kwargs.limit] if kwargs.get('limit') else pairs
  return oriented(pairs, kwargs.direction)


def test_set(kwargs) -> tuple[list[str], list[str]]:
  """(sources, references) of the random-verse test split in the config's direction."""
  return _set(kwargs, 'test')


def book_set(kwargs) -> tuple[list[str], list[str]]:
  """(sources, references) of the held-out book."""
  return _set(kwargs, 'book')


def validation_set(kwargs) -> tuple[list[str], list[str]]:
  return _set(kwargs, 'validation')
