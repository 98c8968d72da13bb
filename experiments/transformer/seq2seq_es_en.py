"""The lecture's two recurrent networks on the Spanish-English Bible verses (the data, tokenizer,
decoding and scoring of experiments/transformer/bible_es_en.py): an LSTM encoder-decoder
(Sutskever et al. 2014: 2+2 layers of 256 units, the source read reversed, its final state the
decoder's start) and, with `:attention`, the same with additive attention over a bidirectional
encoder (Bahdanau et al. 2015: 1 bidirectional layer of 2 x 256, a 256-unit decoder,
alignment width 256). jdl.models.seq2seq has the equations.

Rows: the Transformer's (experiments/transformer/bible_es_en.py): verse pairs packed first-fit
into rows of 128 source and 128 target subwords (jdl.data.ding.pack; 97% of the target slots
hold a token), told apart by segment ids; the recurrences restart at every pair (encoder carries
zeroed in both directions, the decoder started from its own pair's encoder state, attention only
over its own pair's source: jdl.models.seq2seq), so a pair's loss is what it is alone in a row.
One verse a row, padded to 96 as before, spent 2/3 of every scan step on padding (a verse is ~32
subwords). Batch 8 rows (~30 verse pairs, ~1,000 target tokens a step, as the 32 one-pair rows
before); the one training verse longer than 128 subwords (165) is left out, as for the
Transformer. `:unpacked` is the old layout (one pair a row, 96 tokens, batch 32), for comparison.
Adam with a 500-step warm-up to 1e-3 and inverse-square-root decay, gradients clipped
at norm 1 (Sutskever's clipping at 5 of the summed gradient, per token here); label smoothing 0.1;
dropout 0.1. After training both held-out sets are translated with beam search (4 beams).

Launch (the runs of `jdl figures translation_length`: the Transformer race's protocol, one
thread for 60 minutes, greedy; the two can run at once, each pinned to its own core):
  python -m jdl.transformer.race --framework jdl --threads 1 --eval-sentences 100 \\
      --config experiments/transformer/seq2seq_es_en.py:race --workdir runs/transformer/rnn_es_en
  python -m jdl.transformer.race --framework jdl --threads 1 --eval-sentences 100 \\
      --config experiments/transformer/seq2seq_es_en.py:race,attention \\
      --workdir runs/transformer/attn_es_en
  jdl train --config experiments/transformer/seq2seq_es_en.py:attention --workdir WORKDIR
      (the whole 20,000 steps with beam 4 at the end: not measured to the end here)

Expected: docs/transformer.md. Variants: `:attention`, `:en-es`, `:race` (60 minutes of wall
time, greedy decoding), `:unpacked` (one pair a row), `:smoke` (a tiny model, a few steps: the
test); combine with commas.
"""

import ml_collections

from jdl.config import base_config

VARIANTS = {'attention', 'en-es', 'es-en', 'race', 'smoke', 'unpacked'}


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
  c.batch_size = 8  # packed rows of ~3.8 pairs
  c.eval_batch_size = 16
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
  if 'unpacked' in options:
    c.data.kwargs.update(length=96, packed=False)
    c.batch_size = 32
    c.eval_batch_size = 64
  if 'race' in options:
    # The Transformer race's protocol (bible_es_en.py:race): 60 minutes of wall time on one
    # thread, validation BLEU every 400 steps, greedy decoding of the held-out sets at the end.
    c.max_seconds = 60 * 60.0
    c.num_train_steps = 1_000_000
    c.eval_every_steps = 400
    c.checkpoint_every_steps = -1
    c.decode.beam_size = 0
  if 'smoke' in options:
    c.model.update(vocab_size=1000, embed_dim=16, hidden_size=16, attention_dim=16, max_len=128)
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
  return c
