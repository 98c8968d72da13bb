"""The config fields every RLHF stage shares (experiments/rlhf/{reward_model,dpo,ppo,rloo}.py):
the starting runs, the policy's shape (the SFT run's: experiments/rlhf/sft.py) and the byte
lengths of prompts and continuations. `smoke` gives the tiny shapes of `sft.py:smoke`."""

from __future__ import annotations

import ml_collections

from jdl.config import base_config

SFT_RUN, RM_RUN = 'runs/rlhf/sft', 'runs/rlhf/rm_mean'
# `jdl rlhf pairs`: the labeller's best and worst of 4 continuations per prompt (DPO's pairs);
# with --every-pair, the 6 pairs of each ranking (the reward model's; InstructGPT ranks K too).
PAIRS, HELDOUT = 'runs/rlhf/prefs4.jsonl', 'runs/rlhf/prefs4_heldout.jsonl'
ALL_PAIRS, ALL_HELDOUT = 'runs/rlhf/prefs4all.jsonl', 'runs/rlhf/prefs4all_heldout.jsonl'
SMOKE = 'runs/rlhf/smoke'  # the :smoke stages' runs (the tests point them at a temporary folder)


def one_pass_over_pairs(c: ml_collections.ConfigDict, smoke: bool, learning_rate: float):
  """The schedule of the stages that read the labelled pairs (reward model, DPO): one pass of
  32 pairs a step (3,000 pairs: 94 steps, about 10 minutes on the shared 2 cores); the smoke
  shape keeps stage_config's 3 steps."""
  c.optimizer.learning_rate, c.optimizer.warmup_steps = learning_rate, 10
  c.eval_batch_size = 64
  if smoke:
    c.num_epochs = 0
    return c
  c.update(batch_size=32, num_epochs=1, log_every_steps=10)
  c.update(eval_every_steps=40, checkpoint_every_steps=100)
  return c


def stage_config(task: str, smoke: bool) -> ml_collections.ConfigDict:
  c = base_config()
  c.task = f'jdl.tasks.rlhf.{task}'
  c.sft_run = f'{SMOKE}/sft' if smoke else SFT_RUN
  c.sft_config = 'experiments/rlhf/sft.py' + (':smoke' if smoke else '')
  c.rm_run = f'{SMOKE}/rm' if smoke else RM_RUN
  c.rm_config = 'experiments/rlhf/reward_model.py' + (':smoke' if smoke else '')
  # The SFT policy's shape; dropout 0: a policy's log-probabilities (DPO's, PPO's ratios) must not
  # depend on a dropout mask.
  c.model = ml_collections.ConfigDict(
    dict(
      name='gpt',
      vocab_size=256,
      context=32 if smoke else 128,
      n_layer=2 if smoke else 4,
      n_head=2 if smoke else 4,
      d_model=32 if smoke else 256,
      d_ff=0,
      dropout=0.0,
      post_ln=False,
      scan_layers=False,
      remat=False,
    )
  )
  # The labeller (jdl.rlhf.labeller's classifier run): '' or a run whose score of each rollout's
  # continuation is logged (labeller_p_positive), the gold score the reward model stands in for.
  c.labeller_run = ''
  c.labeller_config = 'experiments/rlhf/labeller.py' + (':smoke' if smoke else '')
  c.labeller_model = ml_collections.ConfigDict(c.model.to_dict())
  # Prompts of at most 64 bytes, continuations of 48 (16 and 8 in the smoke shapes): 112 <= 128.
  c.data = ml_collections.ConfigDict(
    dict(
      name='preferences',
      pairs=f'{SMOKE}/prefs.jsonl' if smoke else PAIRS,
      # `jdl rlhf pairs` also labels pairs of validation-review prompts, the held-out pairs;
      # '': hold out holdout_fraction of the training pairs' prompts instead.
      validation_pairs='' if smoke else HELDOUT,
      holdout_fraction=0.1,
      prompt_bytes=16 if smoke else 64,
      completion_bytes=8 if smoke else 48,
      # What the reward model reads: 'full' (prompt + continuation) or 'continuation' (alone).
      reward_input='full',
      # How its head's scores become one: 'last' token or 'mean' over the tokens read
      # (jdl.tasks.rlhf.common.sequence_scores).
      reward_pooling='last',
    )
  )
  c.optimizer.name = 'adamw'
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0))
  c.optimizer.grad_clip_norm = 1.0
  c.max_seconds = 20 * 60  # the machine's per-run limit: a run stopped so ends resumable
  if smoke:
    c.batch_size = 4
    c.eval_batch_size = 4
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = -1
    c.checkpoint_every_steps = -1
    c.max_seconds = 0.0
    c.progress_bar = 'never'
    c.async_checkpointing = False
    c.mesh.data = 1
  return c
