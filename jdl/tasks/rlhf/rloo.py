"""REINFORCE with the leave-one-out baseline (RLOO; Kool et al. 2019, Ahmadian et al. 2024) on
PPO's rollout machinery (jdl/tasks/rlhf/ppo.py): every prompt is continued k = `rloo.k` times
by the current policy, each continuation's reward is the sequence's

    R_i = r_RM(x, y_i) - kl_coef sum_t (log pi(y_i,t) - log pi_ref(y_i,t))

and its advantage is R_i minus the mean reward of the other k - 1 continuations of the same
prompt (an unbiased baseline that needs no value function). The policy loss is PPO's clipped
surrogate with that advantage on every byte of the continuation; with `ppo.epochs` = 1 and one
minibatch (the defaults) the ratio is 1 at the update and it is exactly REINFORCE,
-mean_t A_i grad log pi(y_i,t).

The model: `policy` trained, `reference` and `reward` FROZEN (no value function); `run.model.policy`
is the trained policy. `batch_size` counts prompts; a step samples batch_size x k continuations.
Metrics as PPO's (rm_score, kl, reward, entropy, kl_coef, policy_loss, clip_frac, approx_kl, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdl.tasks.rlhf import losses, ppo


class Task(ppo.Task):
  NETWORKS = ('policy',)
  VALUE = False

  def rollouts_per_step(self) -> int:
    return self.config.batch_size * self.config.rloo.k

  def sample_prompts(self, prompt_BxP):
    return jnp.repeat(prompt_BxP, self.config.rloo.k, axis=0)  # rows i*k .. i*k + k-1: prompt i

  def advantages(self, rollouts: dict) -> dict:
    k = self.config.rloo.k
    reward_B = rollouts['score'] + rollouts['penalty'].sum(-1)  # r_RM - kl_coef * kl
    adv_B = losses.rloo_advantages(reward_B.reshape(-1, k)).reshape(-1)
    if self.config.rloo.whiten:
      adv_B = (adv_B - adv_B.mean()) * jax.lax.rsqrt(adv_B.var() + 1e-8)
    return dict(rollouts, advantages=adv_B[:, None] * rollouts['mask'])

  def losses(self, model, batch, key, train):
    rl = self.config.ppo
    inputs_BxT, targets_BxT = batch['tokens'][:, :-1], batch['tokens'][:, 1:]
    mask_BxT = batch['mask']
    logp_BxT = losses.token_logprobs(model.policy(inputs_BxT), targets_BxT) * mask_BxT
    zeros_BxT = jnp.zeros_like(logp_BxT)
    policy_loss, _, metrics = losses.ppo_losses(
      logp_BxT,
      batch['old_logp'],
      batch['advantages'],
      zeros_BxT,
      zeros_BxT,
      zeros_BxT,
      mask_BxT,
      rl.clip_ratio,
      rl.clip_value,
    )
    metrics = {k: v for k, v in metrics.items() if k != 'value_clip_frac'}
    return {'policy': policy_loss}, dict(metrics, loss=policy_loss, policy_loss=policy_loss)
