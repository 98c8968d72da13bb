"""Fashion-MNIST's IDX files: each kind of damage is caught before training, and named."""

import gzip

import numpy as np
import pytest

from jdl.config import ConfigError
from jdl.data import fashion_mnist
from tests.conftest import ROOT, run_jdl
from tests.data import expect

REINSTALL = 'sudo apt-get install --reinstall -y dataset-fashion-mnist'
TRAIN = 60_000


def idx(magic: int, dims: tuple[int, ...], records: bytes) -> bytes:
  header = magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in dims)
  return header + records


@pytest.fixture
def root(tmp_path, monkeypatch):
  """A folder whose training labels are right: each test damages the file it is about."""
  monkeypatch.setenv('JDL_FASHION_MNIST_DIR', str(tmp_path))
  labels = (np.arange(TRAIN) % 10).astype(np.uint8).tobytes()
  (tmp_path / 'train-labels-idx1-ubyte.gz').write_bytes(
    gzip.compress(idx(2049, (TRAIN,), labels), 1)
  )
  return tmp_path


IMAGE = 28 * 28
DAMAGED_IMAGES = {
  'not gzip': (b'<html>404</html>', 'not a readable gzip file'),
  'gzip cut': (
    gzip.compress(idx(2051, (TRAIN, 28, 28), bytes(100 * IMAGE)))[:-20],
    'not a readable gzip',
  ),
  'shorter than a header': (gzip.compress(b'\0\0\x08'), 'shorter than its IDX header'),
  'labels magic': (gzip.compress(idx(2049, (TRAIN, 28, 28), b'')), 'magic number 2049, not 2051'),
  'header counts more than the data': (
    gzip.compress(idx(2051, (TRAIN, 28, 28), bytes((TRAIN - 1) * IMAGE)), 1),
    f'{(TRAIN - 1) * IMAGE} bytes of records where the header says {TRAIN * IMAGE} (cut)',
  ),
  'trailing bytes': (
    gzip.compress(idx(2051, (TRAIN, 28, 28), bytes(TRAIN * IMAGE + 1)), 1),
    'trailing bytes',
  ),
  'cut consistently (header rewritten to match)': (
    gzip.compress(idx(2051, (3, 28, 28), bytes(3 * IMAGE))),
    'the header says shape (3, 28, 28), Fashion-MNIST has (60000, 28, 28)',
  ),
  'images of another size': (
    gzip.compress(idx(2051, (TRAIN, 32, 32), b'')),
    'has (60000, 28, 28)',
  ),
}


@pytest.mark.parametrize('damage', DAMAGED_IMAGES)
def test_damaged_images_file_names_itself_and_the_reinstall(root, damage):
  data, problem = DAMAGED_IMAGES[damage]
  path = root / 'train-images-idx3-ubyte.gz'
  path.write_bytes(data)
  expect(lambda: fashion_mnist.arrays('train'), path, problem, REINSTALL)


def test_label_out_of_range_is_caught_before_it_becomes_a_nan_loss(root):
  labels = (np.arange(TRAIN) % 10).astype(np.uint8)
  labels[17] = 10
  path = root / 'train-labels-idx1-ubyte.gz'
  path.write_bytes(gzip.compress(idx(2049, (TRAIN,), labels.tobytes()), 1))
  expect(
    lambda: fashion_mnist.load(),
    path,
    'labels outside 0-9 in 1 of 60000 records (first: record 17, label 10)',
    REINSTALL,
  )


def test_missing_file_names_the_install_command(root):
  path = root / 'train-images-idx3-ubyte.gz'
  expect(lambda: fashion_mnist.arrays('train'), path, 'missing', 'apt-get install -y dataset-')


def test_classes_outside_the_data_set_are_a_config_error():
  with pytest.raises(ConfigError, match=r'classes \(7, 10\): Fashion-MNIST has classes 0-9'):
    fashion_mnist.load(classes=(7, 10))


def test_train_on_a_cut_file_exits_2_with_the_message_and_writes_nothing(root, tmp_path):
  path = root / 'train-images-idx3-ubyte.gz'
  path.write_bytes(gzip.compress(idx(2051, (TRAIN, 28, 28), bytes(IMAGE)), 1))
  workdir = tmp_path / 'run'
  proc = run_jdl(
    'train',
    '--config',
    ROOT / 'experiments/cnn/simple_fmnist.py:smoke',
    '--workdir',
    workdir,
    env={'JDL_FASHION_MNIST_DIR': str(root)},
  )
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.startswith(f'jdl train: {path}: ') and REINSTALL in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not workdir.exists()
