"""Preference pairs from the supervised policy: `jdl rlhf pairs` (the automatic labeller) and
`jdl rlhf label` (a person in the terminal), both written as jdl.data.preferences JSONL.

Each prompt (a review opening, jdl.data.review_prompts) gets two continuations sampled from the
policy at temperature 1 with the KV cache; the labeller reads each continuation alone and
prefers one with its Bradley-Terry probability (jdl.rlhf.labeller), as in Ziegler et al.'s
(2019) sentiment task. The pairs of training-review prompts train the reward model and DPO; the
pairs of validation-review prompts are held out (the reward model's accuracy).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from jdl.data import preferences, review_prompts
from jdl.data.preferences import Pair
from jdl.rlhf import policy
from jdl.train.errors import UsageError

HUMAN_FILE = 'prefs_human.jsonl'


def sample_k(model, prompts, n_bytes, k, *, temperature, seed, batch) -> list[list[str]]:
  """k continuations (texts) of every prompt: each prompt is sampled k times in a row."""
  repeated = [p for p in prompts for _ in range(k)]
  ids = policy.continuations(
    model, repeated, n_bytes, temperature=temperature, seed=seed, batch=batch
  )
  texts = policy.decode(ids)
  return [texts[i * k : (i + 1) * k] for i in range(len(prompts))]


def label_pairs(labeller, prompts, samples, seed: int, every_pair: bool = False) -> list[Pair]:
  """Pairs from each prompt's k samples: the labeller ranks them (a Plackett-Luce draw,
  jdl.rlhf.labeller); the pair is its first (chosen) and its last (rejected), or with
  `every_pair` each of the k (k - 1) / 2 pairs of the ranking, the higher-ranked chosen (as
  InstructGPT turns a ranking of K into comparisons). p is the labeller's Bradley-Terry
  probability of that choice. With k = 2 both are the Bradley-Terry draw between the two."""
  orders, scores = labeller.ranked(samples, np.random.default_rng(seed))
  pairs = []
  for prompt, texts, order, s in zip(prompts, samples, orders, scores, strict=True):
    k = len(order)
    ranks = [(i, j) for i in range(k) for j in range(i + 1, k)] if every_pair else [(0, k - 1)]
    for i, j in ranks:  # the Bradley-Terry probability from the scores the ranking drew on
      c, r = order[i], order[j]
      p = 1.0 / (1.0 + np.exp(-(s[c] - s[r]) / labeller.temperature))
      pairs.append(Pair(prompt, texts[c], texts[r], labeller.name, round(float(p), 6)))
  return pairs


def _read_samples(cache: str) -> dict:
  if not os.path.isfile(cache):
    raise UsageError(f'--relabel: no samples in {cache}; run `jdl rlhf pairs` without it')
  with open(cache, encoding='utf-8') as f:
    kept = json.load(f)
  if 'samples' not in kept:  # written before k samples per prompt: two, as a and b
    kept['samples'] = [list(ab) for ab in zip(kept.pop('a'), kept.pop('b'), strict=True)]
  return kept


def make_pairs(args) -> int:
  """`jdl rlhf pairs`: the training pairs and the held-out pairs, each a JSONL file. The
  unlabelled continuations are kept beside them (OUT.samples.json): `--relabel` labels those
  (or those of `--samples` / `--heldout-samples`) again, with another labeller, temperature or
  `--every-pair`, without sampling."""
  from jdl.rlhf.labeller import Labeller

  jobs = [('train', args.n, args.out, getattr(args, 'samples', ''))]
  if args.heldout_n:
    jobs.append(
      ('validation', args.heldout_n, args.heldout_out, getattr(args, 'heldout_samples', ''))
    )
  sampled = {}
  for split, n, out, kept in jobs:
    cache = (args.relabel and kept) or f'{out}.samples.json'
    seed = args.seed + (split != 'train')
    if args.relabel:
      sampled[split] = _read_samples(cache)
      continue
    model = policy.load_policy(args.policy)
    prompts = review_prompts.prompts(split, n=n, length=args.prompt_bytes, seed=args.seed)
    policy.check_lengths(model, prompts, args.continuation_bytes)
    start = time.time()
    samples = sample_k(
      model,
      prompts,
      args.continuation_bytes,
      args.per_prompt,
      temperature=args.temperature,
      seed=seed,
      batch=args.batch,
    )
    sampled[split] = {'policy': args.policy, 'prompts': prompts, 'samples': samples}
    os.makedirs(os.path.dirname(cache) or '.', exist_ok=True)
    with open(cache, 'w', encoding='utf-8') as f:
      json.dump(sampled[split], f)
    print(
      f'{cache}: {len(prompts) * args.per_prompt} continuations in {time.time() - start:.0f} s',
      flush=True,
    )
  labeller = Labeller.load(args.labeller, temperature=args.labeller_temperature)
  for split, _, out, _ in jobs:
    s = sampled[split]
    every = args.every_pair
    pairs = label_pairs(labeller, s['prompts'], s['samples'], args.seed + (split != 'train'), every)
    preferences.write(out, pairs)
    p = np.array([x.p for x in pairs])
    print(
      f'{out}: {len(pairs)} pairs from {len(s["prompts"])} {split}-review prompts, '
      f'{len(s["samples"][0])} samples each ({"every pair" if every else "best and worst"}); '
      f'labeller {labeller.name} '
      f'(temperature {labeller.temperature:g}), mean P(chosen) {p.mean():.3f}, '
      f'{(p > 0.5).mean():.1%} chose the higher score'
    )
  return 0


# ---- a person labels ----------------------------------------------------------------------------


def _ask(stdin, stdout) -> str | None:
  """One answer: '1', '2', 'tie', 'skip' or 'q'; None at the end of input."""
  while True:
    stdout.write('which do you prefer? [1 / 2 / tie / skip / q] ')
    stdout.flush()
    line = stdin.readline()
    if not line:
      stdout.write('\n')
      return None
    answer = line.strip().lower()
    if answer in ('1', '2', 'tie', 'skip', 'q'):
      return answer
    stdout.write(f'  {answer!r}? type 1, 2, tie, skip or q\n')


def label(args, stdin=None, stdout=None) -> int:
  """`jdl rlhf label`: shows a prompt and two sampled continuations, records the answer in
  WORKDIR/prefs_human.jsonl (appended at once: a stop loses nothing). Prompts labelled before
  (in that file) are not shown again."""
  stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
  path = os.path.join(args.workdir, HUMAN_FILE)
  done = {p.prompt for p in preferences.read(path)} if os.path.exists(path) else set()
  model = policy.load_policy(args.policy)
  prompts = [
    p
    for p in review_prompts.prompts(args.split, n=args.n + len(done), length=args.prompt_bytes)
    if p not in done
  ][: args.n]
  if not prompts:
    stdout.write(f'nothing left to label: {len(done)} prompts are in {path}\n')
    return 0
  ids = policy.continuations(
    model,
    [p for p in prompts for _ in (0, 1)],
    args.continuation_bytes,
    temperature=args.temperature,
    seed=args.seed + len(done),
  )
  texts = policy.decode(ids)
  counts = {'1': 0, '2': 0, 'tie': 0, 'skip': 0}
  for i, prompt in enumerate(prompts):
    one, two = texts[2 * i], texts[2 * i + 1]
    stdout.write(f'\n[{i + 1}/{len(prompts)}] {prompt!r}\n  1: ...{one!r}\n  2: ...{two!r}\n')
    answer = _ask(stdin, stdout)
    if answer in (None, 'q'):
      break
    counts[answer] += 1
    if answer == 'skip':
      continue
    if answer == 'tie':
      preferences.append(path, Pair(prompt, one, two, 'human', None, tie=True))
    else:
      chosen, rejected = (one, two) if answer == '1' else (two, one)
      preferences.append(path, Pair(prompt, chosen, rejected, 'human', None))
  stdout.write(
    f'recorded {counts["1"] + counts["2"]} preferences and {counts["tie"]} ties '
    f'({counts["skip"]} skipped) in {path}\n'
  )
  return 0


def check_args(args) -> None:
  for name in ('n', 'prompt_bytes', 'continuation_bytes'):
    if getattr(args, name, 1) < 1:
      raise UsageError(f'--{name.replace("_", "-")} must be at least 1')
  if getattr(args, 'per_prompt', 2) < 2:
    raise UsageError('--per-prompt must be at least 2: a pair compares two continuations')
  if getattr(args, 'temperature', 1.0) <= 0:
    raise UsageError('--temperature must be > 0 (sampled continuations, not greedy ones)')
