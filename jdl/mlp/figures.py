"""`jdl figures mlp`: the lecture's Keras MLP trained by jdl on the diabetes data (a run, by
default runs/mlp), its whole Keras-style history beside the test MSE of sklearn's MLPRegressor and
of the mean predictor."""

from __future__ import annotations

import pathlib

import numpy as np
from etils import epath

from jdl import paths, plots
from jdl.paths import ROOT

WORKDIR = ROOT / 'runs/mlp'


def history_inputs(workdir: epath.PathLike = WORKDIR) -> dict:
  """What the figure draws, from the run's config.json and metrics.jsonl (a local or gs://
  workdir): the epochs as logged (a resumed run's included), and the three test MSEs."""
  from jdl.tasks.regression import compare_sklearn, epoch_records
  from jdl.train.run import load_config, read_metrics
  from jdl.train.task import get_task

  workdir = paths.workdir(workdir)
  config = load_config(workdir)
  epochs = epoch_records(read_metrics(workdir))
  if not epochs:
    raise FileNotFoundError(
      f'{workdir}/metrics.jsonl holds no evaluated epoch: finish the run with `jdl train '
      f'--config experiments/mlp/keras_regression.py --workdir {workdir}`'
    )
  data = get_task(config).load_data()
  baseline = float(np.mean((data.evals['test']['y'] - data.train['y'].mean()) ** 2))
  test_mse = epochs[-1].get('test_loss', float('nan'))
  scores = compare_sklearn(data, test_mse, baseline, config.model.features[:-1], config.seed)
  return {
    'epoch': [h['epoch'] for h in epochs],
    'loss': [h['loss'] for h in epochs],
    'validation_loss': [h['validation_loss'] for h in epochs],
    'step': [h['step'] for h in epochs],
    'test_mse': scores,
    'optimizer': f'{config.optimizer.name.upper()} {config.optimizer.learning_rate:g}',
    'batch_size': config.batch_size,
    'features': '-'.join(map(str, config.model.features)),
  }


def render(outdir, workdir: epath.PathLike = WORKDIR) -> list[pathlib.Path]:
  inputs = history_inputs(workdir)
  fig, (left, right) = plots.pyplot().subplots(1, 2, figsize=(11, 4))
  left.plot(inputs['epoch'], inputs['loss'], 'o-', label='loss (training MSE)')
  left.plot(inputs['epoch'], inputs['validation_loss'], 's-', label='val_loss (validation MSE)')
  left.set(
    xlabel='epoch',
    ylabel='MSE (standardized target)',
    title=f'Dense {inputs["features"]}, {inputs["optimizer"]}, batch {inputs["batch_size"]}: '
    'history',
  )
  left.grid(alpha=0.3)
  left.legend()
  scores = inputs['test_mse']
  names = ['jdl MLP\n(Keras recipe)', 'sklearn\nMLPRegressor', 'mean\npredictor']
  values = [scores['jdl'], scores['sklearn'], scores['mean']]
  bars = right.bar(names, values, color=['tab:blue', 'tab:orange', 'tab:gray'])
  right.bar_label(bars, fmt='%.3f')
  right.set(ylabel='test MSE (lower is better)', title='Diabetes test set (89 patients)')
  fig.tight_layout()
  path = pathlib.Path(outdir) / 'mlp_history.png'
  plots.save(fig, path, dpi=100)
  return [path]
