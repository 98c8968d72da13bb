"""The shared shape of every GPT experiment config: `experiments/gpt/*.py` call `gpt_config`
with their published (or small) shapes and change what differs."""

from __future__ import annotations

import ml_collections

from jdl.config import base_config


def gpt_config(
  *,
  n_layer: int,
  n_head: int,
  d_model: int,
  context: int,
  vocab_size: int,
  post_ln: bool = False,
  dropout: float = 0.0,
) -> ml_collections.ConfigDict:
  c = base_config()
  c.task = 'lm'
  c.model = ml_collections.ConfigDict(
    dict(
      name='gpt',
      vocab_size=vocab_size,
      context=context,
      n_layer=n_layer,
      n_head=n_head,
      d_model=d_model,
      d_ff=0,
      dropout=dropout,
      post_ln=post_ln,
      scan_layers=False,
      remat=False,
    )
  )
  # A shape-only config has no data; the small configs below set data.name = 'text'.
  c.data = ml_collections.ConfigDict(
    dict(
      name='none',
      kwargs=ml_collections.ConfigDict(
        dict(corpora=(('kjv', 1.0),), tokenizer='gpt2', context=context, train_rows=0, eval_rows=0)
      ),
    )
  )
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 6e-4
  c.optimizer.schedule = 'cosine'
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(b1=0.9, b2=0.95, weight_decay=0.1))
  c.optimizer.grad_clip_norm = 1.0
  c.sample_prompts = ('And God said',)
  return c


def large(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Billions of parameters: one compiled block scanned over layers, activations recomputed in
  the backward pass, bfloat16 compute, and FSDP over every device by default."""
  c.model.scan_layers = True
  c.model.remat = True
  c.dtype = 'bfloat16'
  c.mesh.update(data=1, fsdp=-1, tensor=1)
  return c


# GPT-3's optimisation (Brown et al. 2020, Appendix B), which the public GPT-2 reproductions
# (nanoGPT, llm.c) also follow: a linear warm-up over the first 375M tokens, then cosine decay
# to 10% of the rate.
WARMUP_TOKENS = 375e6
FINAL_FRACTION = 0.1


def gpt3_schedule(
  c: ml_collections.ConfigDict, *, learning_rate: float, batch_size: int, tokens: float
) -> ml_collections.ConfigDict:
  """`tokens` in steps of `batch_size` rows of the model's context, at GPT-3's schedule (AdamW
  b1 0.9, b2 0.95, weight decay 0.1 and clipping 1.0 are `gpt_config`'s already)."""
  per_step = batch_size * c.model.context
  c.batch_size = batch_size
  c.num_train_steps = round(tokens / per_step)
  c.optimizer.learning_rate = learning_rate
  c.optimizer.warmup_steps = round(WARMUP_TOKENS / per_step)
  c.optimizer.final_fraction = FINAL_FRACTION
  return c


def web_text(
  c: ml_collections.ConfigDict,
  *,
  corpus: str,
  eval_rows: int,
  read_threads: int = 4,
  length_sample: int = 256,
  data_dir: str = '',
) -> ml_collections.ConfigDict:
  """Documents of `corpus` (a tfds name read as array_record, or a local corpus), tokenized with
  GPT-2's BPE and packed into rows of the model's context + 1 tokens (jdl.data.webtext)."""
  c.data.name = 'webtext'
  c.data.kwargs = ml_collections.ConfigDict(
    dict(
      corpus=corpus,
      tokenizer='gpt2',
      context=c.model.context,
      eval_rows=eval_rows,
      read_threads=read_threads,
      length_sample=length_sample,
      data_dir=data_dir,
    )
  )
  return c


def small_text(
  c: ml_collections.ConfigDict,
  *,
  corpora,
  tokenizer: str,
  batch_size: int,
  steps: int,
  eval_rows: int,
) -> ml_collections.ConfigDict:
  """A config that trains here: one pass over `steps * batch_size` rows drawn by the mixture."""
  c.data.name = 'text'
  c.data.kwargs.update(
    corpora=tuple(corpora), tokenizer=tokenizer, train_rows=steps * batch_size, eval_rows=eval_rows
  )
  c.batch_size = batch_size
  c.num_train_steps = steps
  c.eval_batch_size = 64
  c.log_every_steps = max(steps // 10, 1)
  c.eval_every_steps = max(steps // 4, 1)
  c.checkpoint_every_steps = -1
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = max(steps // 20, 1)
  c.optimizer.kwargs.weight_decay = 0.01
  return c
