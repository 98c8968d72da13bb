"""Sequence regression with mean squared error: a recurrent network reads a sequence [B, T, F]
and predicts a vector [B, out] from its summary of the sequence (jdl.models.rnn). The adding
problem is the first user. Batches may carry 'lengths' [B] for padded sequences.

Config fields (experiments/rnn/adding_problem.py): model.cell ('lstm', 'elman', 'jordan'),
model.hidden_size, model.num_layers, model.bidirectional, model.in_features,
model.out_features; data.name (a module under jdl.data with `load(**data.kwargs)`), data.kwargs.
"""

from __future__ import annotations

import importlib

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.config import ConfigError
from jdl.models.rnn import CELLS, SequenceRegressor
from jdl.tasks import base


class Task(base.Task):

  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name != 'rnn':
      raise ConfigError(f"config.model.name: the sequence task has model 'rnn', not {m.name!r}")
    if m.cell not in CELLS:
      raise ConfigError(f'config.model.cell: {m.cell!r} is not one of {sorted(CELLS)}')
    if m.hidden_size < 1 or m.num_layers < 1:
      raise ConfigError('config.model.hidden_size and config.model.num_layers must be >= 1')
    try:
      self.data_module = importlib.import_module(f'jdl.data.{config.data.name}')
    except ModuleNotFoundError:
      raise ConfigError(f"config.data.name: no data module 'jdl.data.{config.data.name}'") from None

  def load_data(self) -> base.Splits:
    kwargs = self.config.data.get('kwargs')
    return self.data_module.load(**(kwargs.to_dict() if kwargs else {}))

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return SequenceRegressor(m.cell, m.in_features, m.hidden_size, m.out_features,
                             num_layers=m.num_layers, bidirectional=m.bidirectional,
                             dtype=self.compute_dtype, rngs=rngs)

  def loss(self, model, batch, rngs, train):
    pred_BxO = model(batch['x'], batch.get('lengths')).astype(jnp.float32)
    mse = base.masked_mean(jnp.mean((pred_BxO - batch['y']) ** 2, axis=-1), batch)
    return mse, {'loss': mse}

  def report(self, history, workdir, state, data):
    """The final MSEs beside the trivial predictor's (always the training targets' mean)."""
    final = next((h for h in reversed(history) if 'test_loss' in h), None)
    if final is None:
      return
    mean_pred = data.train['y'].mean(axis=0)
    trivial = {split: float(np.mean((arrays['y'] - mean_pred) ** 2))
               for split, arrays in data.evals.items()}
    m = self.config.model
    print(f'\n{m.cell} (hidden {m.hidden_size}) after {final["step"]} steps:')
    for split in data.evals:
      print(f'  {split} MSE {final[f"{split}_loss"]:.4f}   (trivial predictor '
            f'{trivial[split]:.3f}; 1/6 = 0.167 in expectation)')
