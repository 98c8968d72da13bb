"""The objectives of learning from preferences, as pure functions of arrays (no model inside,
except `sequence_logprobs`): what the tasks call, what the tests check by hand and what the trl
comparison (jdl/rlhf/peer_trl.py) calls on the same numbers.

Sequences are prompt + completion, right padded: row b holds its prompt at positions
0 .. prompt_len_b - 1 and its completion at prompt_len_b .. length_b - 1. A causal language model
reads tokens[:, :-1] and predicts tokens[:, 1:], so the log-probability of the token at position
t sits at column t - 1 of the shifted arrays; `completion_mask` marks the columns of completion
tokens there, and every sum over a continuation is a sum over that mask.

Shape suffixes: B rows (sequences), T positions of the shifted arrays, V vocabulary, K samples
of one prompt (RLOO).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  if mask is None:
    return values.mean()
  mask = mask.astype(values.dtype)
  return (values * mask).sum() / jnp.maximum(mask.sum(), 1)


# ---- log-probabilities of completions ---------------------------------------------------------


def completion_mask(prompt_len_B: jax.Array, lengths_B: jax.Array, width: int) -> jax.Array:
  """[B, width] float32: 1 at the shifted columns t whose target token (position t + 1) belongs
  to the completion, prompt_len - 1 <= t < length - 1."""
  t_T = jnp.arange(width)[None]
  return ((t_T >= prompt_len_B[:, None] - 1) & (t_T < lengths_B[:, None] - 1)).astype(jnp.float32)


def token_logprobs(logits_BxTxV: jax.Array, targets_BxT: jax.Array) -> jax.Array:
  """log pi(target_t | tokens before it), [B, T] in float32."""
  logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]


def token_entropy(logits_BxTxV: jax.Array) -> jax.Array:
  """H(pi(. | tokens before t)) in nats, [B, T]."""
  logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  return -(jnp.exp(logp_BxTxV) * logp_BxTxV).sum(-1)


def sequence_logprobs(model, tokens_BxT, prompt_len_B, lengths_B) -> tuple[jax.Array, jax.Array]:
  """(log pi(completion | prompt) summed over the completion's tokens [B], the per-token
  log-probabilities masked to the completion [B, T - 1]) of a language model `model(tokens) ->
  logits`: what DPO compares between policy and reference."""
  logits_BxTxV = model(tokens_BxT[:, :-1])
  mask_BxT = completion_mask(prompt_len_B, lengths_B, tokens_BxT.shape[1] - 1)
  logp_BxT = token_logprobs(logits_BxTxV, tokens_BxT[:, 1:]) * mask_BxT
  return logp_BxT.sum(-1), logp_BxT


# ---- offline: the reward model and DPO ----------------------------------------------------------


def bradley_terry_loss(r_chosen_B, r_rejected_B, mask_B=None) -> tuple[jax.Array, dict]:
  """The reward model's loss on preference pairs (Bradley & Terry 1952; Ziegler et al. 2019):
  P(chosen > rejected) = sigmoid(r_chosen - r_rejected), loss = -mean log of it. Metrics: the
  loss, pair accuracy (r_chosen > r_rejected; a tie counts wrong) and the mean margin."""
  margin_B = (r_chosen_B - r_rejected_B).astype(jnp.float32)
  loss = _mean(-jax.nn.log_sigmoid(margin_B), mask_B)
  return loss, {
    'loss': loss,
    'accuracy': _mean((margin_B > 0).astype(jnp.float32), mask_B),
    'margin': _mean(margin_B, mask_B),
    'reward_chosen': _mean(r_chosen_B.astype(jnp.float32), mask_B),
    'reward_rejected': _mean(r_rejected_B.astype(jnp.float32), mask_B),
  }


def dpo_loss(
  pi_chosen_logp_B,
  pi_rejected_logp_B,
  ref_chosen_logp_B,
  ref_rejected_logp_B,
  beta: float,
  mask_B=None,
) -> tuple[jax.Array, dict]:
  """Direct preference optimisation (Rafailov et al. 2023, eq. 7), the sigmoid loss:

      r(x, y) = beta (log pi(y | x) - log pi_ref(y | x))       the implicit reward
      loss    = -mean log sigmoid(r(x, y_chosen) - r(x, y_rejected))

  Metrics as trl's DPOTrainer reports them: rewards_chosen / rewards_rejected (mean implicit
  rewards), rewards_accuracy (chosen reward > rejected), rewards_margin, logps_chosen /
  logps_rejected (the policy's summed log-probabilities)."""
  chosen_B = beta * (pi_chosen_logp_B - ref_chosen_logp_B)
  rejected_B = beta * (pi_rejected_logp_B - ref_rejected_logp_B)
  loss = _mean(-jax.nn.log_sigmoid(chosen_B - rejected_B), mask_B)
  return loss, {
    'loss': loss,
    'rewards_chosen': _mean(chosen_B, mask_B),
    'rewards_rejected': _mean(rejected_B, mask_B),
    'rewards_accuracy': _mean((chosen_B > rejected_B).astype(jnp.float32), mask_B),
    'rewards_margin': _mean(chosen_B - rejected_B, mask_B),
    'logps_chosen': _mean(pi_chosen_logp_B, mask_B),
    'logps_rejected': _mean(pi_rejected_logp_B, mask_B),
  }


# ---- online: rewards with a KL penalty, advantages, the PPO and RLOO objectives ---------------


def kl_penalty(logp_BxT, ref_logp_BxT, mask_BxT, coef) -> tuple[jax.Array, jax.Array]:
  """The per-token KL penalty of Ziegler et al. (2019, eq. 2) with the k1 estimator on the
  sampled tokens: kl_t = log pi(y_t) - log pi_ref(y_t) (unbiased for KL(pi || pi_ref) summed over
  the sequence, since y ~ pi). Returns (penalty_BxT = -coef kl_t on the completion's tokens,
  kl_B = the sequence's summed kl_t)."""
  kl_BxT = (logp_BxT - ref_logp_BxT) * mask_BxT
  return -coef * kl_BxT, kl_BxT.sum(-1)


def last_index(mask_BxT: jax.Array) -> jax.Array:
  """The column of each row's last masked token, [B] (0 for an empty row)."""
  T = mask_BxT.shape[1]
  return jnp.max(jnp.where(mask_BxT > 0, jnp.arange(T)[None], 0), axis=-1)


def token_rewards(score_B, penalty_BxT, mask_BxT) -> jax.Array:
  """The reward of every token: the KL penalty, plus the reward model's score on the last token
  of the continuation (where the whole continuation has been seen), [B, T]."""
  at_end_BxT = jax.nn.one_hot(last_index(mask_BxT), mask_BxT.shape[1]) * mask_BxT
  return penalty_BxT + score_B[:, None] * at_end_BxT


def adaptive_kl_coef(coef, kl, target: float, horizon: float, n_steps: int):
  """Ziegler et al.'s adaptive coefficient (section 2.2, as trl's AdaptiveKLController): with
  e = clip(KL / KL_target - 1, -0.2, 0.2), coef <- coef (1 + e n / horizon), where n is the
  number of episodes of the batch that measured KL."""
  error = jnp.clip(kl / target - 1.0, -0.2, 0.2)
  return coef * (1.0 + error * n_steps / horizon)


def gae(rewards_BxT, values_BxT, mask_BxT, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
  """Generalised advantage estimation (Schulman et al. 2016, eq. 16): with
  delta_t = r_t + gamma V(s_{t+1}) - V(s_t) and A_t = delta_t + gamma lam A_{t+1}; the episode
  ends after the last masked token (V = 0 and A = 0 beyond it). Returns (advantages, returns =
  advantages + values), both [B, T], zero outside the mask."""
  mask_BxT = mask_BxT.astype(jnp.float32)
  next_mask_BxT = jnp.pad(mask_BxT[:, 1:], ((0, 0), (0, 1)))
  next_values_BxT = jnp.pad(values_BxT[:, 1:], ((0, 0), (0, 1))) * next_mask_BxT
  delta_BxT = rewards_BxT + gamma * next_values_BxT - values_BxT

  def back(next_adv_B, xs):
    delta_B, next_mask_B = xs
    adv_B = delta_B + gamma * lam * next_mask_B * next_adv_B
    return adv_B, adv_B

  _, adv_TxB = jax.lax.scan(
    back, jnp.zeros(rewards_BxT.shape[0], jnp.float32), (delta_BxT.T, next_mask_BxT.T), reverse=True
  )
  advantages_BxT = adv_TxB.T * mask_BxT
  return advantages_BxT, (advantages_BxT + values_BxT) * mask_BxT


def whiten(values_BxT, mask_BxT, shift_mean: bool = True) -> jax.Array:
  """(x - mean) / std over the masked entries (PPO normalises advantages per batch)."""
  mean = _mean(values_BxT, mask_BxT)
  var = _mean((values_BxT - mean) ** 2, mask_BxT)
  out = (values_BxT - mean) * jax.lax.rsqrt(var + 1e-8)
  return (out if shift_mean else out + mean) * mask_BxT


def ppo_losses(
  logp_BxT,
  old_logp_BxT,
  advantages_BxT,
  values_BxT,
  old_values_BxT,
  returns_BxT,
  mask_BxT,
  clip_ratio: float = 0.2,
  clip_value: float = 0.2,
) -> tuple[jax.Array, jax.Array, dict]:
  """PPO's clipped surrogate (Schulman et al. 2017, eq. 7) and clipped value loss, per token:

      ratio   = exp(log pi(y_t) - log pi_old(y_t))
      L_pi    = -mean min(ratio A_t, clip(ratio, 1 - eps, 1 + eps) A_t)
      L_V     = 1/2 mean max((V - R_t)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R_t)^2)

  means over the completion's tokens. Returns (L_pi, L_V, metrics: clip_frac, approx_kl =
  1/2 mean (log ratio)^2, value_clip_frac, ratio)."""
  log_ratio_BxT = (logp_BxT - old_logp_BxT) * mask_BxT
  ratio_BxT = jnp.exp(log_ratio_BxT)
  surrogate_BxT = ratio_BxT * advantages_BxT
  clipped_BxT = jnp.clip(ratio_BxT, 1 - clip_ratio, 1 + clip_ratio) * advantages_BxT
  policy_loss = _mean(-jnp.minimum(surrogate_BxT, clipped_BxT), mask_BxT)
  values_clipped_BxT = old_values_BxT + jnp.clip(
    values_BxT - old_values_BxT, -clip_value, clip_value
  )
  value_sq_BxT = (values_BxT - returns_BxT) ** 2
  value_clipped_sq_BxT = (values_clipped_BxT - returns_BxT) ** 2
  value_loss = 0.5 * _mean(jnp.maximum(value_sq_BxT, value_clipped_sq_BxT), mask_BxT)
  return (
    policy_loss,
    value_loss,
    {
      'clip_frac': _mean((jnp.abs(ratio_BxT - 1) > clip_ratio).astype(jnp.float32), mask_BxT),
      'approx_kl': 0.5 * _mean(log_ratio_BxT**2, mask_BxT),
      'value_clip_frac': _mean((value_clipped_sq_BxT > value_sq_BxT).astype(jnp.float32), mask_BxT),
      'ratio': _mean(ratio_BxT, mask_BxT),
    },
  )


def rloo_advantages(rewards_BxK: jax.Array) -> jax.Array:
  """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, eq. 5): each of the K
  samples of a prompt is judged against the mean reward of the other K - 1,
  A_i = r_i - 1/(K-1) sum_{j != i} r_j, [B, K]."""
  K = rewards_BxK.shape[1]
  if K < 2:
    raise ValueError(f'RLOO needs at least 2 samples per prompt, got {K}')
  return rewards_BxK - (rewards_BxK.sum(-1, keepdims=True) - rewards_BxK) / (K - 1)
