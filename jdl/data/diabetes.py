"""scikit-learn's bundled diabetes data (442 patients, 10 features, disease progression after a
year; Efron et al. 2004), split and standardized the same way every time.

Split: a fixed permutation (seed 0); the first 20% is the test set; of the rest, the last 20% is
the validation set, as Keras' `fit(validation_split=0.2)` takes it. Features and target are
standardized with the training rows' mean and standard deviation, so a mean predictor scores a
mean squared error near 1. The data is checked (442 x 10, finite) before use.
"""

from __future__ import annotations

import numpy as np

from jdl.data.errors import DataError
from jdl.data.splits import Splits

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
SOURCE = "scikit-learn's diabetes data (sklearn/datasets/data/diabetes_*.csv.gz)"
SHAPE = (442, 10)


def _read() -> tuple[np.ndarray, np.ndarray]:
  """(features [442, 10], target [442]), checked: a damaged install must not train on garbage."""
  try:
    from sklearn.datasets import load_diabetes
  except ImportError as e:
    raise DataError(SOURCE, f'missing ({e})', 'install it with: pip install scikit-learn') from None
  reinstall = 'reinstall it with: pip install --force-reinstall scikit-learn'
  try:
    x, y = load_diabetes(return_X_y=True)
  except (OSError, EOFError, ValueError) as e:  # a cut gzip, or rows that do not parse
    raise DataError(SOURCE, f'not readable ({e})', reinstall) from None
  if x.shape != SHAPE or y.shape != SHAPE[:1]:
    raise DataError(
      SOURCE, f'shapes {x.shape} and {y.shape}, not {SHAPE} and {SHAPE[:1]}', reinstall
    )
  if not (np.isfinite(x).all() and np.isfinite(y).all()):
    raise DataError(SOURCE, 'holds values that are not finite', reinstall)
  return x, y


def load() -> Splits:
  x, y = _read()
  order = np.random.default_rng(0).permutation(len(x))
  x, y = x[order], y[order]
  n_test = int(round(TEST_FRACTION * len(x)))
  x_test, y_test, x_fit, y_fit = x[:n_test], y[:n_test], x[n_test:], y[n_test:]
  n_train = len(x_fit) - int(round(VALIDATION_FRACTION * len(x_fit)))
  x_train, y_train = x_fit[:n_train], y_fit[:n_train]
  x_val, y_val = x_fit[n_train:], y_fit[n_train:]

  x_mean, x_std = x_train.mean(0), x_train.std(0)
  y_mean, y_std = y_train.mean(), y_train.std()
  split = lambda xs, ys: {
    'x': ((xs - x_mean) / x_std).astype(np.float32),
    'y': ((ys - y_mean) / y_std).astype(np.float32)[:, None],
  }
  return Splits(
    train=split(x_train, y_train),
    evals={'validation': split(x_val, y_val), 'test': split(x_test, y_test)},
  )
