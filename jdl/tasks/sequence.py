"""Sequences in, one prediction out: a recurrent network reads a sequence [B, T, F] and a linear
head maps its summary of the sequence (jdl.models.rnn) to [B, out].

Two objectives (config.objective):
  'regression'      mean squared error against 'y' [B, out] (the adding problem);
  'classification'  softmax cross-entropy against integer 'label' [B], with accuracy.

Inputs are 'x' [B, T, F], or images 'image' [B, H, W, C] (uint8) read row by row: H steps of
W * C pixels scaled to [0, 1] (Fashion-MNIST as 28 steps of 28). Batches may carry 'lengths' [B]
for padded sequences.

Config fields (experiments/rnn/adding_problem.py, fmnist_rows.py): objective, model.cell
('lstm', 'elman', 'jordan'), model.hidden_size, model.num_layers, model.bidirectional,
model.in_features, model.out_features; data.name (a module under jdl.data with
`load(**data.kwargs)`), data.kwargs.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jdl.config import ConfigError
from jdl.models.rnn import CELLS, SequenceRegressor
from jdl.train import task as base


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
    self.objective = config.get('objective', 'regression')
    if self.objective not in ('regression', 'classification'):
      raise ConfigError(
        f"config.objective: 'regression' or 'classification', not {self.objective!r}"
      )

  def load_data(self) -> base.Splits:
    kwargs = self.config.data.get('kwargs')
    return self.data_module.load(**(kwargs.to_dict() if kwargs else {}))

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return SequenceRegressor(
      m.cell,
      m.in_features,
      m.hidden_size,
      m.out_features,
      num_layers=m.num_layers,
      bidirectional=m.bidirectional,
      unroll=m.get('unroll', 1),
      dtype=self.compute_dtype,
      rngs=rngs,
    )

  def inputs(self, batch) -> jax.Array:
    if 'x' in batch:
      return batch['x']
    image_BxHxWxC = batch['image']
    x_BxTxF = image_BxHxWxC.reshape(*image_BxHxWxC.shape[:2], -1)  # row t = pixels of row t
    return (x_BxTxF.astype(jnp.float32) / 255.0).astype(self.compute_dtype)

  def loss(self, model, batch, key, train):
    out_BxO = model(self.inputs(batch), batch.get('lengths')).astype(jnp.float32)
    if self.objective == 'classification':
      ce = base.masked_mean(
        optax.softmax_cross_entropy_with_integer_labels(out_BxO, batch['label']), batch
      )
      accuracy = base.masked_mean((out_BxO.argmax(-1) == batch['label']).astype(jnp.float32), batch)
      return ce, {'loss': ce, 'accuracy': accuracy}
    mse = base.masked_mean(jnp.mean((out_BxO - batch['y']) ** 2, axis=-1), batch)
    return mse, {'loss': mse}

  def report(self, plan, state, history, workdir, data):
    """The final MSEs beside the trivial predictor's (always the training targets' mean)."""
    final = next((h for h in reversed(history) if 'test_loss' in h), None)
    if final is None:
      return
    m = self.config.model
    if self.objective == 'classification':
      print(f'\n{m.cell} (hidden {m.hidden_size}) after {final["step"]} steps:')
      for split in data.evals:
        print(f'  {split} accuracy {100 * final[f"{split}_accuracy"]:.2f}%')
      return
    mean_pred = data.train['y'].mean(axis=0)
    trivial = {
      split: float(np.mean((arrays['y'] - mean_pred) ** 2)) for split, arrays in data.evals.items()
    }
    print(f'\n{m.cell} (hidden {m.hidden_size}) after {final["step"]} steps:')
    for split in data.evals:
      print(
        f'  {split} MSE {final[f"{split}_loss"]:.4f}   (trivial predictor '
        f'{trivial[split]:.3f}; 1/6 = 0.167 in expectation)'
      )
