"""The baseline and published priority functions, as NumPy source and as jnp.

NumPy versions are source strings (the search seeds its database from
``FIRST_FIT``; the sandbox runs them). ``bins`` is the array of remaining capacities of
the feasible bins in index order, as in the paper's evaluator (see evaluate.py).

JAX versions take ``(item, bins, valid)`` over the evaluator's fixed-size vector of bin
slots: ``valid`` marks the feasible slots and the function must return, at those slots,
exactly what the NumPy version returns on the compacted array ``bins[valid]`` (so
reductions and neighbour differences are taken over feasible slots only). Values at
invalid slots are ignored.

The two FunSearch heuristics are the published programs behind the paper's Table 1
(Romera-Paredes et al., Nature 625, 2024), vendored verbatim with their provenance and
licence notice in ``data/funsearch_*_heuristic.txt`` (see data/README.md).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

_DATA = pathlib.Path(__file__).parent / 'data'

FIRST_FIT = '''\
def priority(item, bins):
    """First Fit: all feasible bins tie, and ties go to the lowest index."""
    return np.zeros_like(bins)
'''

BEST_FIT = '''\
def priority(item, bins):
    """Best Fit: prefer the bin the item leaves with the least room."""
    return -(bins - item)
'''

# A step function of the gap the item would leave: gaps up to 7 score highest (the
# smaller the better); above that a larger gap scores higher (0.9 at 8..9 up to 0.99 over
# 21), so the item avoids leaving a small unusable gap; gaps over 21 tie (lowest index).
FUNSEARCH_OR = (_DATA / 'funsearch_or_heuristic.txt').read_text()
# Scores depend on max(bins) and are differenced with the previous feasible bin's, so the
# choice depends on the order of bins and on the untouched ones.
FUNSEARCH_WEIBULL = (_DATA / 'funsearch_weibull_heuristic.txt').read_text()

SOURCES = {
  'First Fit': FIRST_FIT,
  'Best Fit': BEST_FIT,
  'FunSearch OR': FUNSEARCH_OR,
  'FunSearch Weibull': FUNSEARCH_WEIBULL,
}


def first_fit_jax(item, bins, valid):
  # bins * 0 rather than zeros_like: a constant score makes XLA constant-fold the
  # argmax's reductions over the window at compile time (slow, and it warns).
  return bins * 0.0


def best_fit_jax(item, bins, valid):
  return -(bins - item)


# The OR heuristic's steps, (largest gap, score), in the order its `elif` chain tests them.
_OR_STEPS = ((2, 4.0), (3, 3.0), (5, 2.0), (7, 1.0), (9, 0.9), (12, 0.95), (15, 0.97), (21, 0.98))


def funsearch_or_jax(item, bins, valid):
  gap = bins - item
  score = jnp.full(bins.shape, 0.99, bins.dtype)
  for bound, value in reversed(_OR_STEPS):  # the first matching step wins, as in the chain
    score = jnp.where(gap <= bound, value, score)
  return score


def funsearch_weibull_jax(item, bins, valid):
  max_bin_cap = jnp.max(jnp.where(valid, bins, -jnp.inf))
  score = (bins - max_bin_cap) ** 2 / item + bins**2 / item**2 + bins**2 / item**3
  score = jnp.where(bins > item, -score, score)
  # score[1:] -= score[:-1] on the compacted array: subtract the score of the previous
  # *feasible* slot; the first feasible slot keeps its score.
  slots = jnp.arange(bins.shape[0])
  last_valid = jax.lax.cummax(jnp.where(valid, slots, -1))
  previous = jnp.concatenate([jnp.array([-1], last_valid.dtype), last_valid[:-1]])
  return jnp.where(previous >= 0, score - score[jnp.maximum(previous, 0)], score)


# Capacities and items are small integers and these two scores are integer-valued, so
# float32 represents them exactly: the JAX evaluator may use it (see jax_eval._dtype).
first_fit_jax.exact_in_float32 = True
best_fit_jax.exact_in_float32 = True

JAX = {
  'First Fit': first_fit_jax,
  'Best Fit': best_fit_jax,
  'FunSearch OR': funsearch_or_jax,
  'FunSearch Weibull': funsearch_weibull_jax,
}

# How many untouched bins the fast evaluators must show for each heuristic's choice to
# be the same as with the paper's full pool (see evaluate.pack).
EMPTIES = {'First Fit': 1, 'Best Fit': 1, 'FunSearch OR': 1, 'FunSearch Weibull': 2}
