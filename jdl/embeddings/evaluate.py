"""Word vectors judged with the field's standard sets, by one evaluator for jdl and gensim.

Vectors of either framework are written in word2vec's binary format in the *same word order*
(the corpus vocabulary, by count), read back with gensim's `KeyedVectors`, and scored with
gensim's own `evaluate_word_analogies` (the Google analogy set, `questions-words.txt`: 3CosAdd
over the `restrict_vocab` most frequent words, 30,000 as gensim's default, the three query
words excluded from the answers) and `evaluate_word_pairs` (WordSim-353 and SimLex-999:
Spearman and Pearson correlation of cosine similarity with the human scores, over the whole
vocabulary). Both report their coverage: the
questions or pairs whose words are all in the vocabulary; the others are left out, not counted
wrong.

`WordVectors.from_workdir` is what the tools read: a run's vocabulary, its vectors and, for
fastText, vectors for words outside the vocabulary.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import pathlib
from collections.abc import Callable

import numpy as np

RESTRICT_VOCAB = 30_000
ANALOGY_QUESTIONS = 19_544


def test_data(name: str) -> pathlib.Path:
  """A file of gensim's test data (questions-words.txt, wordsim353.tsv, simlex999.txt)."""
  try:
    from gensim.test.utils import datapath
  except ImportError:
    from jdl.train.errors import UsageError

    raise UsageError(
      'the evaluation sets ship with gensim: pip install "jdl[bench]" (or pip install gensim)'
    ) from None
  return pathlib.Path(datapath(name))


class UnknownWord(KeyError):
  """A word outside the vocabulary; the message names the closest vocabulary words."""

  def __str__(self) -> str:
    return self.args[0]


@dataclasses.dataclass
class WordVectors:
  words: list[str]
  vectors: np.ndarray  # [V, d] float32
  oov: Callable[[str], np.ndarray] | None = None  # fastText: a vector from a word's n-grams
  name: str = ''

  def __post_init__(self):
    self.index = {w: i for i, w in enumerate(self.words)}
    norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
    self.unit = self.vectors / np.maximum(norms, 1e-12)

  @classmethod
  def from_workdir(cls, workdir) -> WordVectors:
    """A trained embedding run's vectors; a run of another task is a UsageError naming it."""
    from jdl.train.errors import UsageError
    from jdl.train.run import load_config, load_run

    config = load_config(workdir)
    if config.task != 'embeddings':
      raise UsageError(
        f"{workdir} is a run of task '{config.task}', not word embeddings: jdl embed reads runs "
        'of experiments/embeddings/'
      )
    run = load_run(workdir, config=config)
    task, model = run.task, run.model
    oov = (lambda w: task.oov_vector(model, w)) if config.model.name == 'fasttext' else None
    words = task.vocabulary()
    return cls(words, task.word_vectors(model), oov, name=f'jdl {config.model.name}')

  def vector(self, word: str) -> np.ndarray:
    """The unit vector of a word; a word outside the vocabulary is an UnknownWord error, unless
    the model builds vectors from n-grams (fastText)."""
    if word in self.index:
      return self.unit[self.index[word]]
    if self.oov is not None:
      v = np.asarray(self.oov(word), np.float32)
      return v / max(float(np.linalg.norm(v)), 1e-12)
    close = difflib.get_close_matches(word, self.words, n=5, cutoff=0.6)
    hint = f'; closest vocabulary words: {", ".join(close)}' if close else ''
    raise UnknownWord(f"'{word}' is not in the vocabulary of {len(self.words):,} words{hint}")

  def nearest(self, query: np.ndarray, k: int, exclude=()) -> list[tuple[str, float]]:
    """The k words of highest cosine similarity to `query` (a unit vector), without `exclude`."""
    sims = self.unit @ query
    order = np.argsort(-sims)
    out = []
    for i in order:
      if self.words[i] not in exclude:
        out.append((self.words[i], float(sims[i])))
        if len(out) == k:
          break
    return out

  def analogy(self, a: str, b: str, c: str, k: int = 10) -> list[tuple[str, float]]:
    """a is to b as c is to ?: 3CosAdd, the nearest words to unit(b) - unit(a) + unit(c) (so
    `analogy('man', 'king', 'woman')` asks for queen), the three query words excluded."""
    query = self.vector(b) - self.vector(a) + self.vector(c)
    return self.nearest(query / max(float(np.linalg.norm(query)), 1e-12), k, {a, b, c})

  def rank(self, a: str, b: str, c: str, answer: str) -> int:
    """The rank (1 = top) of `answer` among all vocabulary words for a : b :: c : ?."""
    query = self.vector(b) - self.vector(a) + self.vector(c)
    sims = self.unit @ (query / max(float(np.linalg.norm(query)), 1e-12))
    target = sims[self.index[answer]]
    others = np.ones(len(self.words), bool)
    for w in (a, b, c, answer):
      others[self.index[w]] = False
    return 1 + int((sims[others] > target).sum())

  def save_word2vec(self, path) -> pathlib.Path:
    """word2vec's binary format: a header `V d`, then each word, a space, d float32, newline."""
    path = pathlib.Path(path)
    with open(path, 'wb') as f:
      f.write(f'{len(self.words)} {self.vectors.shape[1]}\n'.encode())
      data = np.ascontiguousarray(self.vectors, dtype='<f4')
      for word, row in zip(self.words, data):
        f.write(word.encode('utf-8') + b' ' + row.tobytes() + b'\n')
    return path


def evaluate(vectors: WordVectors, path, restrict_vocab: int = RESTRICT_VOCAB) -> dict:
  """The standard scores of `vectors`, through gensim's evaluator on the word2vec file written
  at `path`: analogy accuracy (total and per section, with coverage), WordSim-353 and
  SimLex-999 correlations (with coverage), and the rank of 'queen' for man : king :: woman."""
  from gensim.models import KeyedVectors

  file = vectors.save_word2vec(path)
  kv = KeyedVectors.load_word2vec_format(str(file), binary=True)
  total, sections = kv.evaluate_word_analogies(
    str(test_data('questions-words.txt')), restrict_vocab=restrict_vocab
  )
  result = {
    'name': vectors.name,
    'vocabulary': len(vectors.words),
    'restrict_vocab': restrict_vocab,
  }
  per_section = {}
  for s in sections:
    correct, incorrect = len(s['correct']), len(s['incorrect'])
    per_section[s['section']] = {
      'correct': correct,
      'questions': correct + incorrect,
      'accuracy': correct / max(correct + incorrect, 1),
    }
  overall = per_section.pop('Total accuracy')
  result['analogy'] = {
    'accuracy': float(total),
    'questions': overall['questions'],
    'coverage': overall['questions'] / ANALOGY_QUESTIONS,
    'sections': per_section,
  }
  for name, file_name in (('wordsim353', 'wordsim353.tsv'), ('simlex999', 'simlex999.txt')):
    # Every vocabulary word (gensim's default restriction, 300,000, holds them all).
    pearson, spearman, oov = kv.evaluate_word_pairs(str(test_data(file_name)))
    result[name] = {
      'spearman': float(spearman[0]),
      'pearson': float(pearson[0]),
      'coverage': 1 - float(oov) / 100,
    }
  if all(w in vectors.index for w in ('king', 'man', 'woman', 'queen')):
    result['queen_rank'] = vectors.rank('man', 'king', 'woman', 'queen')
    result['king_man_woman'] = [w for w, _ in vectors.analogy('man', 'king', 'woman', 5)]
  return result


def summary(result: dict) -> str:
  a = result['analogy']
  return (
    f'{result["name"]}: analogy {a["accuracy"]:.1%} of {a["questions"]:,} questions '
    f'(coverage {a["coverage"]:.1%}); WordSim-353 Spearman {result["wordsim353"]["spearman"]:.3f} '
    f'(coverage {result["wordsim353"]["coverage"]:.1%}); SimLex-999 '
    f'{result["simlex999"]["spearman"]:.3f} (coverage {result["simlex999"]["coverage"]:.1%}); '
    f"queen's rank {result.get('queen_rank', '-')}; king - man + woman: "
    f'{", ".join(result.get("king_man_woman", []))}'
  )


def evaluate_workdir(workdir, restrict_vocab: int = RESTRICT_VOCAB) -> dict:
  """`evaluate` of a run; the result is also written to the workdir's evaluation.json."""
  from jdl import paths

  vectors = WordVectors.from_workdir(workdir)
  folder = paths.workdir(workdir)
  result = evaluate(vectors, pathlib.Path(str(folder / 'vectors.bin')), restrict_vocab)
  (folder / 'evaluation.json').write_text(json.dumps(result, indent=2) + '\n')
  return result
