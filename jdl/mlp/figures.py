"""`jdl figures mlp`: the lecture's Keras MLP trained by jdl on the diabetes data, its Keras-style
history beside the test MSE of sklearn's MLPRegressor and of the mean predictor."""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np

from jdl import config as config_lib
from jdl import plots
from jdl.paths import ROOT


def render(outdir: pathlib.Path) -> list[pathlib.Path]:
  from jdl.tasks.regression import compare_sklearn
  from jdl.train.loop import Trainer

  config = config_lib.load(str(ROOT / 'experiments/mlp/keras_regression.py'))
  config.progress_bar = 'never'
  trainer = Trainer(config)
  with tempfile.TemporaryDirectory() as workdir:
    result = trainer.fit(workdir)
  epochs = [h for h in result['history'] if 'validation_loss' in h]
  data = trainer.data
  baseline = float(np.mean((data.evals['test']['y'] - data.train['y'].mean()) ** 2))
  scores = compare_sklearn(
    data, epochs[-1]['test_loss'], baseline, config.model.features[:-1], config.seed
  )

  fig, (left, right) = plots.pyplot().subplots(1, 2, figsize=(11, 4))
  x = np.arange(1, len(epochs) + 1)
  left.plot(x, [h['loss'] for h in epochs], 'o-', label='loss (training MSE)')
  left.plot(x, [h['validation_loss'] for h in epochs], 's-', label='val_loss (validation MSE)')
  left.set(
    xlabel='epoch',
    ylabel='MSE (standardized target)',
    title='Dense 10-2-1, SGD 0.01, batch 32: history',
  )
  left.grid(alpha=0.3)
  left.legend()
  names = ['jdl MLP\n(Keras recipe)', 'sklearn\nMLPRegressor', 'mean\npredictor']
  values = [scores['jdl'], scores['sklearn'], scores['mean']]
  bars = right.bar(names, values, color=['tab:blue', 'tab:orange', 'tab:gray'])
  right.bar_label(bars, fmt='%.3f')
  right.set(ylabel='test MSE', title='Diabetes test set (89 patients)')
  fig.tight_layout()
  path = outdir / 'mlp_history.png'
  plots.save(fig, path, dpi=120)
  return [path]
