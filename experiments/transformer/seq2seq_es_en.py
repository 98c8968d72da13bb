"""The lecture's two recurrent networks on the Spanish-English Bible verses (the data, tokenizer,
decoding and scoring of experiments/transformer/bible_es_en.py): an LSTM encoder-decoder
(Sutskever et al. 2014: 2+2 layers of 256 units, the source read reversed, its final state the
decoder's start) and, with `:attention`, the same with additive attention over a bidirectional
encoder (Bahdanau et al. 2015: 1 bidirectional layer of 2 x 256, a 256-unit decoder,
alignment width 256). jdl.models.seq2seq has the equations.

One verse pair a row, right-padded to 96 tokens (a recurrent network reads one sentence a row;
the 14 of 28,428 training verses longer than that are left out),
batch 32; Adam with a 500-step warm-up to 1e-3 and inverse-square-root decay, gradients clipped
at norm 1 (Sutskever's clipping at 5 of the summed gradient, per token here); label smoothing 0.1;
dropout 0.1. After training both held-out sets are translated with beam search (4 beams).

Launch:
  jdl train --config experiments/transformer/seq2seq_es_en.py --workdir runs/transformer/rnn_es_en
  jdl train --config experiments/transformer/seq2seq_es_en.py:attention \\
      --workdir runs/transformer/attn_es_en
  python -m jdl.transformer.race --framework jdl \\
      --config experiments/transformer/seq2seq_es_en.py:attention \\
      --workdir runs/transformer/attn_es_en_curve --config.max_seconds=1200

Expected: docs/transformer.md. Variants: `:attention`, `:en-es`, `:smoke` (a tiny model, a few
steps: the test); combine with commas.
"""

import ml_collections

from jdl.config import base_config

VARIANTS = {'attention', 'en-es', 'es-en', 'smoke'}


def get_config(arg: str | None = None):
  options = set((arg or '').split(',')) - {''}
  unknown = options - VARIANTS
  if unknown:
    raise ValueError(
      f'seq2seq_es_en: unknown variant(s) {sorted(unknown)} ({", ".join(sorted(VARIANTS))}; '
      'combine with commas)'
    )
  attention = 'attention' in options
  c = base_config()
  c.task = 'translation'
  c.model = ml_collections.ConfigDict(
    dict(
      name='seq2seq',
      vocab_size=8000,
      embed_dim=256,
      hidden_size=256,
      num_layers=1 if attention else 2,
      attention=attention,
      attention_dim=256,
      dropout=0.1,
      max_len=320,
    )
  )
  c.data = ml_collections.ConfigDict(
    dict(
      name='bible_pairs',
      kwargs=ml_collections.ConfigDict(
        dict(
          direction='en-es' if 'en-es' in options else 'es-en',
          vocab_size=8000,
          length=96,
          seed=0,
          limit=0,
          held_out_book='Acts',
          packed=False,
        )
      ),
    )
  )
  c.label_smoothing = 0.1
  c.decode = ml_collections.ConfigDict(
    dict(beam_size=4, length_penalty=0.6, max_extra_tokens=16, test_sentences=-1)
  )
  c.batch_size = 32
  c.eval_batch_size = 64
  c.num_train_steps = 20_000
  c.steps_per_call = 10
  c.log_every_steps = 100
  c.eval_every_steps = 250
  c.checkpoint_every_steps = 500
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'rsqrt'
  c.optimizer.warmup_steps = 500
  c.optimizer.grad_clip_norm = 1.0
  c.mesh.update(data=1, fsdp=1, tensor=1)
  if 'smoke' in options:
    c.model.update(vocab_size=1000, embed_dim=16, hidden_size=16, attention_dim=16, max_len=128)
    c.data.kwargs.update(vocab_size=1000, length=64, limit=200)
    c.decode.update(beam_size=2, max_extra_tokens=8, test_sentences=8)
    c.batch_size = 8
    c.eval_batch_size = 8
    c.num_train_steps = 4
    c.steps_per_call = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.optimizer.warmup_steps = 2
  return c
