"""The automatic labeller of learning from preferences: a sentiment classifier that reads a
policy's 48-byte continuation alone and gives the log-odds that it is positive (Ziegler et al.
2019, section 4.1: a classifier on movie-review labels stands in for people).

Data: every 48-byte window of the 1,000 Pang & Lee training reviews (stride 24, overlapping by
half), labelled with its review's polarity; held out, 2,048 evenly thinned non-overlapping windows
of the validation and of the test reviews (split by review). Training also reads each window's
prefixes of 16 bytes and more (task `sentiment_classifier`). A 48-byte window says little about
its review (a plot summary says nothing): a bag-of-bigrams logistic regression on the same
windows reaches 60% held-out accuracy, which bounds what to expect.

The default trains a 2-layer d 128 trunk from random weights: on 2 shared CPU cores it sees ten
times more windows in the 12 minutes than the supervised policy's 4-layer d 256 trunk
(`:from_sft`, which starts from runs/rlhf/sft) would.

The labeller scores the continuation without its prompt, so a prompt's own sentiment does not
decide which continuation is preferred; jdl.rlhf.labeller turns two scores into a Bradley-Terry
preference, P(a > b) = sigmoid(s_a - s_b).

Launch:
  nice -n 5 jdl train --config experiments/rlhf/labeller.py --workdir runs/rlhf/labeller

`:smoke` trains a tiny one for a few steps (the test).

Measured (2 Dec 2026, 2 heavily shared CPU cores, 12 min each): neither variant learned. The
default reached 53.5% test window accuracy with constant log-odds (std 0.002); `:from_sft` stayed
at loss 0.693 for 300 steps. The results of docs/rlhf.md use the bag-of-words labeller
(`jdl rlhf bow-labeller`, 60.4%) instead; this config is the path for a machine with the time.
"""

from jdl.gpt.configs import gpt_config

SFT_RUN = 'runs/rlhf/sft'


def get_config(arg: str | None = None):
  if arg not in (None, 'from_sft', 'smoke'):
    raise ValueError(f'labeller: unknown variant {arg!r} (from_sft, smoke)')
  c = gpt_config(n_layer=2, n_head=4, d_model=128, context=64, vocab_size=256)
  c.task = 'sentiment_classifier'
  c.init_from = ''
  c.model.dropout = 0.1
  c.data.name = 'reviews'
  c.data.kwargs = {
    'window': 48,
    'stride': 24,
    'eval_windows': 2048,
    'min_prefix': 16,
    'snippet_stride': 0,
  }
  c.sample_prompts = ()
  c.batch_size = 128
  c.num_train_steps = 2_500
  c.steps_per_call = 10
  c.log_every_steps = 100
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  c.eval_batch_size = 256
  c.max_seconds = 12 * 60  # the labeller's share of the shared machine
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 100
  c.optimizer.final_fraction = 0.1
  c.optimizer.kwargs.weight_decay = 0.1
  if arg == 'from_sft':
    c.init_from = SFT_RUN
    c.model.update(n_layer=4, n_head=4, d_model=256, context=128)
    c.data.kwargs.snippet_stride = 8
    c.batch_size = 32
    c.num_train_steps = 600
    c.steps_per_call = 5
    c.log_every_steps = 25
    c.eval_every_steps = 150
    c.checkpoint_every_steps = 150
    c.optimizer.learning_rate = 5e-4
    c.optimizer.warmup_steps = 30
  if arg == 'smoke':
    c.model.update(n_layer=1, n_head=2, d_model=16, context=16, dropout=0.0)
    c.data.kwargs = {
      'window': 16,
      'stride': 64,
      'eval_windows': 32,
      'min_prefix': 8,
      'snippet_stride': 0,
    }
    c.batch_size = 8
    c.eval_batch_size = 16
    c.num_train_steps = 4
    c.steps_per_call = 1
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = -1
    c.max_seconds = 0.0
    c.progress_bar = 'never'
  return c
