"""Image data sets read from tfds array_record files with `tfds.data_source` (no TensorFlow at
train time), for TPU runs at full scale: ImageNet (`imagenet2012`), Fashion-MNIST
(`fashion_mnist`), CycleGAN's domains, ...

Preprocessing is the standard ImageNet recipe, in numpy and Pillow: training takes a random
resized crop (area 8%-100% of the image, aspect ratio 3/4-4/3) and a random horizontal flip;
evaluation resizes the shorter side to size/0.875 and takes the central crop. The pipeline
(jdl.data.pipeline) shards the indices by process, so each host reads only its own records.
Prepare the data once with `tfds build imagenet2012 --file_format=array_record --manual_dir DIR`
(array_record is what `tfds.data_source` reads), or set TFDS_DATA_DIR to a bucket that has it.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from jdl.data.errors import DataError


def random_resized_crop(
  image: np.ndarray, size: int, rng: np.random.Generator, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> np.ndarray:
  h, w = image.shape[:2]
  for _ in range(10):
    target = rng.uniform(*area) * h * w
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
    if 0 < cw <= w and 0 < ch <= h:
      top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
      return _resize(image[top : top + ch, left : left + cw], size, size)
  return center_crop(image, size)  # the paper-era fallback: the whole image, centred


def center_crop(image: np.ndarray, size: int, crop_fraction: float = 0.875) -> np.ndarray:
  h, w = image.shape[:2]
  scale = size / crop_fraction / min(h, w)
  resized = _resize(image, max(size, round(h * scale)), max(size, round(w * scale)))
  top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
  return resized[top : top + size, left : left + size]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  squeeze = image.ndim == 3 and image.shape[-1] == 1
  pil = Image.fromarray(image[..., 0] if squeeze else image)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out[..., None] if squeeze else out


def data_source(name: str, split: str, data_dir: str | None = None, build_flags: str = ''):
  """`tfds.data_source` of a prepared split, or a DataError with the command that prepares it."""
  import tensorflow_datasets as tfds

  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several kinds for a data set that is not prepared
    raise DataError(
      data_dir or '$TFDS_DATA_DIR (~/tensorflow_datasets)',
      f"tfds data set '{name}' split '{split}' is not prepared as array_record ({e})",
      f'prepare it on a machine with internet: tfds build {name} --file_format=array_record'
      + build_flags,
    ) from None


class TfdsImages:
  """A split of a tfds image data set as a jdl data source (`__len__`, `batch(indices, rng)`)."""

  def __init__(
    self, name: str, split: str, image_size: int, train: bool, data_dir: str | None = None
  ):
    # ImageNet's images are not downloadable: tfds builds it from the files in --manual_dir.
    manual = ' --manual_dir DIR' if name.startswith('imagenet') else ''
    self.records = data_source(name, split, data_dir, manual)
    self.image_size, self.train = image_size, train

  def __len__(self) -> int:
    return len(self.records)

  def batch(
    self, indices: np.ndarray, rng: np.random.Generator | None = None
  ) -> dict[str, np.ndarray]:
    rng = rng or np.random.default_rng(0)
    images, labels = [], []
    for i in np.asarray(indices).tolist():
      record = self.records[i]
      image = record['image']
      if self.train:
        image = random_resized_crop(image, self.image_size, rng)
        if rng.random() < 0.5:
          image = image[:, ::-1]
      else:
        image = center_crop(image, self.image_size)
      images.append(image)
      labels.append(record['label'])
    return {'image': np.stack(images).astype(np.uint8), 'label': np.asarray(labels, np.int32)}


def load(
  name: str = 'imagenet2012',
  image_size: int = 224,
  data_dir: str | None = None,
  eval_split: str = 'validation',
):
  from jdl.data.splits import Splits

  return Splits(
    train=TfdsImages(name, 'train', image_size, True, data_dir),
    evals={eval_split: TfdsImages(name, eval_split, image_size, False, data_dir)},
  )
