"""The paper's base Transformer on WMT14 English-German (tfds `wmt14_translate/de-en`), the TPU
recipe: d_model 512, 8 heads, FFN 2048, 6+6 layers, post-LN, dropout 0.1, label smoothing 0.1,
a shared 37,000-subword BPE, Adam (0.9, 0.98, 1e-9) with 4,000 warm-up steps and the
inverse-square-root decay (peak d^-0.5 * 4000^-0.5 = 7.0e-4), 100,000 steps of about 25,000
source and 25,000 target tokens (batch 256 rows of 128 tokens with padding), bfloat16 compute,
data parallel over every chip (`--config.mesh.data=1 --config.mesh.fsdp=-1` for FSDP,
`--config.mesh.tensor=4` adds tensor parallelism).

Launch on every worker of a v4-32 slice:
  jdl train --multihost --config experiments/transformer/wmt14_base.py --workdir gs://BUCKET/wmt14

Data: tfds `wmt14_translate/de-en` prepared in $TFDS_DATA_DIR (array_record), read with
tfds.data_source and grain, tokenized on the fly. Expected: the paper reports 27.3 BLEU en->de
(`:en-de`) on newstest2014 for the base model (its checkpoint average, beam 4, alpha 0.6).
`:smoke` runs the same code on tfds mock data with a tiny model for 4 steps: the tests run it
on 8 simulated CPU devices.
"""

import ml_collections

from jdl.config import base_config


def get_config(arg: str | None = None):
  options = set((arg or '').split(',')) - {''}
  unknown = options - {'en-de', 'de-en', 'smoke'}
  if unknown:
    raise ValueError(f'wmt14_base: unknown variant(s) {sorted(unknown)} (en-de, de-en, smoke)')
  c = base_config()
  c.task = 'translation'
  c.model = ml_collections.ConfigDict(
    dict(
      name='transformer',
      vocab_size=37000,
      d_model=512,
      n_heads=8,
      d_ff=2048,
      n_encoder_layers=6,
      n_decoder_layers=6,
      dropout=0.1,
      pre_ln=False,
      max_len=256,
    )
  )
  c.data = ml_collections.ConfigDict(
    dict(
      name='wmt14',
      kwargs=ml_collections.ConfigDict(
        dict(
          direction='en-de' if 'en-de' in options else 'de-en',
          vocab_size=37000,
          length=128,
          seed=0,
          limit=0,
          tokenizer_sentences=1_000_000,
        )
      ),
    )
  )
  c.label_smoothing = 0.1  # the objective's, not the model's: jdl.tasks.translation
  c.decode = ml_collections.ConfigDict(
    dict(
      beam_size=4,
      length_penalty=0.6,
      max_extra_tokens=50,
      test_sentences=-1,
      validation_sentences=0,
    )
  )
  c.batch_size = 256
  c.eval_batch_size = 256
  c.num_train_steps = 100_000
  c.log_every_steps = 100
  c.eval_every_steps = 5000
  c.checkpoint_every_steps = 2000
  c.dtype = 'bfloat16'
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 512**-0.5 * 4000**-0.5
  c.optimizer.schedule = 'rsqrt'
  c.optimizer.warmup_steps = 4000
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(b1=0.9, b2=0.98, eps=1e-9))
  if 'smoke' in options:
    c.model.update(
      vocab_size=320,
      d_model=32,
      n_heads=8,
      d_ff=64,
      n_encoder_layers=1,
      n_decoder_layers=1,
      max_len=64,
    )
    c.data.kwargs.update(vocab_size=320, length=32, tokenizer_sentences=48)
    c.decode.update(beam_size=2, max_extra_tokens=8, test_sentences=8)
    c.batch_size = 16
    c.eval_batch_size = 16
    c.num_train_steps = 4
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.dtype = 'float32'
    c.optimizer.warmup_steps = 2
  return c
