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


def sample_two(model, prompts, n_bytes, *, temperature, seed, batch) -> tuple[list, list]:
  """Two continuations (texts) of every prompt: each prompt is sampled twice in a row."""
  doubled = [p for p in prompts for _ in (0, 1)]
  ids = policy.continuations(
    model, doubled, n_bytes, temperature=temperature, seed=seed, batch=batch
  )
  texts = policy.decode(ids)
  return texts[0::2], texts[1::2]


def label_pairs(labeller, prompts, a, b, seed: int) -> list[Pair]:
  """Chosen is the continuation the labeller's Bradley-Terry draw preferred, p the probability
  it gave that choice."""
  choice, p_a = labeller.prefer(a, b, np.random.default_rng(seed))
  pairs = []
  for prompt, x, y, c, p in zip(prompts, a, b, choice, p_a, strict=True):
    chosen, rejected, p_chosen = (x, y, p) if c == 0 else (y, x, 1.0 - p)
    pairs.append(Pair(prompt, chosen, rejected, labeller.name, round(float(p_chosen), 6)))
  return pairs


def make_pairs(args) -> int:
  """`jdl rlhf pairs`: the training pairs and the held-out pairs, each a JSONL file. The
  unlabelled continuations are kept beside them (OUT.samples.json): `--relabel` labels those
  again (another labeller, another temperature) without sampling."""
  from jdl.rlhf.labeller import Labeller

  jobs = [('train', args.n, args.out)]
  if args.heldout_n:
    jobs.append(('validation', args.heldout_n, args.heldout_out))
  sampled = {}
  for split, n, out in jobs:
    cache = f'{out}.samples.json'
    seed = args.seed + (split != 'train')
    if args.relabel:
      if not os.path.isfile(cache):
        raise UsageError(f'--relabel: no samples in {cache}; run `jdl rlhf pairs` without it')
      with open(cache, encoding='utf-8') as f:
        sampled[split] = json.load(f)
      continue
    model = policy.load_policy(args.policy)
    prompts = review_prompts.prompts(split, n=n, length=args.prompt_bytes, seed=args.seed)
    policy.check_lengths(model, prompts, args.continuation_bytes)
    start = time.time()
    a, b = sample_two(
      model,
      prompts,
      args.continuation_bytes,
      temperature=args.temperature,
      seed=seed,
      batch=args.batch,
    )
    sampled[split] = {'policy': args.policy, 'prompts': prompts, 'a': a, 'b': b}
    os.makedirs(os.path.dirname(cache) or '.', exist_ok=True)
    with open(cache, 'w', encoding='utf-8') as f:
      json.dump(sampled[split], f)
    print(f'{cache}: {2 * len(prompts)} continuations in {time.time() - start:.0f} s', flush=True)
  labeller = Labeller.load(args.labeller, temperature=args.labeller_temperature)
  for split, _, out in jobs:
    s = sampled[split]
    pairs = label_pairs(labeller, s['prompts'], s['a'], s['b'], args.seed + (split != 'train'))
    preferences.write(out, pairs)
    p = np.array([x.p for x in pairs])
    print(
      f'{out}: {len(pairs)} pairs from {split}-review prompts; labeller {labeller.name} '
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
  if getattr(args, 'temperature', 1.0) <= 0:
    raise UsageError('--temperature must be > 0 (sampled continuations, not greedy ones)')
