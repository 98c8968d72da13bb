"""jdl's RLOO against trl 1.16's RLOOTrainer (jdl.rlhf.peer_trl_rloo) on the tiny stage runs: the
same prompts in the same order, the same number of steps and continuations, KL exactly 0 before
the first update, the same reward-model scores of the same continuations, and trl's
leave-one-out advantages equal to jdl's `rloo_advantages` of the same rewards."""

import numpy as np
import pytest

from jdl.rlhf import peer_trl_rloo as rloo
from jdl.tasks.rlhf import losses
from tests.rlhf import stages

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures('no_mesh')]

# The smoke policy's context is 32: 13-byte prompts (16-byte openings) + 16-byte continuations.
PINNED = rloo.RlooPinned(
  steps=4, prompts=3, k=4, prompt_bytes=16, completion_bytes=16, learning_rate=3e-3, beta=0.1
)


@pytest.fixture(scope='module')
def both(tmp_path_factory):
  root = stages.made_runs(tmp_path_factory)
  folder = tmp_path_factory.mktemp('rloo_trl')
  out = rloo.compare(str(root / 'sft'), str(root / 'rm'), PINNED, [0], str(folder), keep=True)
  return root, out


def test_same_prompts_steps_and_continuations(both):
  _, out = both
  jdl, trl = out['jdl'][0], out['trl'][0]
  assert trl['trl'] == '1.16.0'
  for name in rloo.METRICS:
    assert len(jdl[name]) == len(trl[name]) == PINNED.steps, name
    assert np.isfinite(jdl[name]).all() and np.isfinite(trl[name]).all(), name
  prompts, p, k = out['prompts'], PINNED.prompts, PINNED.k
  for s in range(PINNED.steps):
    # trl continues prompts [s P, (s + 1) P), each k times in a row, as jdl's `jnp.repeat`
    assert trl['prompts'][s] == [x for x in prompts[s * p : (s + 1) * p] for _ in range(k)]
    # every continuation is completion_bytes long: trl's end token is never sampled
    assert trl['lengths'][s] == [PINNED.completion_bytes] * p * k
    assert np.asarray(trl['completion_ids'][s]).shape == (p * k, PINNED.completion_bytes)


def test_kl_is_exactly_zero_before_the_first_update_and_then_moves(both):
  _, out = both
  jdl, trl = out['jdl'][0], out['trl'][0]
  assert jdl['kl'][0] == 0.0 and trl['kl'][0] == 0.0
  assert trl['seq_kl'][0] == [0.0] * PINNED.prompts * PINNED.k
  assert abs(jdl['kl'][-1]) > 1e-3 and abs(trl['kl'][-1]) > 1e-3  # both policies were updated
  # trl's recorded KL (its per-token metric x tokens / rows) is the mean per-sequence KL
  np.testing.assert_allclose(trl['kl'], np.mean(trl['seq_kl'], axis=1), rtol=1e-5, atol=1e-6)


def test_same_scores_of_the_same_continuations(both):
  root, out = both
  trl = out['trl'][0]
  reads, pooling = rloo.reward_input(str(root / 'rm')), rloo.reward_pooling(str(root / 'rm'))
  reward_net = out['first'].reward  # jdl's RLOO task's frozen copy of the reward model
  for s in range(PINNED.steps):
    prompts = [x.encode() for x in trl['prompts'][s]]
    jdl_scores = rloo.score(reward_net, prompts, trl['completion_ids'][s], reads, pooling)
    np.testing.assert_allclose(jdl_scores, trl['scores'][s], rtol=0, atol=1e-5)
    assert np.ptp(jdl_scores) > 0  # different continuations, different scores
    assert trl['rm_score'][s] == pytest.approx(np.mean(trl['scores'][s]), abs=1e-6)


def test_trls_leave_one_out_advantages_are_jdls(both):
  _, out = both
  trl = out['trl'][0]
  for s in range(PINNED.steps):
    rewards = np.asarray(trl['scores'][s]) - PINNED.beta * np.asarray(trl['seq_kl'][s])
    jdl_adv = np.asarray(losses.rloo_advantages(rewards.reshape(-1, PINNED.k).astype(np.float32)))
    np.testing.assert_allclose(jdl_adv.reshape(-1), trl['advantages'][s], rtol=0, atol=1e-6)
    reward = np.mean(rewards)
    assert trl['reward'][s] == pytest.approx(reward, abs=1e-5)
