"""The reward model of learning from preferences (Ziegler et al. 2019; Stiennon et al. 2020): the
supervised policy's trunk (runs/rlhf/sft) with a scalar head, trained with the Bradley-Terry loss
on the labelled pairs of runs/rlhf/prefs.jsonl (`jdl rlhf pairs`); the pairs of validation-review
prompts (runs/rlhf/prefs_heldout.jsonl) are held out.
The held-out pair accuracy is `validation_accuracy` in metrics.jsonl and results.json.

Launch (after `jdl train --config experiments/rlhf/sft.py --workdir runs/rlhf/sft` and
`jdl rlhf pairs`):
  nice -n 5 jdl train --config experiments/rlhf/reward_model.py --workdir runs/rlhf/rm

`:smoke` is the tiny shape of sft.py:smoke on runs/rlhf/smoke/{sft,prefs.jsonl} (the test makes
them in a temporary folder).
"""

from jdl.tasks.rlhf.configs import one_pass_over_pairs, stage_config


def get_config(arg: str | None = None):
  smoke = arg == 'smoke'
  if arg not in (None, 'smoke'):
    raise ValueError(f'reward_model: unknown variant {arg!r} (smoke)')
  c = stage_config('reward_model', smoke)
  c.model.dropout = 0.1  # as the SFT run: a few thousand pairs overfit a 3M-parameter model
  # The labeller prefers by the continuation alone; so does the reward model here (48 bytes a
  # row instead of 112: 2.3 times cheaper on the loaded machine). PPO/RLOO score the same way.
  c.data.reward_input = 'continuation'
  c.optimizer.schedule = 'linear'
  c.optimizer.kwargs.weight_decay = 0.01
  if smoke:
    c.data.reward_input = 'full'
    c.model.dropout = 0.0
  return one_pass_over_pairs(c, smoke, learning_rate=1e-4)
