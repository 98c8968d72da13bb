"""GPT-2 small, 124M (Radford et al. 2019): 12 layers, d 768, 12 heads, context 1024,
vocabulary 50,257.

A shape: count it and estimate its compute without allocating anything:
  jdl params --config experiments/gpt/gpt2_small.py
  jdl compute --config experiments/gpt/gpt2_small.py --tokens 300B --mfu 0.4 --chips 1024
Training it needs a web-scale corpus that jdl does not ship offline; see docs/gpt.md for the
counts.
"""

from jdl.gpt.configs import gpt_config


def get_config(arg: str | None = None):
  c = gpt_config(
    n_layer=12, n_head=12, d_model=768, context=1024, vocab_size=50257, post_ln=False, dropout=0.1
  )

  if arg is not None:
    raise ValueError(f'gpt2_small: unknown variant {arg!r}')
  return c
