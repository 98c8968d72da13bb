import json

import pytest

from jdl import config as config_lib
from tests.conftest import MLP, run_jdl


def test_override_sets_typed_values(mlp_config):
  rest = config_lib.apply_overrides(
    mlp_config,
    [
      '--config.optimizer.learning_rate=0.5',
      '--config.num_epochs',
      '3',
      '--config.optimizer.name=adamw',
      '--config.model.features=(4,4,1)',
      'positional',
    ],
  )
  assert rest == ['positional']
  assert mlp_config.optimizer.learning_rate == 0.5
  assert mlp_config.num_epochs == 3
  assert mlp_config.optimizer.name == 'adamw'
  assert mlp_config.model.features == (4, 4, 1)


def test_unknown_key_is_named_with_a_suggestion(mlp_config):
  with pytest.raises(
    config_lib.ConfigError,
    match=r"unknown config key 'optimizer.learnin_rate'"
    r".*did you mean 'optimizer.learning_rate'",
  ):
    config_lib.apply_override(mlp_config, 'optimizer.learnin_rate', '0.1')


def test_wrong_type_names_the_field(mlp_config):
  with pytest.raises(config_lib.ConfigError, match=r'config.batch_size'):
    config_lib.apply_override(mlp_config, 'batch_size', 'big')


def test_validation_names_the_field(mlp_config):
  mlp_config.unlock()
  mlp_config.grad_accum_steps = 5
  with pytest.raises(config_lib.ConfigError, match=r'config.grad_accum_steps'):
    config_lib.validate(mlp_config)


def test_cli_unknown_override_exits_nonzero_naming_the_key(tmp_path):
  proc = run_jdl(
    'train',
    '--config',
    MLP + ':smoke',
    '--workdir',
    tmp_path,
    '--config.optimzer.learning_rate=0.1',
  )
  assert proc.returncode != 0
  assert "unknown config key 'optimzer'" in proc.stderr
  assert "did you mean 'optimizer'" in proc.stderr
  assert not (tmp_path / 'checkpoints').exists()  # nothing started


def test_cli_bad_value_and_missing_file(tmp_path):
  proc = run_jdl('train', '--config', MLP, '--workdir', tmp_path, '--config.dtype=float8')
  assert proc.returncode == 2 and 'config.dtype' in proc.stderr
  proc = run_jdl('train', '--config', 'experiments/nope.py', '--workdir', tmp_path)
  assert proc.returncode == 2 and 'config file not found: experiments/nope.py' in proc.stderr


def test_params_json_and_mesh_bytes():
  proc = run_jdl('params', '--config', MLP, '--json', check=True)
  out = json.loads(proc.stdout)
  # Dense 10->10, 10->2, 2->1 with biases: 110 + 22 + 3.
  assert out['total'] == 135
  assert out['modules'] == {'layers': 135}
  proc = run_jdl(
    'params', '--config', MLP, '--mesh', 'data=2,fsdp=1,tensor=1', '--json', check=True
  )
  out = json.loads(proc.stdout)
  assert out['bytes_per_device']['params'] == 135 * 4


def test_list_names_the_experiment():
  proc = run_jdl('list', check=True)
  assert 'experiments/mlp/keras_regression.py' in proc.stdout


def test_cli_unknown_variant_exits_2_naming_it(tmp_path):
  proc = run_jdl('train', '--config', MLP + ':smoek', '--workdir', tmp_path)
  assert proc.returncode == 2
  assert "unknown variant 'smoek'" in proc.stderr and 'Traceback' not in proc.stderr
  assert not (tmp_path / 'config.json').exists()


def test_model_config_refuses_keys_it_does_not_know():
  from jdl.models.gpt import GPTConfig
  from jdl.models.transformer import TransformerConfig

  gpt = config_lib.load('experiments/gpt/char_bible.py:smoke').model
  assert GPTConfig.from_config(gpt).n_layer == gpt.n_layer
  with gpt.unlocked():
    gpt.n_layers = 4  # a misspelling of n_layer
  with pytest.raises(
    config_lib.ConfigError, match=r"model.n_layers: .*did you mean 'model.n_layer'"
  ):
    GPTConfig.from_config(gpt)
  translation = config_lib.load('experiments/transformer/ding_de_en.py:smoke').model
  with translation.unlocked():
    translation.heads = 2
  with pytest.raises(config_lib.ConfigError, match='model.heads: TransformerConfig has no field'):
    TransformerConfig.from_config(translation)


def test_a_mistyped_flag_fails_every_command(tmp_path):
  for args in (
    ('bench', 'gpt', '--quik'),
    ('figures', 'mlp', '--outdr', tmp_path),
    ('list', '--verbose'),
    ('sample', '--workdir', tmp_path, '--temprature', '0'),
  ):
    proc = run_jdl(*args)
    assert proc.returncode == 2, args
    assert 'unrecognized arguments' in proc.stderr and 'Traceback' not in proc.stderr
