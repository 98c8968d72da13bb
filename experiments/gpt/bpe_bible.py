"""A small GPT-2 (pre-LN, 4 layers, d 96) with GPT-2's own BPE (tiktoken, 50,257 ids) on the
King James Bible, trained on a 50/50 mixture of the Old and New Testaments as two corpora
(jdl.data.mixture: each row is drawn from a corpus by weight, at a random offset).

Launch:
  jdl train --config experiments/gpt/bpe_bible.py --workdir runs/bpe_bible
  jdl sample --workdir runs/bpe_bible --prompt "And God said" --temperature 0.8 --top-k 40

Expected: see docs/gpt.md. `:smoke` is a tiny model a few steps (the test).
"""

from jdl.gpt.configs import gpt_config, small_text


def get_config(arg: str | None = None):
  c = gpt_config(n_layer=4, n_head=4, d_model=96, context=64, vocab_size=50257)
  small_text(
    c,
    corpora=(('kjv_ot', 0.5), ('kjv_nt', 0.5)),
    tokenizer='gpt2',
    batch_size=16,
    steps=300,
    eval_rows=200,
  )
  c.optimizer.learning_rate = 2e-3
  if arg == 'smoke':
    c.model.update(n_layer=2, n_head=4, d_model=32, context=16)
    small_text(
      c,
      corpora=(('kjv_ot', 0.5), ('kjv_nt', 0.5)),
      tokenizer='gpt2',
      batch_size=8,
      steps=4,
      eval_rows=8,
    )
    c.data.kwargs.context = 16
    c.eval_batch_size = 16
  elif arg is not None:
    raise ValueError(f'bpe_bible: unknown variant {arg!r} (smoke)')
  return c
