"""Direct preference optimisation (Rafailov et al. 2023) of the supervised policy (runs/rlhf/sft,
also the frozen reference) on the labelled pairs of runs/rlhf/prefs.jsonl; the pairs of
runs/rlhf/prefs_heldout.jsonl are held out (validation_rewards_accuracy: the held-out pairs whose
chosen continuation gets the larger implicit reward).

Variants: `:b0.05`, `:b0.1` (the default), `:b0.3`, `:b1`: the KL coefficient beta, the points
of the reward-vs-KL frontier (`jdl figures rlhf`).

Launch (after the SFT run and `jdl rlhf pairs`):
  nice -n 5 jdl train --config experiments/rlhf/dpo.py:b0.1 --workdir runs/rlhf/dpo_b0.1
  jdl rlhf eval --workdir runs/rlhf/dpo_b0.1

`:smoke` is the tiny shape of sft.py:smoke on runs/rlhf/smoke/{sft,prefs.jsonl}.
"""

from jdl.tasks.rlhf.configs import stage_config

BETAS = ('0.05', '0.1', '0.3', '1')


def get_config(arg: str | None = None):
  smoke = arg == 'smoke'
  beta = arg[1:] if arg and arg.startswith('b') else '0.1'
  if not smoke and arg is not None and beta not in BETAS:
    raise ValueError(f'dpo: unknown variant {arg!r} (b{", b".join(BETAS)}, smoke)')
  c = stage_config('dpo', smoke)
  c.beta = float(beta)
  c.batch_size = 32
  c.eval_batch_size = 64
  c.num_epochs = 1  # 4,000 pairs: 125 steps, about 10 minutes on the shared 2 cores
  c.log_every_steps = 10
  c.eval_every_steps = 40
  c.checkpoint_every_steps = 100
  c.optimizer.learning_rate = 5e-5
  c.optimizer.warmup_steps = 10
  if smoke:
    c.num_epochs = 0
    c.batch_size = 4
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = -1
    c.checkpoint_every_steps = -1
  return c
