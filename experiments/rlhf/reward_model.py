"""The reward model of learning from preferences (Ziegler et al. 2019; Stiennon et al. 2020): the
supervised policy's trunk (runs/rlhf/sft) with a scalar head, trained with the Bradley-Terry loss
on every pair of the labeller's rankings of 4 continuations per prompt (runs/rlhf/prefs4all.jsonl:
18,000 pairs from 3,000 prompts); the pairs of validation-review prompts
(runs/rlhf/prefs4all_heldout.jsonl, 2,400) are held out. Its score is the head averaged over the
continuation's bytes (`data.reward_pooling = 'mean'`): a linear probe of the SFT trunk's features
separates the held-out best/worst pairs at 65% mean-pooled and 52-54% at the last byte.
The held-out pair accuracy is `validation_accuracy` in metrics.jsonl and results.json.

Launch (after `jdl train --config experiments/rlhf/sft.py --workdir runs/rlhf/sft` and
`jdl rlhf pairs`):
  jdl rlhf pairs --relabel --every-pair --samples runs/rlhf/prefs4.jsonl.samples.json \
    --heldout-samples runs/rlhf/prefs4_heldout.jsonl.samples.json \
    --out runs/rlhf/prefs4all.jsonl --heldout-out runs/rlhf/prefs4all_heldout.jsonl
  nice -n 5 jdl train --config experiments/rlhf/reward_model.py --workdir runs/rlhf/rm_mean

`:smoke` is the tiny shape of sft.py:smoke on runs/rlhf/smoke/{sft,prefs.jsonl} (the test makes
them in a temporary folder).
"""

from jdl.tasks.rlhf import configs
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
  c.data.reward_pooling = 'mean'
  c.data.pairs, c.data.validation_pairs = configs.ALL_PAIRS, configs.ALL_HELDOUT
  c.optimizer.schedule = 'linear'
  c.optimizer.kwargs.weight_decay = 0.01
  if smoke:
    c.data.reward_input = 'full'
    c.data.reward_pooling = 'last'
    c.data.pairs, c.data.validation_pairs = f'{configs.SMOKE}/prefs.jsonl', ''
    c.model.dropout = 0.0
  c = one_pass_over_pairs(c, smoke, learning_rate=1e-4)
  if not smoke:  # 18,000 pairs: 563 steps; 2,400 held-out pairs are a long evaluation
    c.update(eval_every_steps=100, max_seconds=40 * 60)
  return c
