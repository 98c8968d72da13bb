"""Benchmark: JAX vs NumPy evaluator on Weibull 100k, and search throughput."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time


def run_bench(
  repeats: int = 5, search_seconds: float = 30.0, verbose: bool = True, quick: bool = False
) -> dict:
  """Times scoring the published Weibull heuristic on Weibull 100k.

  JAX: median of `repeats` runs after a compile-and-run warm-up. NumPy: the fast
  reference (`evaluate.pack`, dead bins dropped, two untouched bins shown), one run;
  the paper's literal O(n^2) loop would take minutes at this size. Then a short
  offline search measures sandboxed candidates evaluated per minute. Returns the
  numbers as a dict (also printed as a short report).
  """
  from jdl.binpack import data, evaluate, heuristics, jax_eval, proposers, search

  if quick:  # for a smoke run of `jdl bench`: fewer repeats, a 10 s search
    repeats, search_seconds = 2, 10.0

  dataset = data.load('Weibull 100k')
  items = next(iter(dataset.instances.values()))
  fn = heuristics.JAX['FunSearch Weibull']

  start = time.perf_counter()
  bins = int(jax_eval.pack_batch(items, 100, fn, empties=2)[0])
  first = time.perf_counter() - start
  runs = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax_eval.pack_batch(items, 100, fn, empties=2)
    runs.append(time.perf_counter() - start)

  priority = evaluate.compile_priority(heuristics.FUNSEARCH_WEIBULL)
  start = time.perf_counter()
  numpy_bins = evaluate.pack(items, 100, priority, empties=2)
  numpy_seconds = time.perf_counter() - start

  with tempfile.TemporaryDirectory() as tmp:
    result = search.run_search(
      proposers.MutationProposer(seed=0),
      seconds=search_seconds,
      log_path=os.path.join(tmp, 'log.jsonl'),
      verbose=False,
    )
  l1 = evaluate.l1_bound(items, 100)
  report = {
    'machine': f'{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs',
    'date': time.strftime('%Y-%m-%d %H:%M'),
    'weibull_100k_bins': bins,
    'weibull_100k_excess_percent': round(100 * (bins - l1) / l1, 4),
    'jax_first_call_s': round(first, 3),
    'jax_median_s': round(statistics.median(runs), 3),
    'jax_runs_s': [round(r, 3) for r in runs],
    'numpy_s': round(numpy_seconds, 3),
    'numpy_bins_match': numpy_bins == bins,
    'search_seconds': round(result.seconds, 1),
    'search_candidates': result.evaluated,
    'candidates_per_minute': round(60 * result.evaluated / result.seconds, 1),
  }
  if verbose:
    print(f'binpack bench on {report["machine"]} at {report["date"]}')
    print(
      f'  Weibull 100k, FunSearch Weibull heuristic: {bins} bins '
      f'(excess {report["weibull_100k_excess_percent"]}%)'
    )
    print(
      f'  JAX evaluator:   median {report["jax_median_s"]:.3f} s over {repeats} runs '
      f'(first call incl. compile {first:.2f} s; target < 2 s)'
    )
    print(f'  NumPy reference: {numpy_seconds:.2f} s (same bins: {numpy_bins == bins})')
    print(
      f'  search: {result.evaluated} sandboxed candidates in {result.seconds:.0f} s '
      f'= {report["candidates_per_minute"]} per minute (2 workers)'
    )
  return report


def main(quick: bool = False) -> int:
  """`jdl bench binpack`: the report of `run_bench`, exit status 0."""
  run_bench(quick=quick)
  return 0
