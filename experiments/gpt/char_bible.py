"""A character-level GPT-2-style model (pre-LN, 4 layers, d 128) on the King James Bible.

70 characters; fixed train/validation/test split of the verses (jdl/data/text.py).

Launch:
  jdl train --config experiments/gpt/char_bible.py --workdir runs/char_bible
  jdl sample --workdir runs/char_bible --prompt "And God said" --temperature 0.8 --top-k 40

Expected (2 shared CPU cores): see docs/gpt.md for the validation loss/perplexity and time.
`:smoke` trains a tiny model a few steps (the test).
"""

from jdl.gpt.configs import gpt_config, small_text


def get_config(arg: str | None = None):
  c = gpt_config(n_layer=4, n_head=4, d_model=128, context=128, vocab_size=70)
  small_text(c, corpora=(('kjv', 1.0),), tokenizer='char', batch_size=32, steps=300, eval_rows=200)
  c.optimizer.learning_rate = 2e-3
  if arg == 'smoke':
    c.model.update(n_layer=2, n_head=2, d_model=32, context=32)
    small_text(c, corpora=(('kjv', 1.0),), tokenizer='char', batch_size=8, steps=4, eval_rows=8)
    c.data.kwargs.context = 32
    c.eval_batch_size = 16
  elif arg is not None:
    raise ValueError(f'char_bible: unknown variant {arg!r} (smoke)')
  return c
