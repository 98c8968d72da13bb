"""The JAX evaluator gives the NumPy reference's bin counts on every instance."""

import pytest

from jdl.binpack import data, evaluate, heuristics, jax_eval, table

HEURISTICS = ['First Fit', 'Best Fit', 'FunSearch OR', 'FunSearch Weibull']


@pytest.mark.parametrize('dataset', data.DATASET_NAMES)
def test_jax_matches_numpy_on_every_instance(dataset):
  """First Fit, Best Fit and the table's FunSearch heuristic for this column."""
  ds = data.load(dataset)
  for name in ['First Fit', 'Best Fit', table.funsearch_heuristic_for(dataset)]:
    expected = evaluate.evaluate(
      ds, evaluate.compile_priority(heuristics.SOURCES[name]), empties=heuristics.EMPTIES[name]
    )
    got = table.known_result(name, dataset)  # JAX, cached for the table test
    assert got.bins == expected.bins, name
    assert got.l1 == expected.l1


def test_window_growth_gives_the_same_counts():
  # Start from a 4-slot window so the overflow-and-redo path runs several times.
  ds = data.load('OR2')
  items = next(iter(ds.instances.values()))
  for name in ['Best Fit', 'FunSearch Weibull']:  # one and two untouched bins shown
    small = jax_eval.pack_batch(
      items, ds.capacity, heuristics.JAX[name], empties=heuristics.EMPTIES[name], window=4
    )
    priority = evaluate.compile_priority(heuristics.SOURCES[name])
    assert int(small[0]) == evaluate.pack_literal(items, ds.capacity, priority), name


def test_both_funsearch_heuristics_on_the_other_family():
  # The table uses each published heuristic on its own family; check the swap too, on
  # the sets where it is cheap.
  for dataset, name in (('OR3', 'FunSearch Weibull'), ('Weibull 5k', 'FunSearch OR')):
    ds = data.load(dataset)
    expected = evaluate.evaluate(
      ds, evaluate.compile_priority(heuristics.SOURCES[name]), empties=heuristics.EMPTIES[name]
    )
    got = jax_eval.evaluate_dataset(ds, heuristics.JAX[name], empties=heuristics.EMPTIES[name])
    assert got.bins == expected.bins, (dataset, name)
