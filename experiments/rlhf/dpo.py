"""Direct preference optimisation (Rafailov et al. 2023) of the supervised policy (runs/rlhf/sft,
also the frozen reference) on the labeller's best/worst-of-4 pairs (runs/rlhf/prefs4.jsonl, 3,000
pairs), three passes (279 steps; one pass moved the labeller half as far: docs/rlhf.md); the
pairs of runs/rlhf/prefs4_heldout.jsonl are held out (validation_rewards_accuracy: the held-out
pairs whose chosen continuation gets the larger implicit reward).

Variants: `:b0.05`, `:b0.1` (the default), `:b0.3`, `:b1`: the KL coefficient beta, the points
of the reward-vs-KL frontier (`jdl figures rlhf`).

Launch (after the SFT run and `jdl rlhf pairs`):
  nice -n 5 jdl train --config experiments/rlhf/dpo.py:b0.1 --workdir runs/rlhf/dpo_b0.1
  jdl rlhf eval --workdir runs/rlhf/dpo_b0.1

`:smoke` is the tiny shape of sft.py:smoke on runs/rlhf/smoke/{sft,prefs.jsonl}.
"""

from jdl.tasks.rlhf.configs import one_pass_over_pairs, stage_config

BETAS = ('0.05', '0.1', '0.3', '1')


def get_config(arg: str | None = None):
  smoke = arg == 'smoke'
  beta = arg[1:] if arg and arg.startswith('b') else '0.1'
  if not smoke and arg is not None and beta not in BETAS:
    raise ValueError(f'dpo: unknown variant {arg!r} (b{", b".join(BETAS)}, smoke)')
  c = stage_config('dpo', smoke)
  c.beta = float(beta)
  c = one_pass_over_pairs(c, smoke, learning_rate=5e-5)
  if not smoke:
    c.num_epochs = 3
  return c
