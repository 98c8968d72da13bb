"""GPT-2 XL, 1.5B (Radford et al. 2019): 48 layers, d 1600, 25 heads, context 1024,
vocabulary 50,257.

A shape: count it and estimate its compute without allocating anything:
  jdl params --config experiments/gpt/gpt2_xl.py
  jdl compute --config experiments/gpt/gpt2_xl.py --tokens 300B --mfu 0.4 --chips 1024
Training it needs a web-scale corpus that jdl does not ship offline; see docs/gpt.md for the
counts.
"""

from jdl.gpt.configs import gpt_config, large


def get_config(arg: str | None = None):
  c = gpt_config(
    n_layer=48, n_head=25, d_model=1600, context=1024, vocab_size=50257, post_ln=False, dropout=0.1
  )
  large(c)  # scan over layers, remat, bfloat16, FSDP
  if arg is not None:
    raise ValueError(f'gpt2_xl: unknown variant {arg!r}')
  return c
