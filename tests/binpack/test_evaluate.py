"""The NumPy reference evaluator: hand-worked cases, the metric, the paper's baselines."""

import numpy as np
import pytest

from jdl.binpack import data, evaluate, heuristics

FF = evaluate.compile_priority(heuristics.FIRST_FIT)
BF = evaluate.compile_priority(heuristics.BEST_FIT)
KNOWN = {name: evaluate.compile_priority(src) for name, src in heuristics.SOURCES.items()}


def test_tiny_instance_by_hand():
  # Capacity 10, items 5, 7, 3, 5.
  # First Fit: 5 -> bin0 (5 left); 7 -> bin1 (3 left); 3 -> bin0 (2 left, first fit);
  #            5 -> no open bin fits -> bin2.                          => 3 bins
  # Best Fit:  5 -> bin0 (5); 7 -> bin1 (3); 3 -> bin1 (0 left, tightest);
  #            5 -> bin0 (0 left).                                     => 2 bins
  items = [5, 7, 3, 5]
  assert evaluate.pack(items, 10, FF) == 3
  assert evaluate.pack(items, 10, BF) == 2
  assert evaluate.pack_literal(items, 10, FF) == 3
  assert evaluate.pack_literal(items, 10, BF) == 2
  # L1 = ceil(20 / 10) = 2, so First Fit's excess on this one instance is 50%.
  assert evaluate.l1_bound(items, 10) == 2
  assert evaluate.excess([3], [2]) == pytest.approx(0.5)


def test_l1_bound_rounds_up():
  assert evaluate.l1_bound([10, 10], 10) == 2
  assert evaluate.l1_bound([10, 1], 10) == 2
  assert evaluate.l1_bound([1], 150) == 1


def test_excess_is_a_ratio_of_means():
  # bins (3, 5), L1 (2, 4): (mean 4 - mean 3) / mean 3 = 1/3, not the mean of the
  # per-instance ratios (0.5 + 0.25) / 2 = 0.375.
  assert evaluate.excess([3, 5], [2, 4]) == pytest.approx(1 / 3)


def test_a_heuristic_may_open_a_bin_although_one_fits():
  # The paper's evaluator offers untouched bins too: "worst fit" picks a full one.
  def worst_fit(item, bins):
    return bins.astype(float)

  assert evaluate.pack([5, 5], 10, worst_fit) == 2 == evaluate.pack_literal([5, 5], 10, worst_fit)


@pytest.mark.parametrize('name', ['OR1', 'OR2', 'OR3', 'OR4'])
def test_fast_reference_equals_papers_loop_on_or(name):
  ds = data.load(name)
  for heuristic, priority in KNOWN.items():
    instances = list(ds.instances.values())
    if heuristic == 'FunSearch OR' and name in ('OR3', 'OR4'):
      # Its per-bin Python loop makes the paper's O(n^2) loop slow (~15 s on all of OR4).
      instances = instances[:2]
    for items in instances:
      expected = evaluate.pack_literal(items, ds.capacity, priority)
      assert evaluate.pack(items, ds.capacity, priority) == expected, heuristic
      # Showing only E untouched bins is exact for these heuristics (see evaluate).
      assert (
        evaluate.pack(items, ds.capacity, priority, empties=heuristics.EMPTIES[heuristic])
        == expected
      ), heuristic


def test_fast_reference_equals_papers_loop_on_weibull_instance():
  ds = data.load('Weibull 5k')
  for heuristic, priority in KNOWN.items():
    items = next(iter(ds.instances.values()))
    if heuristic == 'FunSearch OR':  # a per-bin Python loop: a prefix keeps it to a second
      items = items[:1000]
    expected = evaluate.pack_literal(items, ds.capacity, priority)
    assert (
      evaluate.pack(items, ds.capacity, priority, empties=heuristics.EMPTIES[heuristic]) == expected
    ), heuristic


# Observed: First Fit and Best Fit reproduce the paper's OR row to the printed 2 decimals
# (difference < 0.005 percentage points); we assert within 0.01.
PAPER_OR = {
  'First Fit': {'OR1': 6.42, 'OR2': 6.45, 'OR3': 5.74, 'OR4': 5.23},
  'Best Fit': {'OR1': 5.81, 'OR2': 6.06, 'OR3': 5.37, 'OR4': 4.94},
}


@pytest.mark.parametrize('heuristic', ['First Fit', 'Best Fit'])
def test_baselines_match_the_paper_on_or(heuristic):
  for name, published in PAPER_OR[heuristic].items():
    result = evaluate.evaluate(data.load(name), KNOWN[heuristic], empties=1)
    assert result.excess_percent == pytest.approx(published, abs=0.01), name


def test_online_packing_steps_like_pack():
  # Driving OnlinePacking by hand (as the sandbox's driver does) packs like `pack`.
  ds = data.load('OR1')
  for items in list(ds.instances.values())[:5]:
    packing = evaluate.OnlinePacking(items, ds.capacity)
    while not packing.done:
      item, live, untouched = packing.offer()
      assert untouched >= 1 and (live >= item).all()
      packing.place(int(np.argmax(BF(item, np.concatenate([live, [ds.capacity] * untouched])))))
    assert packing.bins_used == evaluate.pack_literal(items, ds.capacity, BF)


def test_or_heuristic_reproduces_published_or_row():
  # The published OR heuristic (vendored from the paper's notebook): 5.30, 4.19, 3.11, 2.47.
  for name, published in {'OR1': 5.30, 'OR2': 4.19, 'OR3': 3.11, 'OR4': 2.47}.items():
    result = evaluate.evaluate(data.load(name), KNOWN['FunSearch OR'], empties=1)
    assert result.excess_percent == pytest.approx(published, abs=0.005), name


def test_weibull_heuristic_reproduces_published_weibull_5k():
  # 0.68% in the paper; this needs the paper's pool of untouched bins (see evaluate).
  result = evaluate.evaluate(data.load('Weibull 5k'), KNOWN['FunSearch Weibull'], empties=2)
  assert result.excess_percent == pytest.approx(0.68, abs=0.005)


def test_generated_weibull_sets_are_deterministic_and_in_range():
  a, b = data.weibull(1000, seed=7), data.weibull(1000, seed=7)
  assert np.array_equal(a, b)
  ds = data.load('Weibull 10k')
  assert ds.capacity == 100 and len(ds.instances) == 5
  for items in ds.instances.values():
    assert len(items) == 10_000 and items.min() >= 1 and items.max() <= 100
    assert 38 < items.mean() < 42  # 45 * Gamma(4/3) - 0.5 (floor) ~ 39.7
  assert [len(v) for v in data.load('Weibull 100k').instances.values()] == [100_000]


def test_training_set_is_not_the_test_set():
  train = data.uniform_training()
  assert train.capacity == 150
  or_items = {
    tuple(v[:50]) for n in ('OR1', 'OR2', 'OR3', 'OR4') for v in data.load(n).instances.values()
  }
  for items in train.instances.values():
    assert items.min() >= 20 and items.max() <= 100
    assert tuple(items[:50]) not in or_items
