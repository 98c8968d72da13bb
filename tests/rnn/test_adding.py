"""The adding problem's data, its experiment configs, and smoke runs of each cell through the
training loop."""

import json
import pathlib

import jax
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.data import adding
from jdl.train import loop

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / 'experiments/rnn/adding_problem.py')


def test_generator_has_two_markers_one_per_half_and_their_sum_as_target():
  data = adding.generate(500, 11, np.random.default_rng(0))
  x, y = data['x'], data['y']
  assert x.shape == (500, 11, 2) and y.shape == (500, 1) and x.dtype == np.float32
  values, markers = x[..., 0], x[..., 1]
  assert set(np.unique(markers)) == {0.0, 1.0}
  np.testing.assert_array_equal(markers.sum(1), 2)
  np.testing.assert_array_equal(markers[:, : 11 // 2].sum(1), 1)  # one in the first half
  np.testing.assert_allclose(y[:, 0], (values * markers).sum(1), rtol=1e-6)
  assert 0 <= values.min() and values.max() <= 1


def test_load_gives_independent_seeded_splits_with_the_trivial_mse_near_one_sixth():
  splits = adding.load(seq_len=20, train_rows=4000, eval_rows=100, seed=3)
  assert set(splits.evals) == {'validation', 'test'}
  assert not np.array_equal(splits.evals['validation']['x'], splits.evals['test']['x'])
  np.testing.assert_array_equal(
    adding.load(20, 4000, 100, seed=3).train['x'], splits.train['x']
  )  # the seed fixes the data
  assert abs(np.mean((splits.train['y'] - 1.0) ** 2) - adding.TRIVIAL_MSE) < 0.01


def test_cells_have_an_equal_parameter_budget():
  from jdl.tasks.sequence import Task

  counts = {}
  for cell in ('lstm', 'elman', 'jordan'):
    task = Task(config_lib.load(f'{CONFIG}:{cell}:100'))
    params = jax.eval_shape(lambda: nnx.state(task.build_model(nnx.Rngs(0)), nnx.Param))
    counts[cell] = sum(x.size for x in jax.tree.leaves(params))
  assert max(counts.values()) / min(counts.values()) < 1.05, counts


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match='unknown variant'):
    config_lib.load(f'{CONFIG}:gru:100')


def test_figure_plots_the_measured_results(tmp_path):
  from jdl.rnn import figures

  runs = [
    {'cell': c, 'seq_len': t, 'hidden_size': 8, 'params': 100, 'test_mse': mse}
    for c, t, mse in [('lstm', 50, 1e-4), ('lstm', 100, 0.0), ('elman', 50, 0.16)]
  ]
  results = tmp_path / 'results.json'
  results.write_text(json.dumps({'runs': runs, 'trivial_mse': 1 / 6}))
  [path] = figures.render(tmp_path / 'out', results)
  assert path.name == 'rnn_memory.png' and path.stat().st_size > 10_000


@pytest.mark.parametrize('cell', ['lstm', 'elman', 'jordan'])
def test_smoke_run_through_the_loop_lowers_the_loss(cell, tmp_path, capsys):
  config = config_lib.load(f'{CONFIG}:smoke')
  config.model.cell = cell
  result = loop.train_and_evaluate(config, tmp_path)
  losses = [h['loss'] for h in result['history'] if 'loss' in h]
  assert len(losses) == 3 and losses[-1] < losses[0]
  assert np.isfinite(result['final']['test_loss'])
  assert 'trivial predictor' in capsys.readouterr().out
