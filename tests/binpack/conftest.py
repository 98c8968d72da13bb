"""Shared helpers for the binpack tests (the package lives in jdl/binpack)."""

import pytest

from jdl.binpack import data


@pytest.fixture(scope='session')
def small_train():
  """A small slice of the search's training distribution, for fast search tests."""
  return data.uniform_training(lengths=(200, 200))
