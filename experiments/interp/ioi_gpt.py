"""A small GPT-2-architecture model that learns indirect-object identification, trained here: the
model of the IOI circuit analysis (jdl/interp, docs/interp.md).

Data: an 80/20 mixture of generated IOI sentences ("When Mary and John went to the store, John
gave a drink to Mary.", jdl.data.ioi) and the King James Bible, so that names are not the only
thing the model reads. The IOI training text uses 3/4 of the single-token names and 12 of the 15
templates; validation, test and the analysis use the other names and templates only
(jdl.data.text.ioi_texts). Tokens: GPT-2's BPE (tiktoken, offline), so names are GPT-2's single
tokens, over the 9,903 ids that the two corpora use (`gpt2:kjv+ioi`, tokenizers.SubsetBPE): the
unembedding of all 50,257 was ~90% of this model's compute.

Shape: 4 layers of 4 heads (d 128, heads of 32): enough layers for the circuit's stages
(duplicate-token / induction heads, S-inhibition, name movers), pre-LN with tied embeddings like
GPT-2. Context 48 holds two or three sentences (an IOI sentence is 17-21 tokens).

Launch:
  jdl train --config experiments/interp/ioi_gpt.py --workdir runs/interp/ioi_gpt
  jdl ioi eval --workdir runs/interp/ioi_gpt      # accuracy and logit difference, held-out prompts

Expected: see docs/interp.md. `:smoke` is a tiny model a few steps (the test).
"""

from jdl.gpt.configs import gpt_config, small_text

CORPORA = (('ioi', 0.8), ('kjv', 0.2))
TOKENIZER = 'gpt2:kjv+ioi'


def get_config(arg: str | None = None):
  c = gpt_config(n_layer=4, n_head=4, d_model=128, context=48, vocab_size=9903)
  small_text(c, corpora=CORPORA, tokenizer=TOKENIZER, batch_size=32, steps=10_000, eval_rows=100)
  c.data.kwargs.context = 48
  c.optimizer.learning_rate = 1e-3
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 1000
  c.sample_prompts = ('When Mary and John went to the store, John gave a drink to',)
  if arg == 'smoke':
    c.model.update(n_layer=2, n_head=4, d_model=32, context=24)  # an IOI prompt is <= 21
    small_text(c, corpora=CORPORA, tokenizer=TOKENIZER, batch_size=8, steps=4, eval_rows=8)
    c.data.kwargs.context = 24
    c.eval_batch_size = 16
  elif arg is not None:
    raise ValueError(f'ioi_gpt: unknown variant {arg!r} (smoke)')
  return c
