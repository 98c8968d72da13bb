"""Sequence classification: each Fashion-MNIST image read row by row, 28 steps of 28 pixels, by
a one-layer LSTM of 128 units; its last output goes to a linear layer over the 10 classes.

The network sees one row at a time and must carry what it saw in its state: no convolution, no
view of the whole image.

Launch:
  jdl train --config experiments/rnn/fmnist_rows.py --workdir runs/fmnist_rows

Expected: at least 88% accuracy on the 10,000 test images (docs/rnn.md has the measured number
and time). Variants: CELL (lstm, elman, jordan: the same size, for comparison); smoke.
"""

from jdl.config import base_config


def get_config(arg: str | None = None):
  arg = arg or 'lstm'
  cell = 'lstm' if arg == 'smoke' else arg
  if cell not in ('lstm', 'elman', 'jordan'):
    raise ValueError(f'fmnist_rows: unknown variant {arg!r} (lstm, elman, jordan or smoke)')
  c = base_config()
  c.task = 'sequence'
  c.objective = 'classification'
  c.model.name = 'rnn'
  c.model.cell = cell
  c.model.hidden_size = 128
  c.model.num_layers = 1
  c.model.bidirectional = False
  c.model.in_features = 28
  c.model.out_features = 10
  c.model.unroll = 4
  c.data.name = 'fashion_mnist'
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.num_epochs = 15
  c.steps_per_call = 39  # 429 steps per epoch = 11 calls
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.grad_clip_norm = 1.0
  if arg == 'smoke':
    c.model.hidden_size = 16
    c.num_epochs = 0
    c.num_train_steps = 20
    c.steps_per_call = 10
    c.log_every_steps = 10
    c.eval_every_steps = 20
    c.checkpoint_every_steps = -1
    c.data.kwargs = {'eval_rows': 200}
    c.progress_bar = 'never'
  return c
