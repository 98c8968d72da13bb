"""The lecture's Keras MLP through the training loop."""

import json
import os
import subprocess
import sys

import numpy as np

from jdl.train import loop
from jdl.train.run import read_metrics
from tests.conftest import MLP, run_jdl


def test_smoke_run_beats_the_mean_predictor(mlp_config, tmp_path):
  result = loop.train_and_evaluate(mlp_config, tmp_path)
  from jdl.data import diabetes

  data = diabetes.load()
  mean_mse = float(np.mean((data.evals['validation']['y'] - data.train['y'].mean()) ** 2))
  history = [h for h in result['history'] if 'validation_loss' in h]
  assert len(history) == 10  # one record per epoch, as Keras' fit
  assert history[-1]['validation_loss'] < mean_mse
  assert (tmp_path / 'history.png').stat().st_size > 10_000
  config = json.loads((tmp_path / 'config.json').read_text())
  assert config['model']['features'] == [10, 2, 1]
  lines = read_metrics(tmp_path)
  assert [l['step'] for l in lines] == [8 * e for e in range(1, 11)]
  assert list((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))


def test_cli_prints_keras_history_and_sklearn_comparison(tmp_path):
  proc = run_jdl('train', '--config', MLP + ':sklearn', '--workdir', tmp_path, check=True)
  assert 'Epoch 10/10 - loss: ' in proc.stdout and 'val_loss: ' in proc.stdout
  assert 'sklearn MLPRegressor' in proc.stdout
  assert 'mean predictor (baseline)' in proc.stdout
  # eval restores the final checkpoint and reproduces the final validation loss
  final = read_metrics(tmp_path)[-1]
  proc = run_jdl('eval', '--config', MLP, '--workdir', tmp_path, check=True)
  metrics = json.loads(proc.stdout[proc.stdout.index('{') :])
  assert metrics['step'] == 80
  np.testing.assert_allclose(metrics['validation_loss'], final['validation_loss'], rtol=1e-6)


def test_bfloat16_compute_keeps_float32_parameters(mlp_config, tmp_path):
  mlp_config.dtype = 'bfloat16'
  result = loop.train_and_evaluate(mlp_config, tmp_path)
  import jax

  assert {x.dtype.name for x in jax.tree.leaves(result['state'].params)} == {'float32'}
  assert result['final']['validation_loss'] < 0.75  # trains like float32 (0.69 there)


def test_progress_bar_on_request(tmp_path):
  proc = run_jdl(
    'train', '--config', MLP, '--workdir', tmp_path, '--config.progress_bar=always', check=True
  )
  assert '80/80' in proc.stderr and 'step/s' in proc.stderr and 'loss=' in proc.stderr


def test_a_relative_workdir_trains_and_resumes_where_it_was_given(tmp_path):
  # `make run` passes a relative workdir (runs/keras_regression/DATE).
  args = [sys.executable, '-m', 'jdl', 'train', '--config', MLP + ':smoke', '--workdir', 'runs/a']
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  first = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
  assert first.returncode == 0, first.stderr
  assert (tmp_path / 'runs/a/checkpoints').is_dir() and (tmp_path / 'runs/a/config.json').exists()
  again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
  assert again.returncode == 0, again.stderr
  # the finished run is found where it was given: complete, nothing trained again
  assert f'{tmp_path}/runs/a is complete: its checkpoint is at step 80' in again.stdout
