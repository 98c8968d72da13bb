"""The sentiment neuron at this machine's scale (Radford, Jozefowicz & Sutskever 2017): a
byte-level multiplicative LSTM language model on the 1,000 training reviews of Pang & Lee's
polarity data (jdl.data.reviews; the 200 validation and 300 test reviews are never read), then
an L1 logistic-regression probe on its state after each review (jdl sentiment probe).

  variant WIDTH (64, 128, 256, 512, 1024; default 256)   ',wn': weight normalisation (the paper's)
  variant smoke: 16 units, a few steps, for the tests

Model: a 64-wide byte embedding (256 ids, as the paper), one mLSTM layer of WIDTH units, a linear
read-out of the next byte. Parameters (embedding 64, H units):
  256*64 + 64*4H + 4H + 64*H + H*H + H*4H + H*256 + 256
  H = 64: 74,240   H = 128: 172,800   H = 256: 492,800   H = 512: 1,624,320   H = 1024: 5,853,440

Training: truncated BPTT over 32 parallel streams of the training reviews (a carried state, reset
at each review; jdl.data.streams), windows of 128 bytes, Adam 2e-3 with cosine decay, gradients
clipped at 1. Every width trains the same number of steps, so reads the same bytes (EQUAL BYTES:
1,200 steps x 32 x 128 = 4.9M bytes, about 1.26 passes over the 3.9 MB of training reviews).
Measured here (docs/sentiment.md): 64, 128 and 256 units; on the 2 CPU cores shared at a load
of 15-18 the 256-unit run took 21 minutes, so 512 (about 4x the arithmetic) would not reach the
same bytes within one 25-minute run (`max_seconds` stops it there, resumable).
Evaluation: bits per byte on windows of the held-out reviews, each read from the zero state.

Launch (docs/sentiment.md has the measured numbers):
  jdl train --config experiments/sentiment/mlstm_reviews.py:256 --workdir runs/sentiment/mlstm_256
  jdl sentiment probe --workdir runs/sentiment/mlstm_256
  jdl sentiment --workdir runs/sentiment/mlstm_256 "a wonderful, moving film"
"""

from jdl.config import base_config

WIDTHS = (64, 128, 256, 512, 1024)


def get_config(arg: str | None = None):
  parts = (arg or '256').split(',')
  weight_norm = 'wn' in parts
  parts = [p for p in parts if p != 'wn'] or ['256']
  smoke = parts[0] == 'smoke'
  if len(parts) > 1 or not (smoke or (parts[0].isdigit() and int(parts[0]) in WIDTHS)):
    raise ValueError(
      f'mlstm_reviews: unknown variant {arg!r} (a width of {WIDTHS} or smoke, optionally ",wn")'
    )
  c = base_config()
  c.task = 'rnn_lm'
  c.model.name = 'char_rnn'
  c.model.cell = 'mlstm_wn' if weight_norm else 'mlstm'
  c.model.hidden_size = 16 if smoke else int(parts[0])
  c.model.embed_dim = 64
  c.model.num_layers = 1
  c.model.vocab_size = 256
  c.model.unroll = 4
  c.model.carry_state = True  # truncated BPTT: the state runs on across a review's windows
  c.data.name = 'reviews'
  c.data.kwargs = {'corpora': ('reviews',), 'context': 128, 'eval_rows': 600, 'epochs': 2}
  c.sample_prompt = 'this movie is '
  c.batch_size = 32
  c.eval_batch_size = 300
  c.num_train_steps = 1_200
  c.steps_per_call = 10
  c.log_every_steps = 100
  c.eval_every_steps = 400
  c.checkpoint_every_steps = 400
  c.max_seconds = 25 * 60  # the machine's per-run limit: a run stopped so ends resumable
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 50
  c.optimizer.grad_clip_norm = 1.0
  if smoke:
    c.model.embed_dim = 8
    c.data.kwargs = {'corpora': ('reviews',), 'context': 32, 'eval_rows': 16, 'epochs': 1}
    c.batch_size = 8
    c.eval_batch_size = 16
    c.num_train_steps = 20
    c.log_every_steps = 10
    c.eval_every_steps = 20
    c.checkpoint_every_steps = 20
    c.max_seconds = 0.0
    c.progress_bar = 'never'
  return c
