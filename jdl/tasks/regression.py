"""Regression with mean squared error: the lecture's Keras MLP (and any model mapping rows to
real numbers). Reports its history as Keras' `fit` prints it and plots it."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from jdl import plots
from jdl.config import ConfigError
from jdl.models.mlp import MLP
from jdl.train import task as base


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    if config.model.name != 'mlp':
      raise ConfigError(
        f"config.model.name: the regression task has model 'mlp', not {config.model.name!r}"
      )

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return MLP(m.in_features, m.features, dtype=self.compute_dtype, rngs=rngs)

  def loss(self, model, batch, key, train):
    pred = model(batch['x']).astype(jnp.float32)
    mse = base.masked_mean(jnp.mean((pred - batch['y']) ** 2, axis=-1), batch)
    mae = base.masked_mean(jnp.mean(jnp.abs(pred - batch['y']), axis=-1), batch)
    return mse, {'loss': mse, 'mae': mae}

  def report(self, plan, state, history, workdir, data):
    """Keras-style epoch lines, the test MSE beside the mean predictor's, and history.png."""
    epochs = epoch_records(history)
    if not epochs:
      return
    print('\nHistory (as Keras fit reports it; loss = mean training MSE over the epoch):')
    total = self.config.num_epochs or epochs[-1]['epoch']
    for h in epochs:
      print(
        f'Epoch {h["epoch"]:g}/{total:g} - loss: {h["loss"]:.4f} - '
        f'val_loss: {h["validation_loss"]:.4f}'
      )
    mean_pred = float(data.train['y'].mean())
    baseline = {
      split: float(np.mean((arrays['y'] - mean_pred) ** 2)) for split, arrays in data.evals.items()
    }
    final = epochs[-1]
    print(
      f'\nvalidation MSE {final["validation_loss"]:.4f} (mean predictor '
      f'{baseline["validation"]:.4f})'
    )
    if 'test_loss' in final:
      print(f'test MSE {final["test_loss"]:.4f} (mean predictor {baseline["test"]:.4f})')
    path = epath.Path(workdir) / 'history.png'
    plot_history(epochs, path)
    print(f'history plot: {path}')
    if self.config.get('compare_sklearn'):
      compare_sklearn(
        data,
        final.get('test_loss', float('nan')),
        baseline['test'],
        self.config.model.features[:-1],
        self.config.seed,
      )


def epoch_records(history: list[dict]) -> list[dict]:
  """The evaluated records of a run's whole history (metrics.jsonl, resumes included), each with
  its real epoch number (`epoch` is logged as step / steps per epoch)."""
  return [
    {**h, 'epoch': round(h['epoch'], 3)}
    for h in history
    if 'validation_loss' in h and 'loss' in h and 'epoch' in h
  ]


def plot_history(epochs: list[dict], path: epath.PathLike) -> None:
  x = [h['epoch'] for h in epochs]
  fig, ax = plots.pyplot().subplots(figsize=(6, 4))
  ax.plot(x, [h['loss'] for h in epochs], 'o-', label='training MSE (loss)')
  ax.plot(x, [h['validation_loss'] for h in epochs], 's-', label='validation MSE (val_loss)')
  ax.set_xlabel('epoch')
  ax.set_ylabel('mean squared error (standardized target)')
  ax.set_title('MLP 10-2-1, SGD: training history')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  plots.save(fig, path, dpi=100)


def compare_sklearn(
  data: base.Splits, jdl_test_mse: float, baseline_mse: float, hidden: tuple, seed: int
) -> dict:
  """The lecture's other MLP: scikit-learn's MLPRegressor(hidden_layer_sizes=(10, 2), relu,
  adam) on the same standardized split (validation rows included, as sklearn has no separate
  validation set unless asked)."""
  import warnings

  from sklearn.exceptions import ConvergenceWarning
  from sklearn.neural_network import MLPRegressor

  x = np.concatenate([data.train['x'], data.evals['validation']['x']])
  y = np.concatenate([data.train['y'], data.evals['validation']['y']])[:, 0]
  model = MLPRegressor(
    hidden_layer_sizes=tuple(hidden), activation='relu', solver='adam', random_state=seed
  )
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', ConvergenceWarning)  # default max_iter=200, as on the slide
    model.fit(x, y)
  test = data.evals['test']
  sk_mse = float(np.mean((model.predict(test['x']) - test['y'][:, 0]) ** 2))
  print('\nTest MSE on the same split (standardized target):')
  print(f'  {"jdl MLP (Keras recipe: SGD, 10 epochs)":42s} {jdl_test_mse:.4f}')
  print(f'  {"sklearn MLPRegressor (adam, 200 iters)":42s} {sk_mse:.4f}')
  print(f'  {"mean predictor (baseline)":42s} {baseline_mse:.4f}')
  return {'jdl': jdl_test_mse, 'sklearn': sk_mse, 'mean': baseline_mse}
