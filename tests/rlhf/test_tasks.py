"""The offline stages (reward model, DPO) through `jdl train` on tiny runs: each starts from the
SFT run's weights, a frozen reference stays bitwise unchanged and holds no optimizer state, and a
missing starting run or an over-long prompt is refused with what to do."""

import jax
import numpy as np
import pytest

from jdl import config as config_lib
from jdl.config import ConfigError
from jdl.data import preferences
from jdl.tasks.rlhf import common
from jdl.train import loop
from jdl.train import task as base
from jdl.train.run import load_run, read_metrics
from tests.rlhf import stages


def bits(tree) -> list[bytes]:
  return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  return stages.made_runs(tmp_path_factory)


def test_reward_model_starts_from_the_sft_trunk_and_reports_held_out_accuracy(root):
  sft = load_run(root / 'sft')
  config = config_lib.load(str(stages.ROOT / 'experiments/rlhf/reward_model.py:smoke'))
  config_lib.apply_overrides(config, stages.stage_overrides(root))
  start = loop.Trainer(config).init_state()
  assert bits(start.params['trunk']) == bits(sft.state.params)
  assert not np.asarray(start.params['head_kernel']).any()
  history = read_metrics(root / 'rm')
  assert 'validation_accuracy' in history[-1] and 0 <= history[-1]['validation_accuracy'] <= 1
  assert (root / 'rm' / 'results.json').exists()
  # The first step's loss is log 2 exactly: the head starts at zero, every pair scores a tie.
  assert history[0]['loss'] == pytest.approx(np.log(2), abs=1e-6)


def test_dpo_reference_is_frozen_and_the_policy_starts_from_sft(root, tmp_path):
  stages.jdl_train('dpo.py:smoke', tmp_path, *stages.stage_overrides(root))
  sft, dpo = load_run(root / 'sft'), load_run(tmp_path)
  assert bits(dpo.state.params['reference']) == bits(sft.state.params)  # bitwise, after 3 steps
  assert bits(dpo.state.params['policy']) != bits(sft.state.params)
  assert jax.tree.leaves(dpo.state.opt_state.inner_states[base.FROZEN_LABEL]) == []
  assert len(jax.tree.leaves(dpo.state.opt_state.inner_states['policy'])) > 1
  first = read_metrics(tmp_path)[0]
  # At step 0 the policy is the reference: every implicit reward is 0 and the loss is log 2.
  assert first['rewards_chosen'] == 0 and first['rewards_margin'] == 0
  assert first['loss'] == pytest.approx(np.log(2), abs=1e-6)
  assert 'validation_rewards_accuracy' in read_metrics(tmp_path)[-1]


def test_missing_starting_run_is_refused_with_the_command(root, tmp_path, capsys):
  from jdl.cli import main

  config = str(stages.ROOT / 'experiments/rlhf/ppo.py:smoke')
  code = main(
    [
      'train',
      '--config',
      config,
      '--workdir',
      str(tmp_path / 'ppo'),
      f'--config.sft_run={root / "sft"}',
      f'--config.rm_run={tmp_path / "no_rm"}',
    ]
  )
  assert code == 2
  err = capsys.readouterr().err
  assert f'{tmp_path / "no_rm"} holds no trained run' in err
  assert (
    f'jdl train --config experiments/rlhf/reward_model.py:smoke --workdir {tmp_path / "no_rm"}'
    in err
  )
  assert not (tmp_path / 'ppo' / 'checkpoints').exists()


def test_ppo_refuses_a_reward_model_pooled_another_way(root, tmp_path, capsys):
  from jdl.cli import main

  config = str(stages.ROOT / 'experiments/rlhf/ppo.py:smoke')
  args = ['train', '--config', config, '--workdir', str(tmp_path / 'ppo')]
  code = main(args + stages.stage_overrides(root) + ['--config.ppo.reward_pooling=mean'])
  assert code == 2
  err = capsys.readouterr().err
  assert "config.ppo.reward_pooling is 'mean'" in err and "trained with 'last'" in err
  assert not (tmp_path / 'ppo' / 'checkpoints').exists()


def test_pairs_are_right_padded_with_the_completion_marked():
  pairs = [
    preferences.Pair('ab', 'cde', 'f', 'human', None),
    preferences.Pair('é', 'xyzwvu', 'q', 'human', None),  # é is 2 bytes; the completion is cut
  ]
  batch = common.encode_pairs(pairs, prompt_bytes=3, completion_bytes=4)
  np.testing.assert_array_equal(batch['chosen'][0], [97, 98, 99, 100, 101, 0, 0])
  np.testing.assert_array_equal(batch['rejected'][1], [0xC3, 0xA9, 113, 0, 0, 0, 0])
  np.testing.assert_array_equal(batch['chosen'][1, :6], [0xC3, 0xA9, 120, 121, 122, 119])
  assert batch['prompt_len'].tolist() == [2, 2]
  assert batch['chosen_len'].tolist() == [5, 6] and batch['rejected_len'].tolist() == [3, 3]
  with pytest.raises(
    ConfigError, match='prompt is 4 bytes, over the limit of config.data.prompt_bytes = 3'
  ):
    common.encode_pairs([preferences.Pair('abcd', 'x', 'y', 'human', None)], 3, 4)


def test_mean_pooled_reward_is_the_head_averaged_over_the_real_tokens():
  from flax import nnx

  from jdl.models.gpt import GPTConfig
  from jdl.models.scalar_head import ScalarGPT

  cfg = GPTConfig(vocab_size=256, context=8, n_layer=1, n_head=1, d_model=8)
  model = ScalarGPT(cfg, 1, rngs=nnx.Rngs(0))
  model.head_kernel[...] = jax.random.normal(jax.random.key(1), (8, 1))
  tokens = np.array([[104, 105, 0, 0, 0], [97, 98, 99, 100, 101]], np.int32)
  lengths = np.array([2, 5])
  every = np.asarray(model(tokens))[..., 0]
  got = np.asarray(common.sequence_scores(model, tokens, lengths, 'mean'))
  np.testing.assert_allclose(got, [every[0, :2].mean(), every[1].mean()], rtol=1e-6)
  last = np.asarray(common.sequence_scores(model, tokens, lengths, 'last'))
  np.testing.assert_allclose(last, [every[0, 1], every[1, 4]], rtol=1e-6)
  with pytest.raises(ConfigError, match="'max'"):
    common.sequence_scores(model, tokens, lengths, 'max')


def test_probe_and_reward_model_accuracy_diagnostics(root):
  from jdl.data.preferences import Pair
  from jdl.rlhf import policy, probe
  from jdl.tasks.rlhf import common as rl_common

  # Pairs a linear probe must separate: chosen always holds one word, rejected another.
  pairs = [Pair('p', f'{i % 7} great film', f'{i % 5} awful film', 't', 0.9) for i in range(60)]
  result = probe.probe(policy.load_policy(root / 'sft'), pairs[:40], pairs[40:], cs=(1.0,))
  assert result == {'last C=1': 1.0, 'mean C=1': 1.0}
  # The reward model's accuracy is its own scores' order, with its pooling.
  run = load_run(root / 'rm')
  got = probe.rm_accuracy(run, pairs[:8])
  tokens, lengths = probe._rows([p.chosen for p in pairs[:8]], 8)
  chosen = rl_common.sequence_scores(run.model, tokens, lengths, 'last')
  tokens, lengths = probe._rows([p.rejected for p in pairs[:8]], 8)
  rejected = rl_common.sequence_scores(run.model, tokens, lengths, 'last')
  want = float((np.asarray(chosen) > np.asarray(rejected)).mean())
  assert got == {'pairs': 8, 'accuracy': want, 'agrees_with_labeller_scores': want}
