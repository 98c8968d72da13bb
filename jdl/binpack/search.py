"""The FunSearch loop: sample a prompt, propose programs, evaluate them asynchronously
in sandboxes, register the good ones on the prompt's island, reset weak islands.

A program's score is minus 100 x the mean over training instances of bins used / L1
bound (higher is better). FunSearch used minus the mean bins; normalising per instance
weighs short instances as much as long ones (run 1, which used mean bins, produced a
heuristic that was worse than Best Fit on the short OR1 instances). The signature is
the bins used per instance. Candidates,
the initial program included, are evaluated by `sandbox`: they are arbitrary (untrusted)
code, so a trusted driver packs and a confined process only returns their scores.

The log is JSONL: one `start` record, an `improved` record each time the best score
improves (with the program), a `tick` record every `tick_seconds`, and an `end` record.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections import Counter

import numpy as np

from jdl.binpack import data, database, heuristics, sandbox


@dataclasses.dataclass
class SearchResult:
  best: database.Program
  train_excess: float  # percent, on the training set
  evaluated: int
  seconds: float
  outcomes: dict  # status -> count
  log_path: pathlib.Path | None


def excess_percent(signature, l1_bounds) -> float:
  return 100.0 * (float(np.mean(signature)) - float(np.mean(l1_bounds))) / float(np.mean(l1_bounds))


def run_search(
  proposer,
  *,
  seconds: float,
  train: data.Dataset | None = None,
  workers: int = 2,
  islands: int = 8,
  reset_every: int = 1000,
  max_evaluations: int | None = None,
  log_path=None,
  seed: int = 0,
  initial: str = heuristics.FIRST_FIT,
  timeout: float = 20.0,
  tick_seconds: float = 15.0,
  verbose: bool = True,
) -> SearchResult:
  """Run the loop for `seconds` (or `max_evaluations` candidates)."""
  train = train or data.uniform_training()
  l1 = [-(-int(v.sum()) // train.capacity) for v in train.instances.values()]

  def score(bins) -> float:
    return -100.0 * float(np.mean(np.asarray(bins) / np.asarray(l1)))

  db = database.ProgramDatabase(num_islands=islands, seed=seed)
  log = open(log_path, 'w') if log_path else None  # noqa: SIM115 - closed in finally
  start = time.monotonic()
  counts: Counter = Counter()
  seen: set[str] = set()
  evaluated = 0
  best_score = -np.inf
  next_tick = tick_seconds

  def write(record: dict) -> None:
    record = {'t': round(time.monotonic() - start, 2), **record}
    if log:
      log.write(json.dumps(record) + '\n')
      log.flush()

  def say(message: str) -> None:
    if verbose:
      print(f'[binpack search {time.monotonic() - start:7.1f}s] {message}', flush=True)

  pool = sandbox.SandboxPool(train, workers=workers, timeout=timeout)
  try:
    pool.submit(initial)
    (first,) = pool.drain(timeout + 60)
    if not first.ok:
      raise RuntimeError(f'initial program failed: {first.status} {first.reason}')
    seed_program = database.Program(initial, score(first.bins), tuple(first.bins))
    db.register(seed_program)  # on every island
    best_score = seed_program.score
    write(
      {
        'event': 'start',
        'score': best_score,
        'workers': workers,
        'islands': islands,
        'train_instances': len(l1),
        'train_excess': excess_percent(first.bins, l1),
        'program': initial,
      }
    )
    say(
      f'initial program: score {best_score:.3f}, train excess {excess_percent(first.bins, l1):.2f}%'
    )

    def out_of_budget() -> bool:
      if max_evaluations is not None and evaluated >= max_evaluations:
        return True
      return time.monotonic() - start >= seconds

    while not out_of_budget():
      # Keep every worker busy with a small backlog, so proposing never starves them.
      while pool.busy < 2 * workers:
        prompt = db.prompt()
        for source in proposer.propose(prompt):
          if source in seen:
            counts['duplicate'] += 1
            continue
          seen.add(source)
          parents = tuple(p.id for p in prompt.programs)
          pool.submit(source, tag=(prompt.island, parents))
        if pool.busy == 0:  # the proposer produced nothing new this time
          break
      for outcome in pool.poll(timeout=0.5):
        evaluated += 1
        counts[outcome.status] += 1
        if not outcome.ok:
          continue
        island, parents = outcome.tag
        program = database.Program(
          outcome.source, score(outcome.bins), tuple(outcome.bins), parent_ids=parents
        )
        db.register(program, island)
        if program.score > best_score:
          best_score = program.score
          excess = excess_percent(program.signature, l1)
          write(
            {
              'event': 'improved',
              'evaluated': evaluated,
              'score': best_score,
              'train_excess': excess,
              'island': island,
              'program': program.source,
            }
          )
          say(
            f'new best after {evaluated} candidates: score {best_score:.3f}, '
            f'train excess {excess:.2f}%'
          )
        if evaluated % reset_every == 0:
          wiped = db.reset_islands()
          write({'event': 'reset', 'evaluated': evaluated, 'islands': wiped})
          say(f'reset islands {wiped}')
      if time.monotonic() - start >= next_tick:
        next_tick += tick_seconds
        write(
          {'event': 'tick', 'evaluated': evaluated, 'score': best_score, 'outcomes': dict(counts)}
        )
  finally:
    pool.close()
    if log:
      best = db.best
      if best is not None:
        write(
          {
            'event': 'end',
            'evaluated': evaluated,
            'score': best.score,
            'train_excess': excess_percent(best.signature, l1),
            'outcomes': dict(counts),
            'database': db.stats(),
            'program': best.source,
          }
        )
      log.close()
  best = db.best
  return SearchResult(
    best,
    excess_percent(best.signature, l1),
    evaluated,
    time.monotonic() - start,
    dict(counts),
    pathlib.Path(log_path) if log_path else None,
  )


def read_log(path) -> list[dict]:
  """The JSONL records of a search log."""
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def best_over_time(records: list[dict]) -> tuple[list[float], list[float]]:
  """(seconds, best train excess %) steps for plotting, from a log's records."""
  times, values, current = [], [], None
  for r in records:
    if 'train_excess' in r and r['event'] in ('start', 'improved'):
      current = r['train_excess']
    if current is not None and r['event'] in ('start', 'improved', 'tick', 'end'):
      times.append(r['t'])
      values.append(current if r['event'] != 'end' else min(current, r['train_excess']))
  return times, values
