"""The paper's sentiment-neuron model as a TPU recipe (Radford, Jozefowicz & Sutskever 2017):
a byte-level multiplicative LSTM of 4,096 units with weight normalisation, a 64-wide byte
embedding, trained by truncated BPTT over 256-byte windows of 128 streams with Adam 5e-4
decayed linearly to zero. The paper read 82 million Amazon reviews for a month on four GPUs;
here the largest review corpus tfds has: `imdb_reviews`'s unsupervised split (50,000 unlabelled
IMDB reviews, about 65 MB of bytes, ~2,000 steps a pass), 10 passes. Evaluation: bits per byte
on windows of the labelled test split (its 25,000 reviews are never trained on).

Parameters: 256*64 + 64*4*4096 + 4*4096 + 64*4096 + 4096^2 + 4096*4*4096 + 4096*256 + 256 +
10*4096 (the weight-norm gains) = 86,319,360 (jdl params prints the table).

Launch on every worker of a TPU slice (data parallel; `--config.mesh.tensor=4` splits the 4H
gate columns over chips instead):
  jdl train --multihost --config experiments/sentiment/mlstm_imdb_tpu.py --workdir gs://BUCKET/mlstm
  jdl sentiment probe --workdir gs://BUCKET/mlstm

Data: tfds `imdb_reviews` prepared in $TFDS_DATA_DIR as array_record (`tfds build imdb_reviews
--file_format=array_record`), read with tfds.data_source (no TensorFlow). Expected (the paper):
a single unit reaching about 92% on IMDB with a 4,096-unit model trained on Amazon reviews.
`:smoke` runs the same code on tfds mock data with 16 units for 4 steps (the tests run it on 8
simulated CPU devices).
"""

from jdl.config import base_config


def get_config(arg: str | None = None):
  if arg not in (None, '', 'smoke'):
    raise ValueError(f'mlstm_imdb_tpu: unknown variant {arg!r} (smoke or none)')
  c = base_config()
  c.task = 'rnn_lm'
  c.model.name = 'char_rnn'
  c.model.cell = 'mlstm_wn'
  c.model.hidden_size = 4096
  c.model.embed_dim = 64
  c.model.num_layers = 1
  c.model.vocab_size = 256
  c.model.unroll = 1
  c.model.carry_state = True
  c.data.name = 'reviews'
  c.data.kwargs = {
    'corpora': ('imdb_reviews',),
    'context': 256,
    'eval_rows': 4_096,
    'tfds': {'train_split': 'unsupervised'},
  }
  c.sample_prompt = 'this movie is '
  c.batch_size = 128
  c.eval_batch_size = 512
  c.num_train_steps = 20_000
  c.steps_per_call = 10
  c.log_every_steps = 100
  c.eval_every_steps = 2_000
  c.checkpoint_every_steps = 1_000
  c.dtype = 'bfloat16'  # the state stays float32 (jdl.models.rnn keeps carries in float32)
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 5e-4
  c.optimizer.schedule = 'linear'
  c.optimizer.grad_clip_norm = 1.0
  if arg == 'smoke':
    c.model.hidden_size = 16
    c.model.embed_dim = 8
    c.data.kwargs = {
      'corpora': ('imdb_reviews',),
      'context': 16,
      'eval_rows': 16,
      'tfds': {'train_split': 'unsupervised', 'limit': 32},
    }
    c.batch_size = 8
    c.eval_batch_size = 8
    c.num_train_steps = 4
    c.steps_per_call = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.dtype = 'float32'
    c.progress_bar = 'never'
  return c
