"""GPT-3 175B (Brown et al. 2020, Table 2.1): 96 layers, d 12288, 96 heads of 128, context
2048, vocabulary 50,257; 174,604,259,328 parameters.

The recipe compiles and fits on a TPU v5p-2048 slice (1024 chips, 95 GiB each), checked on a
CPU without a TPU:
  jdl compile --config experiments/gpt/gpt3_175b.py --topology v5p-2048
  jdl params --config experiments/gpt/gpt3_175b.py --mesh data=1,fsdp=128,tensor=8
  jdl compute --config experiments/gpt/gpt3_175b.py --tokens 300B --mfu 0.4 --chips 1024

  batch     1,536 sequences of 2048 = 3,145,728 tokens a step (the paper's "3.2M"), as two
            microbatches of 768 (gradient accumulation), 95,367 steps for 300B tokens
  mesh      FSDP 128 x tensor 8: every weight split 1024 ways (heads and MLP columns over the 8
            chips of a tensor group, Megatron-style; the rest over FSDP), a microbatch 6
            sequences per FSDP shard (tensor groups of 4 do not lay out on the 8x8x16 torus)
  memory    scan over the 96 layers, each block rematerialized in the backward pass, bfloat16
            compute with float32 parameters and AdamW state
  schedule  the paper's (Appendix B): AdamW lr 0.6e-4, b1 0.9, b2 0.95, weight decay 0.1, clip
            1.0, warm-up over 375M tokens (119 steps), cosine to 10%

Where it differs from the paper: the paper's cosine ends at 260B tokens and holds 10% for the
last 40B (here it ends at 300B), and its batch ramps up from 32k tokens over the first 4-12B
tokens (here it is full from the start). GPT-3's data mix is not public (`render_gpt3_data_mix`
reproduces the table), so the config has no data; with `jdl.gpt.configs.web_text` it reads C4
like `gpt2_small.py`.

Compiled (docs/gpt.md has the whole report): 44.68 GiB per chip of 90.25 usable, a margin of
45.57 GiB; 3.386e18 FLOPs a step, 18.0 s at MFU 40%: 300B tokens in 19.9 days (the paper's
3,640 PF-days at the same MFU: 19.4 days).
"""

from jdl.gpt.configs import gpt3_schedule, gpt_config, large


def get_config(arg: str | None = None):
  c = gpt_config(
    n_layer=96, n_head=96, d_model=12288, context=2048, vocab_size=50257, post_ln=False, dropout=0.1
  )
  large(c)  # scan over layers, remat, bfloat16, FSDP
  gpt3_schedule(c, learning_rate=0.6e-4, batch_size=1536, tokens=300e9)
  c.grad_accum_steps = 2
  c.mesh.update(data=1, fsdp=-1, tensor=8)  # fsdp = chips / 8: 128 on v5p-2048
  c.log_every_steps = 10
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 500
  if arg is not None:
    raise ValueError(f'gpt3_175b: unknown variant {arg!r}')
  return c
