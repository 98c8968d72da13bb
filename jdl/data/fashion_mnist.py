"""Fashion-MNIST (Xiao et al. 2017; MIT licence): 60,000 training and 10,000 test images of 28x28
grey clothing items in 10 classes, read from the files of Debian's `dataset-fashion-mnist`.

The last 5,000 training images are the validation split (fixed); the 10,000 test images are
the test split. Images stay uint8 (N, 28, 28, 1) in memory; models scale them to [0, 1].
"""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

from jdl.data.splits import Splits

DEFAULT_DIR = '/usr/share/datasets/fashion-mnist'
INSTALL = 'sudo apt-get install -y dataset-fashion-mnist   (or: make data)'
CLASSES = (
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
)
VALIDATION_ROWS = 5000


class DataMissing(FileNotFoundError):
  """A data set's files are not installed; the message names the command that installs them."""


def data_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('JDL_FASHION_MNIST_DIR', DEFAULT_DIR))


def _read_idx(path: pathlib.Path, offset: int) -> np.ndarray:
  if not path.is_file():
    raise DataMissing(f'Fashion-MNIST file {path} is missing; install it with: {INSTALL}')
  with gzip.open(path, 'rb') as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28, 1], labels int32 [N]) of 'train' (60,000) or 't10k' (10,000)."""
  root = data_dir()
  images = _read_idx(root / f'{split}-images-idx3-ubyte.gz', 16).reshape(-1, 28, 28, 1)
  labels = _read_idx(root / f'{split}-labels-idx1-ubyte.gz', 8).astype(np.int32)
  if len(images) != len(labels):
    raise ValueError(f'{root}: {len(images)} images but {len(labels)} labels in {split}')
  return images, labels


def present() -> bool:
  return all(
    (data_dir() / f'{s}-{k}.gz').is_file()
    for s in ('train', 't10k')
    for k in ('images-idx3-ubyte', 'labels-idx1-ubyte')
  )


def load(
  validation_rows: int = VALIDATION_ROWS,
  classes: tuple[int, ...] | None = None,
  eval_rows: int | None = None,
) -> Splits:
  """The three splits; `classes` keeps only those labels (for the unpaired-domain experiments);
  `eval_rows` keeps the first rows of each evaluation split (smoke runs of big models)."""
  x, y = arrays('train')
  x_test, y_test = arrays('t10k')

  def keep(images, labels):
    if classes is None:
      return {'image': images, 'label': labels}
    mask = np.isin(labels, classes)
    return {'image': images[mask], 'label': labels[mask]}

  def head(split):
    return {k: v[:eval_rows] for k, v in split.items()} if eval_rows else split

  n_train = len(x) - validation_rows
  return Splits(
    train=keep(x[:n_train], y[:n_train]),
    evals={'validation': head(keep(x[n_train:], y[n_train:])), 'test': head(keep(x_test, y_test))},
  )
