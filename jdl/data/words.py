"""Word corpora for word embeddings, offline: the GCIDE dictionary and WordNet's glosses.

Install:  apt-get install -y dict-gcide wordnet-base
(optionally the King James Bible too: apt-get install -y diatheke sword-text-kjv).

Text. GCIDE (/usr/share/dictd/gcide.dict.dz, read entry by entry through its index) loses its
markup: pronunciations `\\Ab"so*lute\\`, braces `{...}`, and every bracketed group (the source
tags `[1913 Webster]`, `[WordNet 1.5]`, labels `[Obs.]`, etymologies `[F. ... fr. L. ...]`);
character entities such as `['e]` become their base letter first. A paragraph of an entry is a
sentence. WordNet (/usr/share/wordnet/data.{noun,verb,adj,adv}) gives one sentence per synset:
its gloss, after `|`. Text is lower-cased and cut into runs of letters or of digits (`king's`
-> `king`, `s`).

Vocabulary. Words sorted by count (ties alphabetically); `min_count` drops the rare ones from the
stream, as word2vec does before it windows. The tokenised corpus is cached once in
~/.cache/jdl/words/ as numpy arrays (ids into the full vocabulary, sentence starts); vocabulary
cuts and phrases are made from it in seconds.

Phrases (Mikolov et al. 2013, section 4): score(a, b) = (count(ab) - delta) / (count(a) count(b))
x total, the factor `total` (tokens of the pass) as in word2phrase, so that a threshold does not
depend on the corpus size; bigrams scoring above the threshold become one token `a_b`, in
`passes` passes with the threshold decreasing, so that longer phrases form from shorter ones.

Skip-gram data (`SkipGramSource`) follows the reference C code: a word w of count f is kept with
probability (sqrt(f / (s T)) + 1) s T / f (T the total count, s = `sample`), the window of each
centre word is drawn uniformly from 1..`window` and counts kept words only (discarded words do
not take up window slots), windows stop at sentence ends, and negatives are drawn from the
unigram distribution raised to 3/4 (a negative equal to the target is skipped).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import os
import pathlib
import re
import unicodedata

import numpy as np

from jdl.data.errors import DataError
from jdl.paths import CACHE as JDL_CACHE

GCIDE = pathlib.Path('/usr/share/dictd/gcide.dict.dz')
GCIDE_INDEX = pathlib.Path('/usr/share/dictd/gcide.index')
WORDNET = pathlib.Path('/usr/share/wordnet')
WORDNET_PARTS = ('noun', 'verb', 'adj', 'adv')
INSTALL = 'apt-get install -y dict-gcide wordnet-base'
CACHE = JDL_CACHE / 'words'
CORPUS_VERSION = 1
# GCIDE 0.48 holds ~126k distinct entries; far fewer means a cut file.
MIN_GCIDE_ENTRIES = 100_000
MIN_WORDNET_GLOSSES = 100_000

_TOKEN = re.compile(r'[^\W\d_]+|\d+')
_ENTITY = re.compile(r'\[([\'`"^=~.\-]?)([a-z]{1,2})(\^?)\]')
_PRONUNCIATION = re.compile(r'\\[^\\\n]*\\')
_BRACKETS = re.compile(r'\[[^\[\]]*\]')


def present() -> bool:
  return (
    GCIDE.is_file()
    and GCIDE_INDEX.is_file()
    and all((WORDNET / f'data.{p}').is_file() for p in WORDNET_PARTS)
  )


def tokenize(text: str) -> list[str]:
  """Lower-cased runs of letters or of digits."""
  return _TOKEN.findall(unicodedata.normalize('NFC', text).lower())


def clean_gcide(entry: str) -> str:
  """One GCIDE entry without its markup (see the module doc)."""
  text = _ENTITY.sub(lambda m: m.group(2)[0], entry)
  text = _PRONUNCIATION.sub(' ', text)
  for _ in range(3):  # nested brackets, innermost first
    text = _BRACKETS.sub(' ', text)
  return text.replace('{', ' ').replace('}', ' ')


def b64(text: str) -> int:
  """A number of the dictd index (GCIDE's offsets and lengths are written in base 64)."""
  alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  value = 0
  for ch in text:
    value = value * 64 + alphabet.index(ch)
  return value


def gcide_sentences() -> list[str]:
  """The paragraphs of every GCIDE entry (the database's own 00-database entries left out)."""
  for path in (GCIDE, GCIDE_INDEX):
    if not path.is_file():
      raise DataError(path, 'the GCIDE dictionary is missing', f'install it with: {INSTALL}')
  try:
    data = gzip.open(GCIDE).read()
  except (OSError, EOFError) as e:
    raise DataError(GCIDE, f'not a readable dictzip file ({e})', f'reinstall: {INSTALL}') from None
  spans = set()
  for line in GCIDE_INDEX.read_text(encoding='utf-8', errors='replace').splitlines():
    parts = line.split('\t')
    if len(parts) == 3 and not parts[0].startswith('00-database'):
      spans.add((b64(parts[1]), b64(parts[2])))
  if len(spans) < MIN_GCIDE_ENTRIES:
    raise DataError(
      GCIDE_INDEX, f'{len(spans):,} entries, expected >= {MIN_GCIDE_ENTRIES:,} (cut?)', INSTALL
    )
  sentences = []
  for offset, length in sorted(spans):
    entry = data[offset : offset + length].decode('utf-8', errors='replace')
    for paragraph in re.split(r'\n\s*\n', clean_gcide(entry)):
      if paragraph.strip():
        sentences.append(paragraph)
  return sentences


def wordnet_sentences() -> list[str]:
  """WordNet's glosses (definitions and examples), one per synset."""
  glosses = []
  for part in WORDNET_PARTS:
    path = WORDNET / f'data.{part}'
    if not path.is_file():
      raise DataError(path, 'WordNet is missing', f'install it with: {INSTALL}')
    with open(path, encoding='utf-8', errors='replace') as f:
      for line in f:
        if not line.startswith(' ') and ' | ' in line:
          glosses.append(line.split(' | ', 1)[1])
  if len(glosses) < MIN_WORDNET_GLOSSES:
    raise DataError(WORDNET, f'{len(glosses):,} glosses, expected >= 100,000 (cut?)', INSTALL)
  return glosses


def bible_sentences() -> list[str]:
  from jdl.data import text

  return [verse for _, verse in text.kjv_verses()]


SOURCES = {'gcide': gcide_sentences, 'wordnet': wordnet_sentences, 'kjv': bible_sentences}


@dataclasses.dataclass
class Corpus:
  """A token stream over a vocabulary: `tokens[starts[i]:starts[i + 1]]` is sentence i."""

  words: list[str]  # id -> word, by count descending
  counts: np.ndarray  # int64 [V]
  tokens: np.ndarray  # int32 [N]
  starts: np.ndarray  # int64 [S + 1], starts[-1] = N

  @property
  def index(self) -> dict[str, int]:
    return {w: i for i, w in enumerate(self.words)}

  def sentences(self) -> list[list[str]]:
    """The stream as lists of words (what gensim trains on)."""
    words = np.asarray(self.words, dtype=object)
    return [list(words[self.tokens[a:b]]) for a, b in zip(self.starts[:-1], self.starts[1:])]

  def sentence_ids(self) -> np.ndarray:
    """int32 [N]: the sentence of every token."""
    return (np.searchsorted(self.starts, np.arange(len(self.tokens)), side='right') - 1).astype(
      np.int32
    )


def from_sentences(sentences: list[list[str]]) -> Corpus:
  """A corpus of every word (min_count 1), ids by count descending then alphabetically."""
  counter = collections.Counter(w for s in sentences for w in s)
  words = sorted(counter, key=lambda w: (-counter[w], w))
  index = {w: i for i, w in enumerate(words)}
  lengths = np.array([len(s) for s in sentences], np.int64)
  tokens = np.fromiter((index[w] for s in sentences for w in s), np.int32, int(lengths.sum()))
  starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  counts = np.array([counter[w] for w in words], np.int64)
  return Corpus(words, counts, tokens, starts)


def restrict(corpus: Corpus, min_count: int) -> Corpus:
  """Words of count >= min_count; the others leave the stream (and empty sentences go)."""
  keep = corpus.counts >= min_count
  new_id = np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int32)
  mapped = new_id[corpus.tokens]
  kept = mapped >= 0
  lengths = np.add.reduceat(kept.astype(np.int64), corpus.starts[:-1]) if len(kept) else []
  lengths = np.asarray(lengths)[np.diff(corpus.starts) > 0]
  lengths = lengths[lengths > 0]
  starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  words = [w for w, k in zip(corpus.words, keep) if k]
  return Corpus(words, corpus.counts[keep], mapped[kept], starts)


# ---- phrases ------------------------------------------------------------------------------------


def phrase_scores(corpus: Corpus, delta: float) -> dict[tuple[int, int], float]:
  """score(a, b) = (count(ab) - delta) / (count(a) count(b)) * total, for every adjacent pair
  (a, b) inside a sentence that occurs more than delta times."""
  a, b = corpus.tokens[:-1].astype(np.int64), corpus.tokens[1:].astype(np.int64)
  same = np.ones(len(a), bool)
  same[corpus.starts[1:-1] - 1] = False  # the pair across a sentence end
  keys, counts = np.unique(a[same] * len(corpus.words) + b[same], return_counts=True)
  frequent = counts > delta
  keys, counts = keys[frequent], counts[frequent]
  ia, ib = keys // len(corpus.words), keys % len(corpus.words)
  total = float(len(corpus.tokens))
  score = (counts - delta) / (corpus.counts[ia] * corpus.counts[ib]).astype(np.float64) * total
  return {(int(x), int(y)): float(s) for x, y, s in zip(ia, ib, score)}


def merge_phrases(corpus: Corpus, threshold: float, delta: float) -> tuple[Corpus, list]:
  """One pass: left to right, a pair scoring above `threshold` becomes one token `a_b` (a token
  joins at most one phrase per pass). Returns the new corpus (min_count 1) and the phrases
  formed, [(phrase, score, count)] best first."""
  scores = phrase_scores(corpus, delta)
  chosen = {k: s for k, s in scores.items() if s > threshold}
  sentences, formed = [], collections.Counter()
  words = corpus.words
  for a, b in zip(corpus.starts[:-1], corpus.starts[1:]):
    ids, out, i = corpus.tokens[a:b], [], 0
    while i < len(ids):
      if i + 1 < len(ids) and (int(ids[i]), int(ids[i + 1])) in chosen:
        phrase = f'{words[ids[i]]}_{words[ids[i + 1]]}'
        formed[(int(ids[i]), int(ids[i + 1]))] += 1
        out.append(phrase)
        i += 2
      else:
        out.append(words[ids[i]])
        i += 1
    sentences.append(out)
  table = sorted(
    ((f'{words[x]}_{words[y]}', chosen[(x, y)], n) for (x, y), n in formed.items()),
    key=lambda t: -t[1],
  )
  return from_sentences(sentences), table


def phrases(
  corpus: Corpus, passes: int, threshold: float, delta: float, decay: float = 0.5
) -> tuple[Corpus, list]:
  """`passes` passes of `merge_phrases`, the threshold multiplied by `decay` after each."""
  found = []
  for p in range(passes):
    corpus, table = merge_phrases(corpus, threshold * decay**p, delta)
    found += table
  return corpus, sorted(found, key=lambda t: -t[1])


# ---- the corpus, built once -------------------------------------------------------------------


def _cache_path(sources: tuple[str, ...]) -> pathlib.Path:
  key = hashlib.sha1(f'{CORPUS_VERSION}:{",".join(sources)}'.encode()).hexdigest()[:10]
  return CACHE / f'{"+".join(sources)}-{key}.npz'


def full_corpus(sources: tuple[str, ...] = ('gcide', 'wordnet')) -> Corpus:
  """Every word of the sources (min_count 1), tokenised once and cached."""
  unknown = [s for s in sources if s not in SOURCES]
  if unknown:
    raise ValueError(f'unknown corpus source(s) {unknown}; known: {sorted(SOURCES)}')
  path = _cache_path(tuple(sources))
  if path.is_file():
    try:
      with np.load(path, allow_pickle=False) as z:
        words = z['words'].tolist()
        corpus = Corpus(words, z['counts'], z['tokens'], z['starts'])
      if len(corpus.words) == len(corpus.counts) and corpus.starts[-1] == len(corpus.tokens):
        return corpus
    except (OSError, ValueError, KeyError):
      pass
    raise DataError(path, 'a cut or foreign corpus cache', f'delete it (rm {path}) and run again')
  sentences = []
  for source in sources:
    sentences += [t for s in SOURCES[source]() if (t := tokenize(s))]
  corpus = from_sentences(sentences)
  CACHE.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f'.{os.getpid()}.tmp.npz')
  np.savez(
    tmp,
    words=np.array(corpus.words),
    counts=corpus.counts,
    tokens=corpus.tokens,
    starts=corpus.starts,
  )
  tmp.replace(path)
  return corpus


def load_corpus(
  sources: tuple[str, ...] = ('gcide', 'wordnet'),
  min_count: int = 5,
  phrase_passes: int = 0,
  phrase_threshold: float = 100.0,
  phrase_delta: float = 5.0,
) -> Corpus:
  """The training corpus: the sources, phrases (if any passes), then the min_count cut."""
  corpus = full_corpus(tuple(sources))
  if phrase_passes:
    corpus, _ = phrases(corpus, phrase_passes, phrase_threshold, phrase_delta)
  return restrict(corpus, min_count)


# ---- word2vec's sampling ------------------------------------------------------------------------


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
  """The C code's subsampling: P(keep w) = (sqrt(f/(sT)) + 1) sT/f, capped at 1 (sample 0:
  keep everything)."""
  counts = np.asarray(counts, np.float64)
  if sample <= 0:
    return np.ones_like(counts)
  threshold = sample * counts.sum()
  return np.minimum((np.sqrt(counts / threshold) + 1) * threshold / counts, 1.0)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
  """P_n(w) = f(w)^power / sum f^power: the negatives' distribution."""
  weights = np.asarray(counts, np.float64) ** power
  return weights / weights.sum()


class CentreSource:
  """word2vec training data for the grain pipeline: row r is the chunk of `chunk` corpus
  positions starting at r * chunk; a batch of rows becomes the centre words they keep, packed
  `centres` to a row (a row is padding after its last centre).

  For every centre kept by subsampling: its window b, uniform in 1..window; its context, the
  first b kept words on each side within the sentence (looked for up to `reach` positions
  away); K negatives from the noise distribution. Keep decisions are drawn per centre for the
  neighbourhood it looks at, so each (centre, context) pair has the C code's probability (there
  one decision per token and epoch is shared by the windows that see it). All draws come from
  the batch's generator, which the pipeline seeds from (seed, step, process): a resumed run
  sees the same batches.

  Fields: target [R, S] (the centre), context [R, S, 2W] and context_valid (1/0), negatives
  [R, S, K], and `lost` [R] (centres that did not fit, counted on the first row: the capacity
  is set so that this stays 0). With `subwords` (fastText: every word's n-gram rows, ragged)
  each row also lists the distinct words of its contexts once, and their n-grams once:
  unique_words [R, U] (-1: empty) with unique_count (slots of the row holding the word),
  word_slot [R, S, 2W] (a context's place in its row's list), ngrams [R, M] (-1: empty) with
  ngram_owner (the place of their word) and ngram_total [R, U] (n-grams of each word). A row
  whose n-grams exceed M drops the words that do not fit (their pairs counted in `lost`).
  """

  def __init__(
    self,
    corpus: Corpus,
    window: int,
    sample: float,
    negatives: int,
    chunk: int,
    centres: int,
    reach: int | None = None,
    subwords: tuple[np.ndarray, np.ndarray] | None = None,
  ):
    self.tokens = corpus.tokens
    self.window, self.negatives, self.chunk, self.centres = window, negatives, chunk, centres
    self.reach = reach or 4 * window
    self.keep = keep_probability(corpus.counts, sample).astype(np.float32)
    self.cdf = np.cumsum(noise_distribution(corpus.counts))
    sentence = corpus.sentence_ids()
    self.lo = corpus.starts[:-1][sentence].astype(np.int64)
    self.hi = corpus.starts[1:][sentence].astype(np.int64)
    # fastText: (offsets [V + 1], ids): word w's n-gram rows are ids[offsets[w]:offsets[w + 1]].
    self.subwords = subwords
    self.ngram_capacity = 0

  def __len__(self) -> int:
    return -(-len(self.tokens) // self.chunk)

  def expected_centres(self) -> float:
    """Mean centres kept per row: chunk x the corpus's mean keep probability."""
    return self.chunk * float(self.keep[self.tokens].mean())

  def draw_negatives(self, rng: np.random.Generator, shape) -> np.ndarray:
    u = rng.random(shape) * self.cdf[-1]
    return np.minimum(np.searchsorted(self.cdf, u, side='right'), len(self.cdf) - 1).astype(
      np.int32
    )

  def centres_of(self, positions: np.ndarray, rng: np.random.Generator):
    """(centre positions kept, context ids [n, 2W], context_valid [n, 2W])."""
    n_tok = len(self.tokens)
    positions = positions[positions < n_tok]
    positions = positions[rng.random(len(positions)) < self.keep[self.tokens[positions]]]
    n, W, R = len(positions), self.window, self.reach
    b = rng.integers(1, W + 1, n)
    context = np.zeros((n, 2 * W), np.int32)
    valid = np.zeros((n, 2 * W), np.float32)
    steps = np.arange(1, R + 1)
    for side, first_slot in ((-1, 0), (1, W)):
      q = positions[:, None] + side * steps  # [n, R], nearest first
      inside = (q >= self.lo[positions][:, None]) & (q < self.hi[positions][:, None])
      ids = self.tokens[np.clip(q, 0, n_tok - 1)]
      kept = inside & (rng.random(q.shape) < self.keep[ids])
      rank = np.cumsum(kept, axis=1)
      take = kept & (rank <= b[:, None])
      rows, cols = np.nonzero(take)
      slots = first_slot + rank[rows, cols] - 1
      context[rows, slots] = ids[rows, cols]
      valid[rows, slots] = 1.0
    return positions, context, valid

  def batch(self, indices: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    rng = rng if rng is not None else np.random.default_rng(0)
    indices = np.asarray(indices).reshape(-1)
    positions = (indices[:, None] * self.chunk + np.arange(self.chunk)).reshape(-1)
    positions, context, valid = self.centres_of(positions, rng)
    rows, S, W2 = len(indices), self.centres, 2 * self.window
    capacity = rows * S
    n = min(len(positions), capacity)
    out = {
      'target': np.zeros(capacity, np.int32),
      'context': np.zeros((capacity, W2), np.int32),
      'context_valid': np.zeros((capacity, W2), np.float32),
      'negatives': self.draw_negatives(rng, (capacity, self.negatives)),
    }
    out['target'][:n] = self.tokens[positions[:n]]
    out['context'][:n], out['context_valid'][:n] = context[:n], valid[:n]
    out = {k: v.reshape(rows, S, *v.shape[1:]) for k, v in out.items()}
    lost = len(positions) - n
    if self.subwords is not None:
      lost_pairs = self._add_subwords(out)
    out['lost'] = np.zeros(rows, np.float32)
    out['lost'][0] = lost + (lost_pairs if self.subwords is not None else 0)
    return out

  def calibrate_subwords(self, rows: int) -> None:
    """The n-gram capacity of a row: the mean over a sample of batches plus 6 standard
    deviations, so that a row almost never overflows (overflow is counted in `lost`)."""
    self.ngram_capacity = 10**9  # while calibrating: as wide as the sample needs
    rng = np.random.default_rng(12345)
    picks = rng.choice(len(self), min(max(rows, 256), len(self)), replace=False)
    used = (self.batch(picks, rng)['ngrams'] >= 0).sum(1)
    self.ngram_capacity = int(np.ceil(used.mean() + 6 * used.std())) + 16

  def _add_subwords(self, out: dict) -> int:
    """The fastText fields of a packed batch (see the class doc); returns the pairs dropped."""
    offsets, flat = self.subwords
    context, valid = out['context'], out['context_valid']
    R, S, W2 = context.shape
    U = S * W2
    row = np.repeat(np.arange(R), S * W2).reshape(R, S, W2)
    real = valid > 0
    keys = row[real].astype(np.int64) * len(offsets) + context[real]
    unique, inverse = np.unique(keys, return_inverse=True)
    unique_row, unique_word = unique // len(offsets), (unique % len(offsets)).astype(np.int32)
    first = np.searchsorted(unique_row, np.arange(R))  # each row's first entry
    place = np.arange(len(unique)) - first[unique_row]  # the word's place in its row's list
    counts = np.bincount(inverse, minlength=len(unique)).astype(np.float32)
    lengths = (offsets[unique_word + 1] - offsets[unique_word]).astype(np.int64)
    # n-grams laid out row after row; a word whose n-grams pass the row's capacity is dropped
    end_in_row = np.cumsum(lengths) - np.concatenate([[0], np.cumsum(lengths)])[first[unique_row]]
    fits = end_in_row <= self.ngram_capacity
    calibrating = self.ngram_capacity >= 10**9
    M = max(1, int(end_in_row.max(initial=0))) if calibrating else self.ngram_capacity
    out['unique_words'] = np.full((R, U), -1, np.int32)
    out['unique_count'] = np.zeros((R, U), np.float32)
    out['ngram_total'] = np.zeros((R, U), np.float32)
    out['unique_words'][unique_row[fits], place[fits]] = unique_word[fits]
    out['unique_count'][unique_row[fits], place[fits]] = counts[fits]
    out['ngram_total'][unique_row[fits], place[fits]] = lengths[fits]
    slot = np.zeros((R, S, W2), np.int32)
    slot[real] = place[inverse]
    out['word_slot'] = slot
    dropped = ~fits[inverse]
    lost_pairs = int(dropped.sum())
    if lost_pairs:
      valid[tuple(np.argwhere(real)[dropped].T)] = 0.0
    out['ngrams'] = np.full((R, M), -1, np.int32)
    out['ngram_owner'] = np.zeros((R, M), np.int32)
    keep = np.flatnonzero(fits)
    if len(keep):
      n_each = lengths[keep]
      word_of = np.repeat(keep, n_each)
      start_in_row = np.repeat(end_in_row[keep] - n_each, n_each)
      within = np.arange(len(word_of)) - np.repeat(np.cumsum(n_each) - n_each, n_each)
      ids = flat[np.repeat(offsets[unique_word[keep]], n_each) + within]
      r, col = unique_row[word_of], start_in_row + within
      out['ngrams'][r, col] = ids
      out['ngram_owner'][r, col] = place[word_of]
    return lost_pairs


# ---- GloVe's co-occurrence counts ---------------------------------------------------------------


def cooccurrence(corpus: Corpus, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """X_ij = sum over the occurrences of j within `window` words of i (in one sentence) of
  1/distance, symmetric, as the GloVe code counts them. Returns (i, j, X_ij) of the non-zero
  entries, int32, int32, float32, in row-major order."""
  import scipy.sparse as sp

  V, tokens = len(corpus.words), corpus.tokens
  sentence = corpus.sentence_ids()
  total = sp.csr_matrix((V, V), dtype=np.float64)
  for d in range(1, window + 1):
    same = sentence[:-d] == sentence[d:]
    a, b = tokens[:-d][same], tokens[d:][same]
    weight = np.full(len(a), 1.0 / d)
    forward = sp.coo_matrix((weight, (a, b)), shape=(V, V)).tocsr()
    total = total + forward + forward.T
  total = total.tocoo()
  order = np.lexsort((total.col, total.row))
  return (
    total.row[order].astype(np.int32),
    total.col[order].astype(np.int32),
    total.data[order].astype(np.float32),
  )


def load_cooccurrence(corpus: Corpus, window: int, key: str) -> dict[str, np.ndarray]:
  """`cooccurrence`, cached in ~/.cache/jdl/words/ under `key` (which names the corpus)."""
  path = CACHE / f'cooc-{key}-w{window}.npz'
  if path.is_file():
    try:
      with np.load(path) as z:
        out = {k: z[k] for k in ('row', 'col', 'count')}
      if out['row'].max() < len(corpus.words):
        return out
    except (OSError, ValueError, KeyError):
      pass
    raise DataError(path, 'a cut or foreign co-occurrence cache', f'delete it (rm {path})')
  row, col, count = cooccurrence(corpus, window)
  CACHE.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f'.{os.getpid()}.tmp.npz')
  np.savez(tmp, row=row, col=col, count=count)
  tmp.replace(path)
  return {'row': row, 'col': col, 'count': count}
