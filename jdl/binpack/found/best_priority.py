"""Best priority function found by `jdl binpack search` (mutation proposer).

Started 2026-11-26 17:33 UTC on vm (x86_64, 2 CPUs); ran 30.0 min, 6886 candidates
evaluated (outcomes: {'ok': 6877, 'duplicate': 510, 'error': 9}), seed 0, 8 islands, 2 workers.
Training set: data.uniform_training() (uniform 20..100, capacity 150); score -105.225,
excess 4.927%.
Test (OR-Library, unseen during the search):
  OR1: found 5.71%  Best Fit 5.81%
  OR2: found 5.66%  Best Fit 6.06%
  OR3: found 4.97%  Best Fit 5.37%
  OR4: found 4.59%  Best Fit 4.94%
"""
import numpy as np


def priority(item, bins):
    return item - (bins - np.where(bins - item >= item, item, np.log1p(bins - item)))
