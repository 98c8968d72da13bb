"""Fashion-MNIST (Xiao et al. 2017; MIT licence): 60,000 training and 10,000 test images of 28x28
grey clothing items in 10 classes, read from the files of Debian's `dataset-fashion-mnist`.

The last 5,000 training images are the validation split (fixed); the 10,000 test images are
the test split. Images stay uint8 (N, 28, 28, 1) in memory; models scale them to [0, 1].

Each file is checked before use: gzip, IDX magic number, the header's shape against the data set's
(60,000 and 10,000 records of 28x28 images or one label), its length against the header, labels in
0-9. A file that fails raises a DataError that names it and the command that reinstalls it.
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zlib

import numpy as np

from jdl.config import ConfigError
from jdl.data.errors import DataError
from jdl.data.splits import Splits

DEFAULT_DIR = '/usr/share/datasets/fashion-mnist'
INSTALL = 'sudo apt-get install -y dataset-fashion-mnist   (or: make data)'
REINSTALL = 'reinstall it with: sudo apt-get install --reinstall -y dataset-fashion-mnist'
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
# The data set's fixed sizes: a file cut at a record boundary, with a header rewritten to match,
# is still caught, by its count.
ROWS = {'train': 60_000, 't10k': 10_000}
# IDX magic numbers: 0x08 (unsigned bytes) in the third byte, the number of dimensions in the last.
IMAGES, LABELS = (2051, (28, 28)), (2049, ())


def data_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('JDL_FASHION_MNIST_DIR', DEFAULT_DIR))


def _read_idx(path: pathlib.Path, kind: tuple[int, tuple[int, ...]], rows: int) -> np.ndarray:
  """The records of a gzipped IDX file, checked against its header and the data set's size."""
  if not path.is_file():
    raise DataError(path, 'Fashion-MNIST file missing', f'install it with: {INSTALL}')
  try:
    with gzip.open(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:  # not gzip, cut, or a bad checksum
    raise DataError(path, f'not a readable gzip file ({e})', REINSTALL) from None
  magic, record = kind
  shape = (rows, *record)
  start = 4 + 4 * len(shape)
  if len(data) < start:
    raise DataError(path, f'{len(data)} bytes, shorter than its IDX header', REINSTALL)
  found = int.from_bytes(data[:4], 'big')
  if found != magic:
    raise DataError(
      path,
      f'IDX magic number {found}, not {magic} (unsigned bytes in {len(shape)} dimensions)',
      REINSTALL,
    )
  header = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], 'big') for i in range(len(shape)))
  if header != shape:
    raise DataError(path, f'the header says shape {header}, Fashion-MNIST has {shape}', REINSTALL)
  size = len(data) - start
  if size != math.prod(shape):
    how = 'cut' if size < math.prod(shape) else 'trailing bytes'
    raise DataError(
      path, f'{size} bytes of records where the header says {math.prod(shape)} ({how})', REINSTALL
    )
  return np.frombuffer(data, np.uint8, offset=start).reshape(shape)


def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28, 1], labels int32 [N]) of 'train' (60,000) or 't10k' (10,000)."""
  root = data_dir()
  labels_path = root / f'{split}-labels-idx1-ubyte.gz'
  labels = _read_idx(labels_path, LABELS, ROWS[split])
  if labels.max() >= len(CLASSES):
    bad = np.flatnonzero(labels >= len(CLASSES))
    raise DataError(
      labels_path,
      f'labels outside 0-{len(CLASSES) - 1} in {len(bad)} of {len(labels)} records (first: '
      f'record {bad[0]}, label {labels[bad[0]]})',
      REINSTALL,
    )
  images = _read_idx(root / f'{split}-images-idx3-ubyte.gz', IMAGES, ROWS[split])
  return images[..., None], labels.astype(np.int32)


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
  if classes is not None and not set(classes) <= set(range(len(CLASSES))):
    raise ConfigError(f'classes {tuple(classes)}: Fashion-MNIST has classes 0-{len(CLASSES) - 1}')
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
