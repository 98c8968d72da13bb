"""GPT-1 (Radford et al. 2018): 12 layers, d 768, 12 heads, context 512, BPE vocabulary
40,478, post-LN (LayerNorm after each residual sum, no final LayerNorm).

A shape: count it and estimate its compute without allocating anything:
  jdl params --config experiments/gpt/gpt1.py
  jdl compute --config experiments/gpt/gpt1.py --tokens 300B --mfu 0.4 --chips 1024
Training it needs a web-scale corpus that jdl does not ship offline; see docs/gpt.md for the
counts.
"""

from jdl.gpt.configs import gpt_config


def get_config(arg: str | None = None):
  c = gpt_config(
    n_layer=12, n_head=12, d_model=768, context=512, vocab_size=40478, post_ln=True, dropout=0.1
  )

  if arg is not None:
    raise ValueError(f'gpt1: unknown variant {arg!r}')
  return c
