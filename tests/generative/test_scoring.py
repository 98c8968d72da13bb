"""The scores of generated images: the Frechet distance against SciPy's matrix square root, and
the class distribution."""

import numpy as np
import scipy.linalg

from jdl.generative import scoring


def test_frechet_distance_against_scipy():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(500, 20))
  b = rng.normal(size=(500, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 1.0
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  reference = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(
    cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real
  )
  assert np.isclose(scoring.frechet_distance(a, b), reference, rtol=1e-8)
  assert abs(scoring.frechet_distance(a, a)) < 1e-8  # a set is at distance 0 from itself
  shifted = scoring.frechet_distance(a, a + 2.0)  # a pure shift costs |shift|^2 per dimension
  assert np.isclose(shifted, 20 * 4.0)


def test_class_distribution():
  fractions = scoring.class_distribution(np.array([0, 0, 3, 9]))
  assert fractions.tolist() == [0.5, 0, 0, 0.25, 0, 0, 0, 0, 0, 0.25]
