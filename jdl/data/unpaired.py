"""Unpaired image domains for CycleGAN: two sets of images, A and B, with no correspondence.

A training batch holds `image_a` and `image_b`. Domain A's rows follow the pipeline's epoch
permutation; domain B's rows are drawn independently for every batch from the batch's own
generator (seeded by seed, step and process, so a resumed run sees the same batches). The two
sides are shuffled separately: row i of A meets a different B image every time, and nothing ties
an image to a partner. Evaluation pairs row i of A with row i mod |B| of B, only to batch them.

Sources:
  fashion_mnist  two Fashion-MNIST classes, e.g. sneaker (7) <-> ankle boot (9), or T-shirt (0)
                 <-> shirt (6); 28x28 grey. The training rows are those of jdl.data.fashion_mnist's
                 training split, the test rows its test split.
  tfds           a tfds data set with splits trainA/trainB/testA/testB, such as the paper's
                 `cycle_gan/horse2zebra`, read with `tfds.data_source` (array_record, no
                 TensorFlow); training images are resized to `load_size` (286), randomly cropped
                 to `image_size` (256) and flipped, as in the paper; test images are resized to
                 `image_size`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from jdl.data import fashion_mnist
from jdl.data.splits import Splits
from jdl.data.tfds_images import data_source


class UnpairedImages:
  """Two image arrays as one data source (`__len__`, `batch(indices, rng)`)."""

  def __init__(self, images_a: np.ndarray, images_b: np.ndarray):
    self.images_a, self.images_b = images_a, images_b

  def __len__(self) -> int:
    return max(len(self.images_a), len(self.images_b))

  def batch(
    self, indices: np.ndarray, rng: np.random.Generator | None = None
  ) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    n_b = len(self.images_b)
    if rng is None:
      rows_b = indices % n_b
    else:
      rows_b = rng.choice(n_b, size=indices.shape, replace=indices.size > n_b)
    return {
      'image_a': self.images_a[indices % len(self.images_a)],
      'image_b': self.images_b[rows_b],
    }


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


class TfdsUnpaired:
  """Domains A and B of a tfds CycleGAN data set as one data source."""

  def __init__(
    self,
    name: str,
    split: str,
    image_size: int,
    load_size: int,
    train: bool,
    data_dir: str | None = None,
  ):
    self.records = [data_source(name, f'{split}{d}', data_dir) for d in 'AB']
    self.image_size, self.load_size, self.train = image_size, load_size, train

  def __len__(self) -> int:
    return max(len(r) for r in self.records)

  def _image(self, records, i: int, rng: np.random.Generator | None) -> np.ndarray:
    image = np.asarray(records[int(i)]['image'])
    if not self.train:
      return _resize(image, self.image_size)
    image = _resize(image, self.load_size)
    top, left = rng.integers(0, self.load_size - self.image_size + 1, 2)
    image = image[top : top + self.image_size, left : left + self.image_size]
    return image[:, ::-1] if rng.random() < 0.5 else image

  def batch(
    self, indices: np.ndarray, rng: np.random.Generator | None = None
  ) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    rng = rng if rng is not None or not self.train else np.random.default_rng(0)
    records_a, records_b = self.records
    if rng is None:
      rows_b = indices % len(records_b)
    else:
      rows_b = rng.choice(len(records_b), size=indices.shape, replace=indices.size > len(records_b))
    return {
      'image_a': np.stack([self._image(records_a, i % len(records_a), rng) for i in indices]),
      'image_b': np.stack([self._image(records_b, i, rng) for i in rows_b]),
    }


def load(
  source: str = 'fashion_mnist',
  classes: tuple[int, int] = (7, 9),
  name: str = 'cycle_gan/horse2zebra',
  image_size: int = 256,
  load_size: int = 286,
  data_dir: str | None = None,
) -> Splits:
  if source == 'tfds':
    return Splits(
      train=TfdsUnpaired(name, 'train', image_size, load_size, True, data_dir),
      evals={'test': TfdsUnpaired(name, 'test', image_size, load_size, False, data_dir)},
    )
  if source != 'fashion_mnist':
    raise ValueError(f"unpaired: source is 'fashion_mnist' or 'tfds', not {source!r}")
  a, b = classes
  data = fashion_mnist.load(classes=(a, b))

  def domains(split):
    return UnpairedImages(split['image'][split['label'] == a], split['image'][split['label'] == b])

  return Splits(train=domains(data.train), evals={'test': domains(data.evals['test'])})
