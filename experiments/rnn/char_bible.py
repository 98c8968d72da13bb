"""A character-level language model on the King James Bible: the LSTM, Elman and Jordan cells at
an equal parameter budget, each one layer with a 32-wide character embedding and a linear
read-out. The split is jdl/data/text.py's fixed verse split (every 19th and 20th run of 100
verses held out for validation and test).

  variant CELL  (lstm, elman, jordan)   variant smoke: a tiny LSTM, a few steps, for the tests
  ',carry' after either: the recurrent state carried across batches (truncated BPTT)

Hidden sizes for about 94k parameters each (70 characters, embedding 32):
  LSTM   hidden 128: 70*32 + 4*(32*128 + 128*128 + 128) + 128*70 + 70     = 93,702
  Elman  hidden 255: 70*32 + (32*255 + 255*255 + 255) + 255*70 + 70       = 93,600
  Jordan hidden 189 (output 189 fed back, read out): 70*32 + (32*189 + 189) + 189*189
         + (189*189 + 189) + 189*70 + 70                                   = 93,408

Launch:
  jdl train --config experiments/rnn/char_bible.py:lstm --workdir runs/char_rnn_lstm
  jdl sample --workdir runs/char_rnn_lstm --prompt "And God said" --temperature 0.8 --top-k 40

Expected (docs/rnn.md, measured): validation bits per character 1.72 (Elman), 1.74 (Jordan),
1.97 (LSTM) after 2,000 steps: at this small budget the wider Elman network wins.
"""

from jdl.config import base_config

HIDDEN = {'lstm': 128, 'elman': 255, 'jordan': 189}  # equal parameter budget, see above


def get_config(arg: str | None = None):
  parts = (arg or 'lstm').split(',')
  carry = 'carry' in parts
  parts = [p for p in parts if p != 'carry'] or ['lstm']
  arg = parts[0]
  cell = 'lstm' if arg == 'smoke' else arg
  if cell not in HIDDEN or len(parts) > 1:
    raise ValueError(
      f'char_bible (rnn): unknown variant {",".join(parts)!r} ({sorted(HIDDEN)} or smoke, '
      'optionally with ",carry")'
    )
  c = base_config()
  c.task = 'rnn_lm'
  c.model.name = 'char_rnn'
  c.model.cell = cell
  c.model.hidden_size = HIDDEN[cell]
  c.model.embed_dim = 32
  c.model.num_layers = 1
  c.model.vocab_size = 70
  c.model.unroll = 8  # 8 steps per loop iteration: CPU loop overhead is large next to a step
  # ',carry': the state carried from batch to batch over the books read in order (truncated
  # BPTT over jdl.data.streams) instead of a zero state for every window.
  c.model.carry_state = carry
  c.data.name = 'text'
  c.data.kwargs = {
    'corpora': (('kjv', 1.0),),
    'tokenizer': 'char',
    'context': 128,
    'train_rows': 128_000,
    'eval_rows': 1_000,
  }
  c.batch_size = 64
  c.eval_batch_size = 500
  c.num_train_steps = 2_000
  c.steps_per_call = 10
  c.log_every_steps = 250
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 1_000
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 100
  c.optimizer.grad_clip_norm = 1.0
  if arg == 'smoke':
    c.model.hidden_size = 16
    c.model.embed_dim = 8
    c.data.kwargs = {
      'corpora': (('kjv', 1.0),),
      'tokenizer': 'char',
      'context': 32,
      'train_rows': 256,
      'eval_rows': 16,
    }
    c.batch_size = 16
    c.eval_batch_size = 16
    c.num_train_steps = 20
    c.steps_per_call = 10
    c.log_every_steps = 10
    c.eval_every_steps = 20
    c.checkpoint_every_steps = 20
    c.progress_bar = 'never'
  return c
