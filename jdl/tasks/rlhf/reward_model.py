"""The reward model (Ziegler et al. 2019, section 2.2; Stiennon et al. 2020, section 3.4): a GPT
trunk with a scalar head (jdl.models.scalar_head.ScalarGPT), started from the supervised policy,
trained on preference pairs with the Bradley-Terry loss

    P(y_chosen > y_rejected | x) = sigmoid(r(x, y_chosen) - r(x, y_rejected))
    loss = -mean log sigmoid(r(x, y_chosen) - r(x, y_rejected))

r(x, y) is the head's score at the last byte of prompt + completion (right padded), where the
whole continuation has been read; with `data.reward_input = 'continuation'` the model reads the
continuation alone, as the labeller does (and 2.3 times cheaper: 48 bytes instead of 112), and
PPO/RLOO must then score their rollouts the same way (`ppo.reward_input`, checked).
`data.reward_pooling = 'mean'` scores the mean of the head over the tokens read instead of the
last one (jdl.tasks.rlhf.common.sequence_scores; PPO's `ppo.reward_pooling` must match).
Evaluation reports the held-out pair accuracy (`validation_accuracy`: the share of held-out
pairs whose chosen continuation scores higher).

Config fields: sft_run, sft_config (the starting run and the command that makes it), model (the
SFT shape; dropout may differ), data.{pairs, validation_pairs, holdout_fraction, prompt_bytes,
completion_bytes} (jdl.tasks.rlhf.common.pair_splits).
"""

from __future__ import annotations

import json

import jax.numpy as jnp
from etils import epath
from flax import nnx

from jdl.models.scalar_head import ScalarGPT
from jdl.tasks.rlhf import common, losses
from jdl.train import task as base


class Task(common.FromRuns, base.Task):
  """One network, the ScalarGPT itself: `run.model` is the reward model
  (`jdl.tasks.rlhf.common.last_scores(run.model, tokens, lengths)` scores sequences)."""

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return ScalarGPT(
      common.policy_config(self.config), 1, sharding_rules=self.config.sharding_rules, rngs=rngs
    )

  def weight_sources(self):
    return {'trunk': (self.config.sft_run, 'lm')}

  def load_data(self) -> base.Splits:
    self.check_runs()
    reads = self.config.data.get('reward_input', 'full')
    return common.pair_splits(self.config, without_prompt=reads == 'continuation')

  def tokenizer(self):
    from jdl.data.reviews import ByteTokenizer

    return ByteTokenizer()

  def loss(self, model, batch, key, train):
    tokens_2BxW = jnp.concatenate([batch['chosen'], batch['rejected']])
    lengths_2B = jnp.concatenate([batch['chosen_len'], batch['rejected_len']])
    key = key if (train and self.config.model.dropout > 0) else None
    pooling = self.config.data.get('reward_pooling', 'last')
    scores_2B = common.sequence_scores(model, tokens_2BxW, lengths_2B, pooling, key)
    r_chosen_B, r_rejected_B = jnp.split(scores_2B, 2)
    return losses.bradley_terry_loss(r_chosen_B, r_rejected_B, batch.get('mask'))

  def report(self, plan, state, history, workdir, data):
    final = next((h for h in reversed(history) if 'validation_accuracy' in h), None)
    if final is None:
      return
    result = {k: final[k] for k in ('step', 'validation_accuracy', 'validation_loss')}
    result['validation_pairs'] = len(data.evals['validation']['chosen'])
    print(
      f'reward model: held-out pair accuracy {final["validation_accuracy"]:.4f} on '
      f'{result["validation_pairs"]} pairs (loss {final["validation_loss"]:.4f})'
    )
    (epath.Path(workdir) / 'results.json').write_text(json.dumps(result, indent=1) + '\n')
