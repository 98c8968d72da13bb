"""The Python API: `import jdl` is cheap; `jdl.train`, `jdl.evaluate` and `jdl.load_run` do what
`jdl train` and `jdl eval` do, and leave the caller's matplotlib backend alone."""

import json
import subprocess
import sys

import chex
import pytest

import jdl
from jdl.config import ConfigError
from tests.conftest import MLP

# A notebook's session, in a fresh process: its own backend chosen first, then jdl.
SESSION = """
import json, sys
import matplotlib
matplotlib.use('svg')
import jdl
imported = sorted(m for m in ('jax', 'flax', 'matplotlib.pyplot') if m in sys.modules)

result = jdl.train(sys.argv[1], sys.argv[2], {'num_epochs': 2, 'optimizer.learning_rate': 0.02})
metrics = jdl.evaluate(sys.argv[2])
run = jdl.load_run(sys.argv[2])
import jax.numpy as jnp
import matplotlib.pyplot as plt
print(json.dumps({
  'imported': imported,
  'backend': matplotlib.get_backend(),
  'pyplot_figures': plt.get_fignums(),
  'stopped': result['stopped'],
  'step': result['step'],
  'final': result['final'],
  'evaluated': metrics,
  'run_step': run.step,
  'run_config': [run.config.num_epochs, run.config.optimizer.learning_rate],
  'prediction_shape': list(run.model(jnp.zeros((4, 10))).shape),
  'history': [r['step'] for r in run.history()],
  'train_is_the_package': callable(jdl.train) and jdl.train.loop.Trainer.__name__ == 'Trainer',
}))
"""


def test_a_notebook_session_trains_evaluates_and_loads_without_touching_its_backend(tmp_path):
  proc = subprocess.run(
    [sys.executable, '-c', SESSION, MLP + ':smoke', str(tmp_path / 'run')],
    capture_output=True,
    text=True,
    timeout=300,
    cwd=tmp_path,
  )
  assert proc.returncode == 0, proc.stderr
  out = json.loads(proc.stdout.splitlines()[-1])
  assert out['imported'] == []  # `import jdl` started neither JAX nor pyplot
  assert out['backend'] == 'svg' and out['pyplot_figures'] == []
  assert (tmp_path / 'run/history.png').is_file()  # the report drew without pyplot
  assert out['stopped'] == 'done' and out['step'] == out['run_step'] == out['history'][-1]
  assert out['run_config'] == [2, 0.02]
  assert out['evaluated']['step'] == out['step']
  # The final checkpoint evaluated again gives the final evaluation of the run.
  for key in ('validation_loss', 'test_loss'):
    assert out['evaluated'][key] == pytest.approx(out['final'][key], rel=1e-6)
  assert out['prediction_shape'] == [4, 1]


def test_config_overrides_are_checked_and_leave_the_callers_config(mlp_config):
  made = jdl.make_config(mlp_config, {'optimizer.name': 'adam', 'model.features': (4, 1)})
  assert made.optimizer.name == 'adam' and made.model.features == (4, 1)
  assert mlp_config.optimizer.name == 'sgd' and mlp_config.model.features == (10, 2, 1)
  with pytest.raises(ConfigError, match="unknown config key 'optimizer.learning_rat'"):
    jdl.make_config(MLP, {'optimizer.learning_rat': 0.1})
  with pytest.raises(ConfigError, match='config.num_epochs'):
    jdl.make_config(MLP, {'num_epochs': 'many'})


def test_train_resumes_in_process_and_returns_the_state(mlp_config, tmp_path):
  first = jdl.train(mlp_config, tmp_path, {'num_epochs': 1})
  again = jdl.train(mlp_config, tmp_path, {'num_epochs': 1})
  assert first['stopped'] == 'done' and again['stopped'] == 'complete'
  assert again['step'] == first['step']
  assert again['final']['validation_loss'] == first['final']['validation_loss']
  # Nothing left to train: the same parameters come back, with the shapes of the MLP's layers.
  chex.assert_trees_all_equal(again['state'].params, first['state'].params)
  run = jdl.load_run(tmp_path)
  chex.assert_trees_all_close(run.state.params, first['state'].params, rtol=0, atol=0)
  chex.assert_shape(run.state.params['layers'][0]['kernel'], (10, 10))


def test_the_top_level_names():
  assert {'train', 'evaluate', 'load_run', 'read_metrics'} <= set(dir(jdl))
  assert jdl.load_run is jdl.train.run.load_run
  with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
    jdl.nosuch  # noqa: B018
