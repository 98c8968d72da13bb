"""Transformer (pre-LN, d_model 256, 3+3 layers, 4 heads, FFN 1024) translating Spanish Bible
verses (Reina-Valera 1909) into English (World English Bible), offline: jdl.data.bible_pairs.

30,931 verse pairs aligned by reference; held out: 1,000 random test verses and 500 validation
verses spread over every book, and the whole book of Acts (1,003 verses, the out-of-distribution
test). Joint BPE of 8,000 subwords trained on the 28,428 training verses; packed rows of 128
tokens (a verse is ~31 subwords, the longest 165), batch 24 rows (~3,000 target tokens a step);
Adam (0.9, 0.98, 1e-9) with the paper's warm-up and inverse-square-root decay; label smoothing
0.1; dropout 0.1. After training both held-out sets are translated with beam search (4 beams,
length penalty 0.6) and scored with sacrebleu (signatures in results.json).

Launch:
  jdl train --config experiments/transformer/bible_es_en.py --workdir runs/transformer/es_en
  jdl translate --workdir runs/transformer/es_en "En el principio era el Verbo."
  # validation BLEU against time (the loop plus a BLEU hook at every evaluation):
  python -m jdl.transformer.race --framework jdl --config experiments/transformer/bible_es_en.py \\
      --workdir runs/transformer/es_en_curve --config.max_seconds=1200

Expected (2 shared CPU cores): the learning curve and scores in docs/transformer.md. Variants:
`:en-es` (the other direction), `:small` (d_model 128, 2+2 layers, FFN 512), `:race` (60 minutes
of wall time, greedy decoding: jdl/transformer/race.py), `:smoke` (a tiny model, a few steps:
the test); combine with commas (`:race,en-es`).
"""

import ml_collections

from jdl.config import base_config

VARIANTS = {'en-es', 'es-en', 'small', 'race', 'smoke'}


def get_config(arg: str | None = None):
  options = set((arg or '').split(',')) - {''}
  unknown = options - VARIANTS
  if unknown:
    raise ValueError(
      f'bible_es_en: unknown variant(s) {sorted(unknown)} ({", ".join(sorted(VARIANTS))}; '
      'combine with commas)'
    )
  c = base_config()
  c.task = 'translation'
  c.model = ml_collections.ConfigDict(
    dict(
      name='transformer',
      vocab_size=8000,
      d_model=256,
      n_heads=4,
      d_ff=1024,
      n_encoder_layers=3,
      n_decoder_layers=3,
      dropout=0.1,
      pre_ln=True,
      max_len=320,  # room for decoding: the longest verse is 165 subwords, plus 16
    )
  )
  c.data = ml_collections.ConfigDict(
    dict(
      name='bible_pairs',
      kwargs=ml_collections.ConfigDict(
        dict(
          direction='en-es' if 'en-es' in options else 'es-en',
          vocab_size=8000,
          length=128,
          seed=0,
          limit=0,
          held_out_book='Acts',
          packed=True,
        )
      ),
    )
  )
  c.label_smoothing = 0.1
  c.decode = ml_collections.ConfigDict(
    dict(
      beam_size=4,
      length_penalty=0.6,
      max_extra_tokens=16,
      test_sentences=-1,
      validation_sentences=100,
    )
  )
  c.batch_size = 24
  c.eval_batch_size = 24
  c.num_train_steps = 8_000  # ~26 epochs; about 4 hours on 2 idle cores (1.8 s a step)
  c.steps_per_call = 10
  c.log_every_steps = 100
  c.eval_every_steps = 250
  c.checkpoint_every_steps = 500
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3  # the peak, reached at the end of the warm-up
  c.optimizer.schedule = 'rsqrt'
  c.optimizer.warmup_steps = 500
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(b1=0.9, b2=0.98, eps=1e-9))
  c.mesh.update(data=1, fsdp=1, tensor=1)
  if 'small' in options:
    c.model.update(d_model=128, d_ff=512, n_encoder_layers=2, n_decoder_layers=2)
    c.optimizer.learning_rate = 2e-3
  if 'smoke' in options:
    c.model.update(
      vocab_size=1000, d_model=32, n_heads=8, d_ff=64, n_encoder_layers=2, n_decoder_layers=2
    )
    c.model.max_len = 128
    c.data.kwargs.update(vocab_size=1000, length=64, limit=200)
    c.decode.update(beam_size=2, max_extra_tokens=8, test_sentences=8, validation_sentences=4)
    c.batch_size = 8
    c.eval_batch_size = 8
    c.num_train_steps = 4
    c.steps_per_call = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.optimizer.warmup_steps = 2
  if 'race' in options:
    # Equal wall time against PyTorch: the budget ends the run; both decode greedily.
    c.max_seconds = 60 * 60.0
    c.num_train_steps = 1_000_000
    c.eval_every_steps = 400  # every 5-7 minutes of one thread: the curve's points
    c.optimizer.warmup_steps = 300  # ~10% of the ~3,000-5,000 steps an hour gives `:small`
    c.checkpoint_every_steps = -1
    c.decode.beam_size = 0
  return c
