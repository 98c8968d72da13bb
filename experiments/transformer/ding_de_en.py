"""Transformer (pre-LN, d_model 256, 3+3 layers, 4 heads, FFN 1024) translating the Ding
dictionary's German-English sentence pairs, offline.

~18.2k training pairs, 503 validation, 994 test (no test German sentence occurs in training);
joint BPE of 8,000 subwords trained on the training split; packed rows of 64 tokens, batch 32
rows (~1,900 target tokens a step); Adam (0.9, 0.98, 1e-9) with the paper's warm-up and
inverse-square-root decay; label smoothing 0.1; dropout 0.1. After training, the test set is
translated with beam search (4 beams, length penalty 0.6) and scored with sacrebleu
(`decode.test_sentences`: how many test sentences, -1 all, 0 none).

Launch:
  jdl train --config experiments/transformer/ding_de_en.py --workdir runs/transformer/de_en
  jdl train --config experiments/transformer/ding_de_en.py:en-de --workdir runs/transformer/en_de
  jdl translate --workdir runs/transformer/de_en "Ich bin Student."

Expected (2 shared CPU cores): BLEU and chrF in docs/transformer.md. Variants: `:en-de` (the other
direction), `:post-ln` (the paper's arrangement), `:small` (d_model 128, 2+2 layers, FFN 512, 4,000
subwords), `:race` (`:small` for 30 minutes of wall time against PyTorch, greedy decoding:
jdl/transformer/race.py), `:smoke` (a tiny model, a few steps: the test); combine with commas
(`:race,en-de`).
"""

import ml_collections

from jdl.config import base_config


def get_config(arg: str | None = None):
  options = set((arg or '').split(',')) - {''}
  unknown = options - {'en-de', 'de-en', 'post-ln', 'small', 'race', 'smoke'}
  if unknown:
    raise ValueError(
      f'ding_de_en: unknown variant(s) {sorted(unknown)} '
      '(en-de, de-en, post-ln, small, race, smoke; combine with commas)'
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
      pre_ln='post-ln' not in options,
      max_len=256,
    )
  )
  c.data = ml_collections.ConfigDict(
    dict(
      name='ding',
      kwargs=ml_collections.ConfigDict(
        dict(
          direction='en-de' if 'en-de' in options else 'de-en',
          vocab_size=8000,
          length=64,
          seed=0,
          limit=0,
        )
      ),
    )
  )
  c.label_smoothing = 0.1  # the objective's, not the model's: jdl.tasks.translation
  c.decode = ml_collections.ConfigDict(
    dict(
      beam_size=4,
      length_penalty=0.6,
      max_extra_tokens=16,
      test_sentences=-1,
      validation_sentences=0,
    )
  )
  c.batch_size = 32
  c.eval_batch_size = 32
  c.num_train_steps = 2400
  c.steps_per_call = 10
  c.log_every_steps = 100
  c.eval_every_steps = 400
  c.checkpoint_every_steps = 400
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3  # the peak, reached at the end of the warm-up
  c.optimizer.schedule = 'rsqrt'
  c.optimizer.warmup_steps = 400
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(b1=0.9, b2=0.98, eps=1e-9))
  c.mesh.update(data=1, fsdp=1, tensor=1)
  if 'small' in options or 'race' in options:
    # A quarter of the compute a step (d_model 128, 2+2 layers, 4,000 subwords): what the
    # shared 2-core machine could train in half an hour (docs/transformer.md).
    c.model.update(vocab_size=4000, d_model=128, d_ff=512, n_encoder_layers=2, n_decoder_layers=2)
    c.data.kwargs.vocab_size = 4000
    c.optimizer.learning_rate = 2e-3
    c.optimizer.warmup_steps = 200
  if 'smoke' in options:
    c.model.update(
      vocab_size=1000,
      d_model=32,
      n_heads=8,
      d_ff=64,
      n_encoder_layers=2,
      n_decoder_layers=2,
      max_len=64,
    )
    c.data.kwargs.update(vocab_size=1000, length=32, limit=200)
    c.decode.update(beam_size=2, max_extra_tokens=8, test_sentences=16)
    c.batch_size = 16
    c.eval_batch_size = 16
    c.num_train_steps = 4
    c.steps_per_call = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.optimizer.warmup_steps = 2
  if 'race' in options:
    # Equal wall time: the budget, not the step count, ends the run; both frameworks decode
    # greedily (nn.Transformer has no beam search).
    c.max_seconds = 30 * 60.0
    c.num_train_steps = 100_000
    c.eval_every_steps = 100
    c.checkpoint_every_steps = -1
    c.decode.beam_size = 0
  return c
