"""The baseline and published priority functions, as NumPy source and as jnp.

NumPy versions are source strings (the search seeds its database from
``FIRST_FIT``; the table execs them). ``bins`` is the array of remaining capacities of
the feasible bins in index order, as in the paper's evaluator (see evaluate.py).

JAX versions take ``(item, bins, valid)`` over the evaluator's fixed-size vector of bin
slots: ``valid`` marks the feasible slots and the function must return, at those slots,
exactly what the NumPy version returns on the compacted array ``bins[valid]`` (so
reductions and neighbour differences are taken over feasible slots only). Values at
invalid slots are ignored.

The two FunSearch heuristics are re-implemented from the programs printed in the
paper's figures (Romera-Paredes et al., Nature 625, 2024: the OR heuristic with the
best-fit-bin special case, and the Weibull heuristic with the neighbour difference).
They are short illustrative programs, not the longer ones behind the paper's Table 1,
so their OR numbers here differ from the published row (see docs/binpack.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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

FUNSEARCH_OR = '''\
def priority(item, bins):
    """FunSearch's published heuristic for the OR datasets."""
    # Every bin starts from the same base score; large leftover room is penalised
    # quadratically (capacity times gap), which also keeps untouched bins unattractive.
    score = 1000 * np.ones(bins.shape)
    score -= bins * (bins - item)
    # The fullest feasible bin (the best-fit bin) is special-cased: its score is scaled
    # by the item size and penalised by the fourth power of the gap it would leave.
    index = np.argmin(bins)
    score[index] *= item
    score[index] -= (bins[index] - item) ** 4
    return score
'''

FUNSEARCH_WEIBULL = '''\
def priority(item, bins):
    """FunSearch's published heuristic for the Weibull datasets."""
    max_bin_cap = max(bins)
    score = (bins - max_bin_cap) ** 2 / item
    score += bins ** 2 / item ** 2
    score += bins ** 2 / item ** 3
    # Bins that would keep room after the item get negated scores ...
    score[bins > item] = -score[bins > item]
    # ... and each score becomes its difference with the previous feasible bin's,
    # which makes the choice depend on the order of bins (and on untouched bins).
    score[1:] -= score[:-1]
    return score
'''

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


def funsearch_or_jax(item, bins, valid):
  score = 1000.0 - bins * (bins - item)
  # np.argmin over the compacted array = first feasible slot holding the minimum.
  index = jnp.argmin(jnp.where(valid, bins, jnp.inf))
  best = score[index] * item - (bins[index] - item) ** 4
  return score.at[index].set(best)


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
EMPTIES = {'First Fit': 1, 'Best Fit': 1, 'FunSearch OR': 2, 'FunSearch Weibull': 2}
