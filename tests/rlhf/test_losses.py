"""The objectives of learning from preferences against hand-computed values and NumPy loops."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jdl.tasks.rlhf import losses


def test_bradley_terry_loss_by_hand():
  loss, m = losses.bradley_terry_loss(jnp.array([2.0, 0.0, -1.0]), jnp.array([0.0, 1.0, -1.0]))
  # -log sigmoid(2), -log sigmoid(-1), -log sigmoid(0)
  want = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1)) + math.log(2)) / 3
  assert float(loss) == pytest.approx(want, rel=1e-6)
  assert float(m['accuracy']) == pytest.approx(1 / 3)  # a tie is not a correct pair
  assert float(m['margin']) == pytest.approx(1 / 3)
  # The evaluation's padded rows (mask 0) do not count.
  loss, m = losses.bradley_terry_loss(
    jnp.array([2.0, 5.0]), jnp.array([0.0, 9.0]), mask_B=jnp.array([1, 0])
  )
  assert float(loss) == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
  assert float(m['accuracy']) == 1.0


def test_dpo_loss_by_hand():
  beta = 0.1
  pi_c, pi_r = jnp.array([-10.0, -20.0]), jnp.array([-12.0, -15.0])
  ref_c, ref_r = jnp.array([-11.0, -20.0]), jnp.array([-11.0, -16.0])
  loss, m = losses.dpo_loss(pi_c, pi_r, ref_c, ref_r, beta)
  # row 0: chosen reward 0.1 * 1 = 0.1, rejected 0.1 * -1 = -0.1, margin 0.2
  # row 1: chosen 0.0, rejected 0.1 * 1 = 0.1, margin -0.1
  want = (math.log(1 + math.exp(-0.2)) + math.log(1 + math.exp(0.1))) / 2
  assert float(loss) == pytest.approx(want, rel=1e-6)
  assert float(m['rewards_chosen']) == pytest.approx(0.05, rel=1e-5)
  assert float(m['rewards_rejected']) == pytest.approx(0.0, abs=1e-6)
  assert float(m['rewards_margin']) == pytest.approx(0.05, rel=1e-5)
  assert float(m['rewards_accuracy']) == 0.5
  assert float(m['logps_chosen']) == -15.0 and float(m['logps_rejected']) == -13.5
  # At the reference (pi = pi_ref) every pair costs log 2, whatever beta.
  loss, _ = losses.dpo_loss(ref_c, ref_r, ref_c, ref_r, 3.0)
  assert float(loss) == pytest.approx(math.log(2), rel=1e-6)


def test_completion_mask_and_sequence_logprobs():
  # Row 0: prompt of 2 tokens, 3 completion tokens (length 5) in a width of 6 positions.
  mask = losses.completion_mask(jnp.array([2, 1]), jnp.array([5, 3]), 5)
  np.testing.assert_array_equal(mask, [[0, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
  V = 4
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, V)), jnp.float32)
  tokens = jnp.array([[1, 2, 3, 0, 1, 0], [2, 2, 1, 0, 0, 0]])
  total, per_token = losses.sequence_logprobs(
    lambda t: logits, tokens, jnp.array([2, 1]), jnp.array([5, 3])
  )
  logp = np.asarray(logits) - np.log(np.exp(np.asarray(logits)).sum(-1, keepdims=True))
  want0 = logp[0, 1, 3] + logp[0, 2, 0] + logp[0, 3, 1]  # tokens at positions 2, 3, 4
  want1 = logp[1, 0, 2] + logp[1, 1, 1]  # positions 1, 2
  np.testing.assert_allclose(total, [want0, want1], rtol=1e-6)
  assert float(per_token[0, 4]) == 0.0 and float(per_token[0, 0]) == 0.0


def test_kl_penalty_and_token_rewards():
  logp = jnp.array([[-1.0, -2.0, -0.5, -9.0]])
  ref = jnp.array([[-1.5, -1.0, -0.5, -1.0]])
  mask = jnp.array([[1.0, 1.0, 1.0, 0.0]])  # the last column is padding
  penalty, kl = losses.kl_penalty(logp, ref, mask, 0.2)
  np.testing.assert_allclose(penalty, [[-0.1, 0.2, 0.0, 0.0]], atol=1e-7)
  np.testing.assert_allclose(kl, [0.5 - 1.0 + 0.0])
  rewards = losses.token_rewards(jnp.array([3.0]), penalty, mask)
  np.testing.assert_allclose(rewards, [[-0.1, 0.2, 3.0, 0.0]], atol=1e-7)  # score on the last real
  # The adaptive coefficient: KL twice the target -> the error clips at +0.2.
  coef = losses.adaptive_kl_coef(0.1, kl=12.0, target=6.0, horizon=10_000, n_steps=256)
  assert float(coef) == pytest.approx(0.1 * (1 + 0.2 * 256 / 10_000))
  coef = losses.adaptive_kl_coef(0.1, kl=5.7, target=6.0, horizon=10_000, n_steps=256)
  assert float(coef) == pytest.approx(0.1 * (1 - 0.05 * 256 / 10_000))


def gae_loop(rewards, values, mask, gamma, lam):
  """The reference: the recursion of Schulman et al. one step at a time, episode by episode."""
  B, T = rewards.shape
  adv = np.zeros((B, T))
  for b in range(B):
    last = 0.0
    for t in reversed(range(T)):
      if not mask[b, t]:
        last = 0.0
        continue
      next_value = values[b, t + 1] if t + 1 < T and mask[b, t + 1] else 0.0
      delta = rewards[b, t] + gamma * next_value - values[b, t]
      last = delta + gamma * lam * last
      adv[b, t] = last
  return adv, (adv + values) * mask


def test_gae_against_a_numpy_loop():
  rng = np.random.default_rng(1)
  B, T = 3, 7
  rewards, values = rng.normal(size=(B, T)), rng.normal(size=(B, T))
  mask = np.ones((B, T))
  mask[1, 5:] = 0  # a shorter episode
  mask[2, 0] = 0  # a prompt column before the completion
  for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (1.0, 1.0)):
    adv, ret = losses.gae(
      jnp.asarray(rewards, jnp.float32),
      jnp.asarray(values, jnp.float32),
      jnp.asarray(mask),
      gamma,
      lam,
    )
    want_adv, want_ret = gae_loop(rewards, values, mask, gamma, lam)
    np.testing.assert_allclose(adv, want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, want_ret, rtol=1e-5, atol=1e-5)
  # gamma = lam = 1: the advantage is the sum of the rewards to come minus the value.
  adv, _ = losses.gae(jnp.asarray(rewards), jnp.asarray(values), jnp.ones((B, T)), 1.0, 1.0)
  np.testing.assert_allclose(
    adv, np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1] - values, rtol=1e-5, atol=1e-5
  )


def test_ppo_losses_by_hand():
  logp = jnp.array([[0.0, np.log(1.5), np.log(0.5)]])
  old = jnp.zeros((1, 3))
  adv = jnp.array([[1.0, 1.0, -1.0]])
  mask = jnp.ones((1, 3))
  values, old_values, returns = jnp.array([[0.5, 1.0, 0.0]]), jnp.zeros((1, 3)), jnp.ones((1, 3))
  pl, vl, m = losses.ppo_losses(logp, old, adv, values, old_values, returns, mask, 0.2, 0.2)
  # ratios 1, 1.5, 0.5: min(1, 1), min(1.5, 1.2), min(-0.5, -0.8) -> -(1 + 1.2 - 0.8) / 3
  assert float(pl) == pytest.approx(-(1 + 1.2 - 0.8) / 3, rel=1e-6)
  # values clipped to 0.2, 0.2, 0: max((0.5-1)^2, (0.2-1)^2), max(0, 0.64), max(1, 1)
  assert float(vl) == pytest.approx(0.5 * (0.64 + 0.64 + 1.0) / 3, rel=1e-6)
  assert float(m['clip_frac']) == pytest.approx(2 / 3)
  assert float(m['value_clip_frac']) == pytest.approx(2 / 3)


def test_rloo_advantages_and_whiten():
  r = jnp.array([[1.0, 2.0, 6.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.rloo_advantages(r), [[-3.0, -1.5, 4.5], [0, 0, 0]])
  with pytest.raises(ValueError, match='at least 2 samples'):
    losses.rloo_advantages(jnp.ones((2, 1)))
  x = jnp.array([[1.0, 3.0, 100.0]])
  w = losses.whiten(x, jnp.array([[1.0, 1.0, 0.0]]))
  np.testing.assert_allclose(w, [[-1.0, 1.0, 0.0]], atol=1e-6)
