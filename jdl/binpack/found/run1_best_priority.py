"""Best priority function found by `jdl binpack search` (mutation proposer).

Started 2026-11-26 17:02 UTC on vm (x86_64, 2 CPUs); ran 30.0 min, 3286 candidates
evaluated (outcomes: {'ok': 2851, 'error': 435, 'duplicate': 152}), seed 0, 8 islands, 2 workers.
Training set: data.uniform_training() (uniform 20..100, capacity 150); mean bins 195.438,
excess 3.818%.
Test (OR-Library, unseen during the search):
  OR1: found 6.32%  Best Fit 5.81%
  OR2: found 5.66%  Best Fit 6.06%
  OR3: found 3.75%  Best Fit 5.37%
  OR4: found 3.01%  Best Fit 4.94%
"""
import numpy as np


def priority(item, bins):
    return np.where(bins - item > 19.87, bins, item) - np.sqrt(np.abs((bins - item - item) * (item - bins))) - bins
