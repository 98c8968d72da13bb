"""The online stages (PPO, RLOO) through `jdl train` on tiny runs: rollouts from the current
policy inside the step, the frozen reference and reward model bitwise unchanged with no optimizer
state, the adaptive KL coefficient, and a resumed run bitwise equal to an uninterrupted one."""

import jax
import numpy as np
import pytest

from jdl.tasks.rlhf import losses
from jdl.train import task as base
from jdl.train.run import load_run, read_metrics
from tests.rlhf import stages


def bits(tree) -> list[bytes]:
  return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  return stages.made_runs(tmp_path_factory)


@pytest.fixture(scope='module')
def ppo_run(root, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('ppo')
  stages.jdl_train('ppo.py:smoke', workdir, *stages.stage_overrides(root))
  return workdir


def test_ppo_trains_policy_and_value_and_keeps_the_frozen_networks(root, ppo_run):
  sft, rm, ppo = load_run(root / 'sft'), load_run(root / 'rm'), load_run(ppo_run)
  assert ppo.step == 3
  assert bits(ppo.state.params['reference']) == bits(sft.state.params)
  assert bits(ppo.state.params['reward']) == bits(rm.state.params)
  assert jax.tree.leaves(ppo.state.opt_state.inner_states[base.FROZEN_LABEL]) == []
  for network, start in (('policy', sft.state.params), ('value', rm.state.params)):
    assert bits(ppo.state.params[network]) != bits(start)  # trained (the value from the RM)
    assert len(jax.tree.leaves(ppo.state.opt_state.inner_states[network])) > 1
  # 3 steps x 2 epochs x 2 minibatches: Adam's count is the number of minibatch updates.
  counts = [np.asarray(x) for x in jax.tree.leaves(ppo.state.opt_state.inner_states['policy'])]
  assert 12 in [int(c) for c in counts if c.ndim == 0]
  history = read_metrics(ppo_run)
  # The first rollouts come from the SFT policy itself: its KL to the reference is exactly 0.
  assert history[0]['kl'] == 0.0
  for name in ('rm_score', 'kl', 'reward', 'entropy', 'kl_coef', 'policy_loss', 'value_loss'):
    assert np.isfinite(history[-1][name])
  assert 'validation_rm_score' in history[-1] and 'validation_kl' in history[-1]


def test_ppo_resumed_equals_uninterrupted(root, ppo_run, tmp_path):
  overrides = stages.stage_overrides(root)
  stages.jdl_train('ppo.py:smoke', tmp_path, *overrides, '--config.num_train_steps=2')
  stages.jdl_train('ppo.py:smoke', tmp_path, *overrides)  # resumes at step 2, trains step 3
  resumed, straight = load_run(tmp_path), load_run(ppo_run)
  assert resumed.step == straight.step == 3
  assert bits(resumed.state.params) == bits(straight.state.params)
  assert bits(resumed.state.model_state) == bits(straight.state.model_state)


def test_rloo_with_the_adaptive_kl_coefficient_and_the_labeller_logged(root, tmp_path):
  target, horizon = 0.02, 8.0
  stages.jdl_train(
    'rloo.py:smoke',
    tmp_path,
    *stages.stage_overrides(root),
    f'--config.ppo.kl_target={target}',
    f'--config.ppo.kl_horizon={horizon}',
    # Any ScalarGPT run of the policy's shape can stand in for the labeller's gold score here.
    f'--config.labeller_run={root / "rm"}',
  )
  sft, rm, rloo = load_run(root / 'sft'), load_run(root / 'rm'), load_run(tmp_path)
  assert 'value' not in rloo.state.params
  assert bits(rloo.state.params['reference']) == bits(sft.state.params)
  assert bits(rloo.state.params['reward']) == bits(rm.state.params)
  assert bits(rloo.state.params['labeller']) == bits(rm.state.params)
  assert bits(rloo.state.params['policy']) != bits(sft.state.params)
  history = read_metrics(tmp_path)
  # Each step's coefficient follows from the previous step's measured KL over its 4 rollouts.
  for before, after in zip(history, history[1:]):
    want = losses.adaptive_kl_coef(before['kl_coef'], before['kl'], target, horizon, 4)
    assert after['kl_coef'] == pytest.approx(float(want), rel=1e-5)
  assert history[0]['kl_coef'] == pytest.approx(0.05) and history[-1]['kl_coef'] < 0.05
  assert 0 < history[-1]['labeller_p_positive'] < 1
  assert 0 < history[-1]['validation_labeller_p_positive'] < 1
