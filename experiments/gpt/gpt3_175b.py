"""GPT-3 175B (Brown et al. 2020, Table 2.1): 96 layers, d 12288, 96 heads of 128, context
2048, vocabulary 50,257.

A shape: count it and estimate its compute without allocating anything:
  jdl params --config experiments/gpt/gpt3_175b.py
  jdl compute --config experiments/gpt/gpt3_175b.py --tokens 300B --mfu 0.4 --chips 1024
Training it needs a web-scale corpus that jdl does not ship offline; see docs/gpt.md for the
counts.
"""

from jdl.gpt.configs import gpt_config, large


def get_config(arg: str | None = None):
  c = gpt_config(
    n_layer=96, n_head=96, d_model=12288, context=2048, vocab_size=50257, post_ln=False, dropout=0.1
  )
  large(c)  # scan over layers, remat, bfloat16, FSDP
  if arg is not None:
    raise ValueError(f'gpt3_175b: unknown variant {arg!r}')
  return c
