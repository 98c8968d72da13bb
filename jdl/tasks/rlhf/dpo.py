"""Direct preference optimisation (Rafailov et al. 2023): the policy learns from the preference
pairs directly, with the supervised policy as the frozen reference and no reward model,

    loss = -mean log sigmoid(beta [(log pi(y_c | x) - log pi_ref(y_c | x))
                                   - (log pi(y_r | x) - log pi_ref(y_r | x))])

log pi(y | x) summed over the completion's bytes only (the prompt's bytes are read, not scored).
beta is `config.beta`: the smaller, the further the policy may move from the reference for the
same preference margin (the KL-regularised objective's coefficient).

The model holds two GPTs: `policy` (trained) and `reference` (FROZEN: no optimizer state, its
arrays bitwise unchanged); both start from `config.sft_run`. `run.model.policy` is the trained
policy. Metrics are trl's (jdl.tasks.rlhf.losses.dpo_loss): loss, rewards_chosen,
rewards_rejected, rewards_accuracy, rewards_margin, logps_chosen, logps_rejected, and in
evaluation the same on the held-out pairs (validation_*).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jdl.tasks.rlhf import common, losses
from jdl.train import task as base


class Task(common.FromRuns, base.Task):
  NETWORKS = ('policy',)
  FROZEN = ('reference',)

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    cfg = common.policy_config(self.config)
    return common.Policies(cfg, sharding_rules=self.config.sharding_rules, rngs=rngs)

  def weight_sources(self):
    return {n: (self.config.sft_run, 'lm') for n in ('policy', 'reference')}

  def load_data(self) -> base.Splits:
    self.check_runs()
    return common.pair_splits(self.config)

  def tokenizer(self):
    from jdl.data.reviews import ByteTokenizer

    return ByteTokenizer()

  def losses(self, model, batch, key, train):
    tokens_2BxW = jnp.concatenate([batch['chosen'], batch['rejected']])
    lengths_2B = jnp.concatenate([batch['chosen_len'], batch['rejected_len']])
    prompt_2B = jnp.concatenate([batch['prompt_len'], batch['prompt_len']])
    pi_2B, _ = losses.sequence_logprobs(model.policy, tokens_2BxW, prompt_2B, lengths_2B)
    ref_2B, _ = losses.sequence_logprobs(model.reference, tokens_2BxW, prompt_2B, lengths_2B)
    pi_c, pi_r = jnp.split(pi_2B, 2)
    ref_c, ref_r = jnp.split(ref_2B, 2)
    loss, metrics = losses.dpo_loss(pi_c, pi_r, ref_c, ref_r, self.config.beta, batch.get('mask'))
    return {'policy': loss}, metrics

  def sample_text(self, model, tokenizer, prompt, **options):
    """`jdl sample` samples the trained policy."""
    return super().sample_text(model.policy, tokenizer, prompt, **options)
