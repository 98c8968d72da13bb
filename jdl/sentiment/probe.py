"""The probe: an L1-regularised logistic regression on a language model's state after each
review (scikit-learn), its data efficiency against a bag-of-words baseline, the single unit with
the largest L1 weight, and the controls that say whether that unit is more than chance.

  data efficiency   test accuracy after n labelled training reviews (n = 10, 20, 50, 100, 200,
                    all), `resamples` label-balanced draws of n each: mean and spread, for the
                    probe and for TF-IDF unigrams+bigrams with logistic regression, on the same
                    draws (TF-IDF's vocabulary and idf from all training texts, unlabelled). C
                    (the inverse regularisation) is chosen on the validation reviews.
  the unit          the largest |weight| of the L1 fit on all training reviews (features
                    standardised on the training reviews); its accuracy alone with a threshold
                    and sign fitted on the training reviews, measured on the test reviews
  controls          the same selection on a randomly initialised network of the same width
                    (`random_features`), and a label-permutation test: the labels of every split
                    permuted, the whole selection repeated, giving the chance distribution of
                    the best unit's test accuracy
"""

from __future__ import annotations

import warnings

import numpy as np

SIZES = (10, 20, 50, 100, 200, 0)  # 0: all training reviews
C_GRID = tuple(2.0**k for k in range(-6, 5))
BOW_C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)


def _l1(C: float):
  from sklearn.linear_model import LogisticRegression

  return LogisticRegression(penalty='l1', C=C, solver='liblinear', max_iter=1000)


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  mean, std = train.mean(0), train.std(0) + 1e-6
  return [(x - mean) / std for x in (train, *others)]


def fit_l1(x_train, y_train, x_val, y_val, grid=C_GRID):
  """The L1 logistic regression whose C is best on validation (ties: the stronger penalty)."""
  best = None
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # liblinear's convergence notes on 10 reviews
    for C in grid:
      clf = _l1(C).fit(x_train, y_train)
      acc = clf.score(x_val, y_val)
      if best is None or acc > best[0]:
        best = (acc, C, clf)
  return best[2], best[1]


def threshold_accuracy(values_train, y_train, values_test, y_test) -> dict:
  """A single unit as a classifier: the threshold and sign best on training reviews (midpoints
  of the sorted values), its accuracy there and on the test reviews."""
  order = np.argsort(values_train)
  v, y = values_train[order], y_train[order]
  # positive above the threshold: correct = negatives at or below + positives above
  neg_below = np.concatenate([[0], np.cumsum(y == 0)])
  pos_above = (y == 1).sum() - np.concatenate([[0], np.cumsum(y == 1)])
  up = (neg_below + pos_above) / len(y)
  down = 1 - up
  k_up, k_down = int(up.argmax()), int(down.argmax())
  sign, k = (1, k_up) if up[k_up] >= down[k_down] else (-1, k_down)
  cuts = np.concatenate([[v[0] - 1], (v[:-1] + v[1:]) / 2, [v[-1] + 1]])
  threshold = float(cuts[k])
  pred = (values_test > threshold) if sign > 0 else (values_test <= threshold)
  return {
    'threshold': threshold,
    'sign': sign,
    'train_accuracy': float(max(up[k_up], down[k_down])),
    'test_accuracy': float((pred.astype(int) == y_test).mean()),
  }


def best_unit(feats: dict, labels: dict, C: float | None = None) -> dict:
  """The unit of largest |L1 weight| (C chosen on validation unless given) and its accuracy."""
  xs = standardise(feats['train'], feats['validation'], feats['test'])
  if C is None:
    clf, C = fit_l1(xs[0], labels['train'], xs[1], labels['validation'])
  else:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      clf = _l1(C).fit(xs[0], labels['train'])
  weights = clf.coef_[0]
  used = int((weights != 0).sum())
  if not weights.any():  # validation chose the empty model: the weakest penalty that keeps one
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      for weaker in (c for c in C_GRID if c > C):
        weights = _l1(weaker).fit(xs[0], labels['train']).coef_[0]
        if weights.any():
          break
  unit = int(np.abs(weights).argmax())
  alone = threshold_accuracy(
    feats['train'][:, unit], labels['train'], feats['test'][:, unit], labels['test']
  )
  return {
    'unit': unit,
    'weight': float(weights[unit]),
    'C': C,
    'nonzero_weights': used,
    'probe_test_accuracy': float(clf.score(xs[2], labels['test'])),
    **alone,
  }


def _draw(labels: np.ndarray, n: int, rng) -> np.ndarray:
  """n training indices, half of each label (all of them for n = 0)."""
  if not n or n >= len(labels):
    return np.arange(len(labels))
  return np.concatenate(
    [rng.choice(np.flatnonzero(labels == y), n // 2, replace=False) for y in (0, 1)]
  )


def data_efficiency(
  feats: dict, labels: dict, texts: dict | None, sizes=SIZES, resamples: int = 10, seed: int = 0
) -> dict:
  """{'sizes', 'probe': [[acc per resample] per size], 'tfidf': (same) or absent}."""
  from sklearn.feature_extraction.text import TfidfVectorizer
  from sklearn.linear_model import LogisticRegression

  rng = np.random.default_rng(seed)
  out = {'sizes': [n or len(labels['train']) for n in sizes], 'probe': [], 'tfidf': []}
  if texts is not None:
    # The vocabulary and idf from every training review's text (no labels), once: a draw of n
    # labelled reviews then fits only the classifier, on the same rows the probe gets.
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    bow = {'train': vec.fit_transform(texts['train'])}
    bow.update({s: vec.transform(texts[s]) for s in ('validation', 'test')})
  for n in sizes:
    probe_accs, bow_accs = [], []
    for _ in range(1 if not n else resamples):  # 'all' is one draw
      idx = _draw(labels['train'], n, rng)
      xs = standardise(feats['train'][idx], feats['validation'], feats['test'])
      clf, _ = fit_l1(xs[0], labels['train'][idx], xs[1], labels['validation'])
      probe_accs.append(float(clf.score(xs[2], labels['test'])))
      if texts is not None:
        fits = (
          LogisticRegression(C=C, solver='liblinear').fit(bow['train'][idx], labels['train'][idx])
          for C in BOW_C_GRID
        )
        best = max(fits, key=lambda m: m.score(bow['validation'], labels['validation']))
        bow_accs.append(float(best.score(bow['test'], labels['test'])))
    out['probe'].append(probe_accs)
    out['tfidf'].append(bow_accs)
  if texts is None:
    del out['tfidf']
  return out


def permutation_null(feats: dict, labels: dict, C: float, permutations: int = 100, seed: int = 0):
  """Test accuracies of the best single unit when every split's labels are permuted (the
  selection and threshold redone each time at the real run's C): chance for this procedure."""
  rng = np.random.default_rng(seed)
  accs = []
  for _ in range(permutations):
    shuffled = {split: rng.permutation(y) for split, y in labels.items()}
    accs.append(best_unit(feats, shuffled, C=C)['test_accuracy'])
  return accs


def summary(accs) -> dict:
  a = np.asarray(accs, np.float64)
  return {'mean': float(a.mean()), 'std': float(a.std(ddof=1)) if len(a) > 1 else 0.0, 'n': len(a)}
