"""`jdl rlhf eval --workdir RUN`: how positive, how far from the supervised policy and how
fluent a policy's fresh continuations of held-out prompts are.

On the openings of the test reviews (295 distinct prompts of 64 bytes; jdl.data.review_prompts),
one continuation of 48 bytes per prompt at temperature 1 (KV cache):

  reward   the automatic labeller's mean p(positive) of the continuations, read alone, with a
           percentile bootstrap 95% interval over prompts
  KL       KL(policy || SFT) per continuation, the Monte-Carlo estimate from the policy's own
           samples: mean over samples of log pi(y|x) - log pi_SFT(y|x), in nats (with a 95%
           interval from its standard error)
  fluency  bits per byte of the continuations under the supervised model,
           -log2 pi_SFT(y|x) / 48 (the text is ASCII: bits per character); the supervised
           policy's own samples set the baseline

The supervised run itself evaluates with KL = 0 exactly (the same network twice). Writes
RUN/eval.json (with --step S, an earlier checkpoint: RUN/eval_stepS.json, which the
over-optimisation figure reads) and prints a few samples beside the supervised policy's.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from jdl.data import review_prompts
from jdl.rlhf import policy
from jdl.train.errors import UsageError

EVAL_FILE = 'eval.json'


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float]:
  """The 2.5 and 97.5 percentiles of the mean over `resamples` resamples with replacement."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(values), size=(resamples, len(values)))
  means = values[idx].mean(axis=1)
  lo, hi = np.percentile(means, [2.5, 97.5])
  return float(lo), float(hi)


def read_prompts(args) -> list[str]:
  if args.prompts:
    if not os.path.isfile(args.prompts):
      raise UsageError(f'--prompts {args.prompts}: no such file (one prompt a line)')
    with open(args.prompts, encoding='utf-8') as f:
      prompts = [line.rstrip('\n') for line in f if line.strip()]
    if not prompts:
      raise UsageError(f'--prompts {args.prompts}: the file holds no prompt')
    return prompts[: args.n] if args.n else prompts
  return review_prompts.prompts('test', n=args.n or None, length=args.prompt_bytes)


def evaluate(
  workdir,
  sft_dir,
  labeller_dir,
  prompts: list[str],
  *,
  n_bytes: int = 48,
  temperature: float = 1.0,
  seed: int = 0,
  resamples: int = 2000,
  show: int = 4,
  step: int | None = None,
) -> dict:
  """The numbers of the module doc for one policy run (its newest checkpoint, or `step`), as
  the dict written to eval.json."""
  from jdl.rlhf.labeller import Labeller

  model, step = policy.load_policy_step(workdir, step)
  sft, _ = policy.load_policy_step(sft_dir)
  labeller = Labeller.load(labeller_dir)
  policy.check_lengths(model, prompts, n_bytes)
  policy.check_lengths(sft, prompts, n_bytes)
  ids = policy.continuations(model, prompts, n_bytes, temperature=temperature, seed=seed)
  texts = policy.decode(ids)
  p = labeller.p_positive(texts)
  logp_policy = policy.continuation_logprob(model, prompts, ids)
  same = model is sft
  logp_sft = logp_policy if same else policy.continuation_logprob(sft, prompts, ids)
  kl = logp_policy - logp_sft
  kl_se = float(kl.std(ddof=1) / math.sqrt(len(kl))) if len(kl) > 1 else 0.0
  shown = prompts[:show]
  if same:
    sft_texts = texts[:show]
  else:
    sft_texts = policy.decode(
      policy.continuations(sft, shown, n_bytes, temperature=temperature, seed=seed)
    )
  lo, hi = bootstrap_ci(p, resamples, seed)
  return {
    'run': str(workdir),
    'step': int(step),
    'sft': str(sft_dir),
    'labeller': labeller.name,
    'prompts': len(prompts),
    'continuation_bytes': n_bytes,
    'temperature': temperature,
    'seed': seed,
    'p_positive': float(p.mean()),
    'p_positive_ci95': [lo, hi],
    'kl_nats': float(kl.mean()),
    'kl_ci95': [float(kl.mean()) - 1.96 * kl_se, float(kl.mean()) + 1.96 * kl_se],
    'bits_per_byte_under_sft': float(-logp_sft.mean() / (n_bytes * math.log(2))),
    'bits_per_byte_under_policy': float(-logp_policy.mean() / (n_bytes * math.log(2))),
    'samples': [
      {'prompt': x, 'policy': y, 'sft': z, 'p_positive': float(q)}
      for x, y, z, q in zip(shown, texts[:show], sft_texts, p[:show], strict=True)
    ],
  }


def main(args) -> int:
  prompts = read_prompts(args)
  result = evaluate(
    args.workdir,
    args.sft,
    args.labeller,
    prompts,
    n_bytes=args.continuation_bytes,
    temperature=args.temperature,
    seed=args.seed,
    resamples=args.resamples,
    show=args.show,
    step=args.step,
  )
  name = EVAL_FILE if args.step is None else f'eval_step{result["step"]}.json'
  path = os.path.join(args.workdir, name)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=2, ensure_ascii=False)
    f.write('\n')
  r = result
  print(
    f'{r["run"]} (step {r["step"]}) on {r["prompts"]} held-out prompts, '
    f'{r["continuation_bytes"]}-byte continuations at temperature {r["temperature"]}:\n'
    f'  labeller p(positive)   {r["p_positive"]:.3f}  '
    f'[95% CI {r["p_positive_ci95"][0]:.3f}, {r["p_positive_ci95"][1]:.3f}]\n'
    f'  KL(policy || SFT)      {r["kl_nats"]:.2f} nats per continuation  '
    f'[{r["kl_ci95"][0]:.2f}, {r["kl_ci95"][1]:.2f}]\n'
    f'  bits/byte under SFT    {r["bits_per_byte_under_sft"]:.3f}'
  )
  for s in r['samples']:
    print(f'\n{s["prompt"]!r}\n  policy ({s["p_positive"]:.2f}): {s["policy"]!r}')
    print(f'  sft:           {s["sft"]!r}')
  print(f'\nwrote {path}')
  return 0


def check_args(args) -> None:
  if args.n < 0:
    raise UsageError('--n must be >= 0 (0: every held-out prompt)')
  if args.continuation_bytes < 1 or args.prompt_bytes < 1:
    raise UsageError('--prompt-bytes and --continuation-bytes must be at least 1')
  if args.temperature <= 0:
    raise UsageError('--temperature must be > 0')
  if args.resamples < 1:
    raise UsageError('--resamples must be at least 1')
