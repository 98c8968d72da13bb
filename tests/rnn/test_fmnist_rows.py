"""Fashion-MNIST read row by row as 28-step sequences: the input layout and a smoke run."""

import pathlib

import numpy as np
import pytest

from jdl import config as config_lib
from jdl.tasks.sequence import Task
from jdl.train import loop

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / 'experiments/rnn/fmnist_rows.py')


def test_step_t_is_image_row_t_scaled_to_unit_range():
  task = Task(config_lib.load(f'{CONFIG}:smoke'))
  image = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28, 1) % 256
  x_BxTxF = np.asarray(task.inputs({'image': image.astype(np.uint8)}))
  assert x_BxTxF.shape == (2, 28, 28)
  np.testing.assert_allclose(x_BxTxF[1, 5], image[1, 5, :, 0] / 255.0, rtol=1e-6)


def test_unknown_objective_is_refused():
  config = config_lib.load(f'{CONFIG}:smoke')
  config.objective = 'ranking'
  with pytest.raises(config_lib.ConfigError, match='objective'):
    Task(config)


def test_smoke_run_classifies_through_the_loop(tmp_path, capsys):
  result = loop.train_and_evaluate(config_lib.load(f'{CONFIG}:smoke'), tmp_path)
  losses = [h['loss'] for h in result['history'] if 'loss' in h]
  assert losses[-1] < losses[0]
  assert 0.1 < result['final']['test_accuracy'] <= 1.0  # above chance after 20 steps
  assert 'test accuracy' in capsys.readouterr().out
