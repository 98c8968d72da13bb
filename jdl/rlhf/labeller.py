"""The automatic labeller: a trained sentiment classifier (task `sentiment_classifier`,
experiments/rlhf/labeller.py) that stands in for a person choosing between two continuations.

A continuation is read alone, without its prompt (so the prompt's own sentiment decides
nothing), and scored by the classifier's log-odds of "positive", s(x). Two continuations are
compared with the Bradley-Terry model of Ziegler et al. (2019) and Stiennon et al. (2020):

    P(a preferred over b) = sigmoid((s(a) - s(b)) / T)

with temperature T = 1 by default: the classifier's own log-odds, unscaled. The choice is drawn
from that probability (a labeller that is sometimes "wrong" where the texts are close, as people
are), not taken as the larger score.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.data import reviews
from jdl.models.scalar_head import at_last
from jdl.train.errors import UsageError

BATCH = 256  # rows per compiled call: one program for any number of texts
BOW_FILE = 'bow_labeller.json'


class BradleyTerry:
  """What every labeller does with its log-odds `logits(texts)`: p(positive) and preferences."""

  name: str
  temperature: float

  def logits(self, texts) -> np.ndarray:
    raise NotImplementedError

  def p_positive(self, texts) -> np.ndarray:
    """The classifier's probability that each text is positive [N]."""
    return 1.0 / (1.0 + np.exp(-self.logits(texts)))

  def preference(self, a_texts, b_texts) -> np.ndarray:
    """P(a preferred over b) [N] under the Bradley-Terry model."""
    a, b = list(a_texts), list(b_texts)
    if len(a) != len(b):
      raise UsageError(f'{len(a)} first texts but {len(b)} second texts: they come in pairs')
    diff = (self.logits(a) - self.logits(b)) / self.temperature
    return 1.0 / (1.0 + np.exp(-diff))

  def rank(self, groups, rng: np.random.Generator) -> np.ndarray:
    """`ranked(groups, rng)`'s orders alone."""
    return self.ranked(groups, rng)[0]

  def ranked(self, groups, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A ranking of each group of k texts, best first (indices [N, k]), drawn from the
    Plackett-Luce model with strengths exp(s(x) / T): the order of s(x) / T plus independent
    Gumbel noise. Two texts are ordered with the Bradley-Terry probability above; the first of
    several is chosen with softmax(s / T) (Ziegler et al.'s best-of-four question). Returns
    (orders [N, k], the log-odds s [N, k] they were drawn from)."""
    groups = [list(g) for g in groups]
    k = len(groups[0]) if groups else 0
    if any(len(g) != k for g in groups):
      raise UsageError('every group to rank needs the same number of texts')
    scores = self.logits([t for g in groups for t in g]).reshape(len(groups), k)
    noisy = scores / self.temperature + rng.gumbel(size=scores.shape)
    return np.argsort(-noisy, axis=1, kind='stable'), scores


class Labeller(BradleyTerry):
  """The ScalarGPT classifier of a `sentiment_classifier` run."""

  def __init__(self, model, name: str, temperature: float = 1.0):
    if temperature <= 0:
      raise UsageError(f'the labeller temperature must be > 0, got {temperature}')
    self.model, self.name, self.temperature = model, name, float(temperature)
    self.context = model.cfg.context
    graphdef, weights = nnx.split(model)
    self._weights = weights

    @jax.jit
    def scores(weights, tokens_BxT, lengths_B):
      scorer = nnx.merge(graphdef, weights)
      return at_last(scorer(tokens_BxT), lengths_B)[:, 0]

    self._scores = scores

  @classmethod
  def load(cls, run_dir, temperature: float = 1.0) -> BradleyTerry:
    """The classifier of a `sentiment_classifier` run (or of a folder holding a bag-of-words
    labeller, BowLabeller); its name is 'auto:<run dir name>'."""
    from jdl.train.run import load_config, load_run

    if os.path.isfile(os.path.join(str(run_dir), BOW_FILE)):
      return BowLabeller.load(run_dir, temperature)
    config = load_config(run_dir)
    if config.task != 'sentiment_classifier':
      raise UsageError(
        f'{run_dir} is a {config.task!r} run, not a labeller (train one with `jdl train '
        f'--config experiments/rlhf/labeller.py --workdir {run_dir}`)'
      )
    with config.unlocked():
      config.init_from = ''  # the trained weights are in the checkpoint: no need of the LM run
    run = load_run(run_dir, config=config)
    name = 'auto:' + str(run_dir).rstrip('/').split('/')[-1]
    return cls(run.model, name, temperature)

  def logits(self, texts) -> np.ndarray:
    """The log-odds of 'positive' [N] (float64) of each text, read alone."""
    texts = list(texts)
    if not texts:
      return np.zeros(0)
    raw = [t.encode('utf-8') for t in texts]
    for i, r in enumerate(raw):
      if not r:
        raise UsageError(f'text {i} is empty: the labeller scores at least one byte')
      if len(r) > self.context:
        raise UsageError(
          f'text {i} has {len(r)} bytes; the labeller reads at most its context of {self.context}'
        )
    # One width for every call: the longest text rounded up to 16 bytes (continuations of one
    # run all have the same length, so this compiles once).
    width = min(self.context, -(-max(len(r) for r in raw) // 16) * 16)
    out = []
    for start in range(0, len(raw), BATCH):
      chunk = raw[start : start + BATCH]
      tokens, lengths = reviews.padded_bytes(chunk)
      padded = np.zeros((BATCH, width), np.int32)
      padded[: len(chunk), : tokens.shape[1]] = tokens
      full_lengths = np.ones(BATCH, np.int32)
      full_lengths[: len(chunk)] = lengths
      s = self._scores(self._weights, jnp.asarray(padded), jnp.asarray(full_lengths))
      out.append(np.asarray(s[: len(chunk)], np.float64))
    return np.concatenate(out)


@functools.cache
def load(run_dir: str, temperature: float = 1.0) -> Labeller:
  """One labeller per run in a process (the tools call it for every batch)."""
  return Labeller.load(run_dir, temperature)


class BowLabeller(BradleyTerry):
  """A bag-of-words logistic regression on the same 48-byte review windows (words and word
  pairs present or not; scikit-learn): the fallback labeller when a ScalarGPT classifier cannot
  be trained in the time (docs/rlhf.md). s(x) = w . phi(x) + b, the regression's log-odds."""

  def __init__(self, vocabulary: dict, coef, intercept: float, name: str, temperature=1.0):
    from sklearn.feature_extraction.text import CountVectorizer

    if temperature <= 0:
      raise UsageError(f'the labeller temperature must be > 0, got {temperature}')
    self.vectorizer = CountVectorizer(binary=True, ngram_range=(1, 2), vocabulary=vocabulary)
    self.coef, self.intercept = np.asarray(coef, np.float64), float(intercept)
    self.name, self.temperature = name, float(temperature)

  def logits(self, texts) -> np.ndarray:
    texts = list(texts)
    if not texts:
      return np.zeros(0)
    return self.vectorizer.transform(texts) @ self.coef + self.intercept

  @classmethod
  def load(cls, run_dir, temperature: float = 1.0) -> BowLabeller:
    with open(os.path.join(str(run_dir), BOW_FILE), encoding='utf-8') as f:
      saved = json.load(f)
    name = 'auto:' + str(run_dir).rstrip('/').split('/')[-1]
    return cls(saved['vocabulary'], saved['coef'], saved['intercept'], name, temperature)


def fit_bow(
  workdir, window: int = 48, stride: int = 24, c: float = 0.1, snippet_copies: int = 3
) -> dict:
  """Fits the bag-of-words labeller on the training reviews' windows and, `snippet_copies`
  times over, the 3,000 training snippets (one-sentence opinions whose label is their own, not
  their review's); reports held-out accuracy on windows and snippets (validation, test), writes
  WORKDIR/bow_labeller.json; returns the report."""
  from sklearn.feature_extraction.text import CountVectorizer
  from sklearn.linear_model import LogisticRegression

  from jdl.tasks.sentiment_classifier import review_windows

  as_text = lambda rows: [
    bytes(r.astype(np.uint8).tolist()).decode('utf-8', 'replace') for r in rows
  ]
  train = review_windows('train', window, stride)
  texts, labels = as_text(train['tokens']), np.asarray(train['label'])
  snippets, snippet_labels = reviews.examples('snippets', 'train')
  texts += list(snippets) * snippet_copies
  labels = np.concatenate([labels, np.tile(np.asarray(snippet_labels), snippet_copies)])
  vectorizer = CountVectorizer(binary=True, ngram_range=(1, 2), min_df=2)
  features = vectorizer.fit_transform(texts)
  regression = LogisticRegression(C=c, max_iter=1000).fit(features, labels)
  vocabulary = {w: int(i) for w, i in vectorizer.vocabulary_.items()}
  report = {
    'window': window,
    'stride': stride,
    'C': c,
    'train_windows': len(train['label']),
    'snippet_copies': snippet_copies,
  }
  for split in ('validation', 'test'):
    held = review_windows(split, window, window)
    score = regression.decision_function(vectorizer.transform(as_text(held['tokens'])))
    report[f'{split}_accuracy'] = float(((score > 0) == (held['label'] > 0)).mean())
    report[f'{split}_windows'] = len(held['label'])
    report[f'{split}_logit_std'] = float(score.std())
    held_texts, held_labels = reviews.examples('snippets', split)
    score = regression.decision_function(vectorizer.transform(list(held_texts)))
    report[f'{split}_snippet_accuracy'] = float(((score > 0) == (held_labels > 0)).mean())
  os.makedirs(str(workdir), exist_ok=True)
  saved = dict(report, vocabulary=vocabulary, coef=regression.coef_[0].tolist())
  saved['intercept'] = float(regression.intercept_[0])
  with open(os.path.join(str(workdir), BOW_FILE), 'w', encoding='utf-8') as f:
    json.dump(saved, f)
  return report
