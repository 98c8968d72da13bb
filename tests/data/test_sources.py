"""Data that jdl does not read from its own files: scikit-learn's diabetes rows, checked by shape
and value, and tfds data sets, whose absence names the `tfds build` command."""

import numpy as np
import pytest
import sklearn.datasets

from jdl.data import diabetes, tfds_images, unpaired
from tests.data import expect

BAD_DIABETES = {
  'a row short': ((np.zeros((441, 10)), np.zeros(441)), 'shapes (441, 10) and (441,), not'),
  'not a number': ((np.full((442, 10), np.nan), np.zeros(442)), 'not finite'),
}


@pytest.mark.parametrize('damage', BAD_DIABETES)
def test_damaged_diabetes_data(monkeypatch, damage):
  rows, problem = BAD_DIABETES[damage]
  monkeypatch.setattr(sklearn.datasets, 'load_diabetes', lambda return_X_y: rows)
  expect(diabetes.load, diabetes.SOURCE, problem, 'pip install --force-reinstall scikit-learn')


def test_unprepared_tfds_data_names_the_build_command(tmp_path):
  expect(
    lambda: tfds_images.TfdsImages('imagenet2012', 'train', 224, True, str(tmp_path)),
    tmp_path,
    "tfds data set 'imagenet2012' split 'train' is not prepared as array_record",
    'tfds build imagenet2012 --file_format=array_record --manual_dir DIR',
  )
  expect(
    lambda: unpaired.load('tfds', data_dir=str(tmp_path)),
    tmp_path,
    "'cycle_gan/horse2zebra' split 'trainA' is not prepared",
    'tfds build cycle_gan/horse2zebra --file_format=array_record',
  )
