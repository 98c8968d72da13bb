"""FunSearch's program database: islands of programs clustered by score signature.

* Each island evolves on its own (prompts are built from one island, and children go
  back to that island), which keeps diversity: islands drift to different ideas.
* Within an island, programs with the same *signature* (their bins used on every
  training instance) form a cluster. Prompts sample clusters with a softmax over their
  normalised scores; the temperature decays with the number of programs registered on
  the island (a sawtooth), so sampling gets greedier as the island fills. Within a
  cluster, shorter programs are preferred (a softmax over negated normalised length),
  which fights bloat.
* `reset_islands` periodically wipes the weaker half of the islands (ranked by their
  best score, ties broken at random) and re-seeds each with the best program of a
  random surviving island: weak lines of descent are dropped, strong ones spread.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

_ids = itertools.count()


@dataclasses.dataclass
class Program:
  source: str  # full source of `def priority(item, bins): ...`
  score: float  # higher is better (search.py: -100 x mean of bins / L1 per instance)
  signature: tuple  # bins used per training instance
  id: int = dataclasses.field(default_factory=lambda: next(_ids))
  parent_ids: tuple = ()

  @property
  def length(self) -> int:
    return len(self.source)


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
  z = (logits - logits.max()) / max(temperature, 1e-9)
  p = np.exp(z)
  return p / p.sum()


def _normalise(values: np.ndarray) -> np.ndarray:
  span = values.max() - values.min()
  return (values - values.min()) / (span + 1e-6)


class Island:
  def __init__(self, temperature_init: float, temperature_period: int):
    self.clusters: dict[tuple, list[Program]] = {}
    self.scores: dict[tuple, float] = {}
    self.num_programs = 0
    self.temperature_init = temperature_init
    self.temperature_period = temperature_period

  def register(self, program: Program) -> None:
    self.clusters.setdefault(program.signature, []).append(program)
    self.scores[program.signature] = program.score
    self.num_programs += 1

  @property
  def best(self) -> Program | None:
    if not self.clusters:
      return None
    signature = max(self.scores, key=self.scores.get)
    return min(self.clusters[signature], key=lambda p: p.length)

  @property
  def temperature(self) -> float:
    phase = (self.num_programs % self.temperature_period) / self.temperature_period
    return self.temperature_init * (1.0 - phase)

  def sample(self, k: int, rng: np.random.Generator) -> list[Program]:
    """Up to k programs from distinct clusters, worst first (the prompt's order)."""
    signatures = list(self.clusters)
    scores = np.array([self.scores[s] for s in signatures], dtype=float)
    k = min(k, len(signatures))
    probs = _softmax(_normalise(scores), self.temperature)
    # FunSearch samples without replacement among clusters with non-zero probability.
    nonzero = int(np.count_nonzero(probs > 0))
    chosen = rng.choice(len(signatures), size=min(k, nonzero), replace=False, p=probs)
    programs = []
    for index in chosen:
      members = self.clusters[signatures[index]]
      lengths = np.array([p.length for p in members], dtype=float)
      pick = rng.choice(len(members), p=_softmax(-_normalise(lengths), 1.0))
      programs.append(members[pick])
    return sorted(programs, key=lambda p: p.score)


@dataclasses.dataclass
class Prompt:
  island: int
  programs: list  # Program, worst first
  text: str


class ProgramDatabase:
  def __init__(
    self,
    num_islands: int = 8,
    functions_per_prompt: int = 2,
    temperature_init: float = 0.1,
    temperature_period: int = 30_000,
    seed: int = 0,
  ):
    self.rng = np.random.default_rng(seed)
    self.functions_per_prompt = functions_per_prompt
    self.islands = [Island(temperature_init, temperature_period) for _ in range(num_islands)]
    self.resets = 0

  def register(self, program: Program, island: int | None = None) -> None:
    """Add a scored program to one island, or to all (the initial program)."""
    targets = range(len(self.islands)) if island is None else [island]
    for i in targets:
      self.islands[i].register(program)

  @property
  def best(self) -> Program | None:
    bests = [i.best for i in self.islands if i.best is not None]
    return max(bests, key=lambda p: (p.score, -p.length)) if bests else None

  def prompt(self) -> Prompt:
    """Sample an island, then its programs, and render the versioned skeleton."""
    island = int(self.rng.integers(len(self.islands)))
    programs = self.islands[island].sample(self.functions_per_prompt, self.rng)
    return Prompt(island, programs, render_prompt([p.source for p in programs]))

  def reset_islands(self) -> list[int]:
    """Re-seed the weaker half of the islands from the stronger half."""
    best_scores = np.array([i.best.score if i.best else -np.inf for i in self.islands])
    noise = self.rng.normal(size=len(best_scores)) * 1e-6  # random tie-break
    order = np.argsort(best_scores + noise)
    half = len(self.islands) // 2
    weak, strong = order[:half], order[half:]
    for index in weak:
      founder = self.islands[int(self.rng.choice(strong))].best
      island = Island(self.islands[index].temperature_init, self.islands[index].temperature_period)
      if founder is not None:
        island.register(founder)
      self.islands[index] = island
    self.resets += 1
    return [int(i) for i in weak]

  def stats(self) -> dict:
    return {
      'islands': len(self.islands),
      'programs': [i.num_programs for i in self.islands],
      'clusters': [len(i.clusters) for i in self.islands],
      'resets': self.resets,
    }


HEADER = '''"""Finds good priority functions for online bin packing.

An item arrives; `bins` holds the remaining capacities of the bins that can take it
(untouched bins included, at full capacity). The item goes to the bin of highest
priority. Fewer bins used is better. Only numpy and math may be used.
"""
import math
import numpy as np

'''


def render_prompt(sources: list[str]) -> str:
  """The paper's prompt: earlier programs as priority_v0, v1, ... then a v(k) header."""
  import ast

  parts = [HEADER]
  for version, source in enumerate(sources):
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    fn.name = f'priority_v{version}'
    if version:
      doc = ast.Expr(ast.Constant(f'Improved version of `priority_v{version - 1}`.'))
      body = fn.body[1:] if _has_docstring(fn) else fn.body
      fn.body = [doc] + body
    parts.append(ast.unparse(fn) + '\n\n')
  k = len(sources)
  previous = f'Improved version of `priority_v{k - 1}`.' if k else 'Returns priorities.'
  parts.append(
    f'def priority_v{k}(item: float, bins: np.ndarray) -> np.ndarray:\n    """{previous}"""\n'
  )
  return ''.join(parts)


def _has_docstring(fn) -> bool:
  import ast

  return (
    bool(fn.body)
    and isinstance(fn.body[0], ast.Expr)
    and isinstance(fn.body[0].value, ast.Constant)
    and isinstance(fn.body[0].value.value, str)
  )
