"""Vectorised JAX evaluator: `lax.scan` over items, priorities in jnp over a bin vector.

Same semantics and same bin counts as `evaluate.pack` (the NumPy reference), but with
fixed shapes so XLA can compile the whole instance into one loop:

* the state is a window of K slots holding the live bins that have been touched or
  skipped (remaining capacity, in index order; -1 marks an unused slot), the index
  `fresh` of the first untouched bin, and a count of dead used bins;
* each step shows the priority function the K slots plus E untouched bins (value C)
  with a feasibility mask, takes the argmax over feasible slots (NumPy's tie and NaN
  rules), applies the move, then frees the slots of bins that are now dead (remaining
  capacity below every item still to come: never feasible again). Freed slots are
  reclaimed by an order-preserving compaction only when the window fills up;
* if the live bins fill more than 3/4 of the window the run is flagged and redone with
  a 4x larger window (heuristics that leave many small gaps, like First Fit on Weibull
  100k, keep ~20,000 bins live; FunSearch's Weibull heuristic keeps ~70).

Instances of one dataset run in one compiled `lax.map` (equal lengths). Scores are
computed in float64 (under `jax.enable_x64`) so that they, and hence ties, match NumPy's;
priorities marked `exact_in_float32` (First Fit, Best Fit) run in float32, which is
exact for their integer scores and faster on big windows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jdl.binpack import evaluate

JaxPriority = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

DEFAULT_WINDOW = 128


def _first_argmax(scores, valid):
  """np.argmax over scores[valid], mapped back to a slot (first max, or first NaN).

  A max and a min-of-indices (two plain reductions XLA vectorises) instead of
  jnp.argmax, whose (value, index) reduction is several times slower on CPU.
  """
  slots = jnp.arange(scores.shape[0])
  masked = jnp.where(valid, scores, -jnp.inf)
  best = jnp.max(masked)  # NaN if any feasible score is NaN
  first_best = jnp.min(jnp.where(valid & (masked == best), slots, scores.shape[0]))

  def nan_or_all_minus_inf():
    # NumPy picks the first NaN; if all feasible scores are -inf, the first feasible.
    return jnp.where(jnp.isnan(best), jnp.argmax(valid & jnp.isnan(scores)), jnp.argmax(valid))

  return jax.lax.cond(first_best < scores.shape[0], lambda: first_best, nan_or_all_minus_inf)


def _dtype(priority):
  """float64 unless the priority says float32 is exact for it (integer-valued scores,
  like First Fit's and Best Fit's): halving the window's bytes speeds up big windows."""
  return jnp.float32 if getattr(priority, 'exact_in_float32', False) else jnp.float64


@functools.lru_cache(maxsize=64)
def _compiled(priority: JaxPriority, capacity: int, num_items: int, window: int, empties: int):
  K, E, C = window, empties, float(capacity)
  dt = _dtype(priority)
  slots = jnp.arange(K)
  tail = jnp.arange(E)

  def compact(caps):
    """Move live slots (caps >= 0) to the front, keeping their order."""
    live = caps >= 0
    target = jnp.where(live, jnp.cumsum(live) - 1, K)
    return jnp.full((K,), -1.0, dt).at[target].set(caps, mode='drop'), jnp.sum(live)

  def move(state, x):
    caps, n, fresh, used_dead, overflow = state
    item, future_min = x

    # Make room for up to E new bins; compacting only when the window is full keeps
    # the per-step work to a few elementwise passes. If live bins still fill over
    # 3/4 of it, compaction would run too often: flag, and redo with a larger window.
    def compact_or_flag(caps):
      caps, live = compact(caps)
      return caps, live, overflow | (live > K - K // 4 - E)

    caps, n, overflow = jax.lax.cond(n + E > K, compact_or_flag, lambda c: (c, n, overflow), caps)
    pool = jnp.concatenate([caps, jnp.full((E,), C, dt)])
    valid = jnp.concatenate([caps >= item, tail < num_items - fresh])
    j = _first_argmax(priority(item, pool, valid), valid)
    # In the window: subtract in place. Past it: the untouched bins before the chosen
    # one are skipped (they join the window, still full), then the chosen one.
    in_window = j < K
    grow = jnp.where(in_window, 0, j - K + 1)
    caps = caps - jnp.where(in_window & (slots == j), item, 0.0)
    caps = jnp.where((slots >= n) & (slots < n + grow), C, caps)
    caps = jnp.where(~in_window & (slots == n + grow - 1), C - item, caps)
    n, fresh = n + grow, fresh + grow
    # Dead bins (below every item still to come) can never be chosen again: count
    # them and free their slots (-1 = empty slot, never feasible).
    dead = (caps >= 0) & (caps < future_min)
    used_dead = used_dead + jnp.sum(dead & (caps < C))
    caps = jnp.where(dead, jnp.asarray(-1.0, dt), caps)
    return caps, n, fresh, used_dead, overflow

  def step(state, x):
    # After an overflow the results are discarded and the run redone with a 4x window.
    # (Skipping the remaining work with a lax.cond around `move` was tried: the cond
    # copies the whole state every step and made every run ~3x slower.)
    return move(state, x), None

  def run(items, future_min):
    init = (jnp.full((K,), -1.0, dt), jnp.int64(0), jnp.int64(0), jnp.int64(0), jnp.bool_(False))
    (caps, _, _, used_dead, overflow), _ = jax.lax.scan(step, init, (items, future_min))
    return used_dead + jnp.sum((caps >= 0) & (caps < C)), overflow

  # lax.map, not vmap: under vmap the conds above would run both branches every step.
  return jax.jit(lambda items, future: jax.lax.map(lambda a: run(*a), (items, future)))


def pack_batch(
  items: np.ndarray,
  capacity: int,
  priority: JaxPriority,
  *,
  empties: int = 2,
  window: int = DEFAULT_WINDOW,
) -> np.ndarray:
  """Bins used on each row of `items` ([B, n] ints); grows the window on overflow."""
  items = np.atleast_2d(np.asarray(items, dtype=np.int64))
  num_items = items.shape[1]
  future = np.stack([evaluate.future_minimum(row, capacity + 1) for row in items])
  with jax.enable_x64(True):
    dt = _dtype(priority)
    xs = (jnp.asarray(items, dt), jnp.asarray(future, dt))
    while True:
      fn = _compiled(priority, int(capacity), num_items, int(window), int(empties))
      used, overflow = fn(*xs)
      if not bool(np.any(np.asarray(overflow))):
        return np.asarray(used, dtype=np.int64)
      if window >= 2 * (num_items + empties):  # cannot happen: live bins <= n
        raise RuntimeError('window overflow at full size')
      window *= 4  # the failed runs cost at most 1/3 of the final one


def evaluate_dataset(
  dataset, priority: JaxPriority, *, empties: int = 2, window: int = DEFAULT_WINDOW
) -> evaluate.Result:
  """`evaluate.evaluate` for a jnp priority: one compiled lax.map of scans per dataset."""
  names = list(dataset.instances)
  lengths = {len(dataset.instances[k]) for k in names}
  bins = {}
  for length in sorted(lengths):  # equal lengths batch together (always one group here)
    group = [k for k in names if len(dataset.instances[k]) == length]
    used = pack_batch(
      np.stack([dataset.instances[k] for k in group]),
      dataset.capacity,
      priority,
      empties=empties,
      window=window,
    )
    bins.update({k: int(u) for k, u in zip(group, used)})
  l1 = {k: evaluate.l1_bound(dataset.instances[k], dataset.capacity) for k in names}
  return evaluate.Result({k: bins[k] for k in names}, l1)
