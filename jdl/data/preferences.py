"""Preference pairs: two continuations of one prompt and which one a labeller preferred, as JSONL.

One object per line, with exactly these keys:

  {"prompt": str, "chosen": str, "rejected": str, "labeller": str, "p": float | null,
   "tie": bool}

`labeller` is 'auto:<run dir name>' (the sentiment classifier that stands in for people,
jdl.rlhf.labeller) or 'human' (`jdl rlhf label`); `p` is the labeller's Bradley-Terry
probability that `chosen` is preferred (null for a person). A tie keeps the two continuations in
either order with tie = true: the file records every judgement, and a trainer that cannot use
ties drops them and says how many (`split_ties`). The reward model and DPO both read this file.

A malformed line is a DataError naming `file:line` and what is wrong; nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os

from jdl.data.errors import DataError

KEYS = ('prompt', 'chosen', 'rejected', 'labeller', 'p', 'tie')


@dataclasses.dataclass(frozen=True)
class Pair:
  prompt: str
  chosen: str
  rejected: str
  labeller: str
  p: float | None  # P(chosen preferred) under the labeller's Bradley-Terry model; None: a person
  tie: bool = False

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def _problem(obj) -> str | None:
  """What is wrong with one decoded line, or None."""
  if not isinstance(obj, dict):
    return f'a JSON object was expected, got {type(obj).__name__}'
  missing = [k for k in KEYS if k not in obj]
  extra = sorted(set(obj) - set(KEYS))
  if missing or extra:
    parts = [f'missing keys {missing}'] if missing else []
    parts += [f'unknown keys {extra}'] if extra else []
    return '; '.join(parts) + f' (the keys are {list(KEYS)})'
  for key in ('prompt', 'chosen', 'rejected', 'labeller'):
    if not isinstance(obj[key], str):
      return f'"{key}" must be a string, got {type(obj[key]).__name__}'
  if not obj['labeller']:
    return "\"labeller\" is empty ('human' or 'auto:<run>')"
  if not isinstance(obj['tie'], bool):
    return f'"tie" must be true or false, got {obj["tie"]!r}'
  p = obj['p']
  if p is not None:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
      return f'"p" must be a number or null, got {p!r}'
    if not 0.0 <= p <= 1.0:
      return f'"p" must be a probability in [0, 1], got {p!r}'
  return None


def parse(line: str, where: str) -> Pair:
  """One JSONL line as a Pair; `where` ('file:line') names it in the error."""
  fix = 'correct or delete that line (every line is one pair)'
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    raise DataError(where, f'not valid JSON ({e.msg} at column {e.colno})', fix) from None
  problem = _problem(obj)
  if problem:
    raise DataError(where, problem, fix)
  p = None if obj['p'] is None else float(obj['p'])
  return Pair(obj['prompt'], obj['chosen'], obj['rejected'], obj['labeller'], p, obj['tie'])


def read(path: str | os.PathLike) -> list[Pair]:
  """Every pair of a JSONL file, in order (ties included, tie=True). Blank lines are allowed (an
  editor's trailing newline); any other line that is not a pair raises DataError('file:line')."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(
      path, 'no preference file there', 'make one with `jdl rlhf pairs` or `jdl rlhf label`'
    )
  pairs = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, start=1):
      if line.strip():
        pairs.append(parse(line, f'{path}:{number}'))
  return pairs


def split_ties(pairs: list[Pair]) -> tuple[list[Pair], int]:
  """(the pairs with a preference, the number of ties dropped): what a trainer reports."""
  decided = [p for p in pairs if not p.tie]
  return decided, len(pairs) - len(decided)


def write(path: str | os.PathLike, pairs) -> None:
  """The pairs as a new JSONL file (written beside it, then renamed: never half a file)."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = f'{path}.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    for pair in pairs:
      f.write(pair.to_json() + '\n')
  os.replace(tmp, path)


def append(path: str | os.PathLike, pair: Pair) -> None:
  """One pair at the end of the file (a person's labels survive a stop after any of them)."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'a', encoding='utf-8') as f:
    f.write(pair.to_json() + '\n')
    f.flush()
