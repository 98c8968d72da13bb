"""The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a length-T
sequence. LSTM, Elman and Jordan cells at an equal parameter budget, MSE loss, adam with
gradient clipping.

  variant CELL:T  (e.g. lstm:100, elman:100, jordan:50)   T = sequence length
  variant smoke   a seconds-long LSTM run at T = 10, used by the tests

Hidden sizes give each model (cell plus linear head, 2 inputs, 1 output) about 17k parameters:
  LSTM   hidden 64:  4 * (2*64 + 64*64 + 64) + 65       = 17,217
  Elman  hidden 129: 2*129 + 129*129 + 129 + 130         = 17,158  (-0.3%)
  Jordan hidden 91 (output 91 fed back): 2*91 + 91 + 91*91 + 91*91 + 91 + 92 = 17,018  (-1.2%)

Launch:
  jdl train --config experiments/rnn/adding_problem.py:lstm:100 --workdir runs/adding_lstm_100

Expected: test MSE far below the trivial predictor's 0.167 for the LSTM at T = 100 (below 0.01);
the Elman network stays near 0.167 at T = 100 (docs/rnn.md has the measured table).
"""

from jdl.config import base_config

HIDDEN = {'lstm': 64, 'elman': 129, 'jordan': 91}  # equal parameter budget, see above


def get_config(arg: str | None = None):
  arg = arg or 'lstm:100'
  if arg == 'smoke':
    cell, seq_len = 'lstm', 10
  else:
    cell, _, t = arg.partition(':')
    if cell not in HIDDEN or not t.isdigit():
      raise ValueError(
        f'adding_problem: unknown variant {arg!r} (CELL:T with CELL in '
        f'{sorted(HIDDEN)}, e.g. lstm:100; or smoke)'
      )
    seq_len = int(t)
  c = base_config()
  c.task = 'sequence'
  c.model.name = 'rnn'
  c.model.cell = cell
  c.model.hidden_size = HIDDEN[cell]
  c.model.num_layers = 1
  c.model.bidirectional = False
  c.model.in_features = 2
  c.model.out_features = 1
  c.data.name = 'adding'
  c.data.kwargs = {'seq_len': seq_len, 'train_rows': 20_000, 'eval_rows': 1_000, 'seed': 0}
  c.batch_size = 64
  c.num_train_steps = 6_000
  c.steps_per_call = 50  # many small steps per compiled call: dispatch dominates on CPU
  c.log_every_steps = 500
  c.eval_every_steps = 1_000
  c.checkpoint_every_steps = -1
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.grad_clip_norm = 1.0  # rare large gradients through long products of Jacobians
  if arg == 'smoke':
    c.model.hidden_size = 16
    c.data.kwargs = {'seq_len': seq_len, 'train_rows': 512, 'eval_rows': 128, 'seed': 0}
    c.batch_size = 32
    c.num_train_steps = 60
    c.steps_per_call = 20
    c.log_every_steps = 20
    c.eval_every_steps = -1
    c.optimizer.learning_rate = 1e-2
    c.progress_bar = 'never'
  return c
