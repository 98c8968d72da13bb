"""jdl.data.webtext: documents tokenized with GPT-2's BPE inside the grain pipeline and packed
to the context, read from local text and from a tfds array_record directory laid out as C4's;
the GPT-2 small recipe (C4 on v5litepod-16) and its smoke run through the loop."""

import grain
import numpy as np
import pytest

from jdl import config as config_lib
from jdl import sharding
from jdl.data import pipeline, tokenizers, webtext
from jdl.data.errors import DataError
from jdl.train import loop, optim
from tests.gpt.test_train import needs_bpe, needs_kjv

RECIPE = 'experiments/gpt/gpt2_small.py'


def token_stream(docs) -> np.ndarray:
  """The reference: each document's BPE (tiktoken on the whole text), <|endoftext|> before it."""
  enc = tokenizers.gpt2().encoding
  return np.concatenate([[enc.eot_token, *enc.encode_ordinary(d)] for d in docs])


@needs_kjv
@needs_bpe
def test_rows_are_full_and_are_the_documents_in_order_with_end_of_text_between():
  docs = webtext.passages('kjv', 'validation')  # 16 passages of consecutive verses
  stream = token_stream(docs)
  context = 50
  rows = np.stack([row['tokens'] for row in webtext.packed(docs, context, read_threads=2)])
  # Every row is full; together they are the stream up to its last full row, nothing padded.
  assert rows.shape == (len(stream) // (context + 1), context + 1) and rows.dtype == np.int32
  np.testing.assert_array_equal(rows.reshape(-1), stream[: rows.size])
  eot = tokenizers.gpt2().eot
  starts = np.flatnonzero(stream == eot)
  assert len(starts) == len(docs) and (rows == eot).sum() == (starts < rows.size).sum()
  text = tokenizers.gpt2().decode(rows.reshape(-1))
  assert text.startswith('<|endoftext|>' + docs[0] + '<|endoftext|>' + docs[1][:200])
  # The evaluation rows are the same packing, cut at `limit`.
  np.testing.assert_array_equal(webtext.evaluation_rows(docs, context, 7), rows[:7])


@needs_kjv
@needs_bpe
def test_training_batches_are_each_process_share_of_the_shuffled_documents_and_resume():
  docs = webtext.passages('kjv', 'validation')
  context, seed = 40, 7
  source = webtext.PackedDocuments(docs, context, sample=len(docs))
  assert abs(len(source) - len(token_stream(docs)) // (context + 1)) <= 1  # every document read
  order = list(grain.MapDataset.range(len(docs)).shuffle(seed=seed))
  assert order != list(range(len(docs))) and sorted(order) == list(range(len(docs)))
  for p in range(2):
    batches = pipeline.train_dataset(source, 4, seed, p, 2, steps_per_call=3)
    first = next(iter(batches))['tokens']
    assert first.shape == (3, 2, context + 1)  # 3 steps of this process's 2 rows
    mine = token_stream([docs[i] for i in order[p::2]])
    np.testing.assert_array_equal(first.reshape(-1), mine[: first.size])

  it = iter(pipeline.train_dataset(source, 4, seed))
  for _ in range(5):
    next(it)
  state = it.get_state()  # mid-document: the packer holds a remainder
  expected = [next(it)['tokens'] for _ in range(3)]
  resumed = iter(pipeline.train_dataset(source, 4, seed))
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)['tokens'], want)


@pytest.fixture(scope='module')
def c4_dir(tmp_path_factory):
  """A tfds array_record directory laid out as the prepared C4 (`c4/en/3.0.1`, a 'text'
  feature) holding passages of the King James Bible, built here without TensorFlow."""
  import tensorflow_datasets as tfds

  splits = {
    'train': webtext.passages('kjv', 'train')[:24],
    'validation': webtext.passages('kjv', 'validation'),
  }

  class C4(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version('3.0.1')
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name='en')]
    url_infos = None  # nothing to download (tfds would look for a checksums file beside the code)

    def _info(self):
      features = tfds.features.FeaturesDict({'text': tfds.features.Text()})
      return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(split) for split in splits}

    def _generate_examples(self, split):
      for i, doc in enumerate(splits[split]):
        yield i, {'text': doc}

  root = tmp_path_factory.mktemp('tensorflow_datasets')
  C4(config='en', data_dir=str(root), file_format='array_record').download_and_prepare()
  return root, splits


@needs_kjv
@needs_bpe
def test_the_recipe_reads_c4_through_tfds_array_record(c4_dir):
  root, splits = c4_dir
  data = webtext.load(corpus='c4/en:3.0.1', context=32, eval_rows=8, data_dir=str(root))
  stored = webtext.documents('c4/en:3.0.1', 'validation', str(root))
  texts = [stored[i]['text'].decode() for i in range(len(stored))]
  assert sorted(texts) == sorted(splits['validation'])  # tfds stores them in its own order
  assert set(data.evals) == {'validation'}
  np.testing.assert_array_equal(
    data.evals['validation']['tokens'].reshape(-1), token_stream(texts)[: 8 * 33]
  )
  batch = next(iter(data.train.batches(4, seed=0)))
  assert batch['tokens'].shape == (4, 33) and batch['tokens'].dtype == np.int32
  assert batch['tokens'].max() < 50257
  with pytest.raises(DataError, match='allennlp-tensorflow-datasets'):
    webtext.load(corpus='c4/en:3.0.1', data_dir=str(root / 'absent'))


@needs_kjv
@needs_bpe
def test_smoke_trains_through_the_loop_on_packed_rows(tmp_path):
  config = config_lib.load(RECIPE + ':smoke')
  with config.unlocked():
    # One device and no samples at the end keep it short (test_train runs a GPT with FSDP on 8
    # devices); the data path is the recipe's.
    config.mesh.fsdp, config.sample_prompts = 1, ()
  result = loop.train_and_evaluate(config, tmp_path)
  losses = [h['loss'] for h in result['history'] if 'loss' in h]
  assert result['step'] == 6 and len(losses) == 6 and np.all(np.isfinite(losses))
  assert losses[0] == pytest.approx(np.log(50257), abs=0.1)  # uniform over the vocabulary
  assert losses[-1] < losses[0] - 0.2  # learning from the packed rows
  assert np.isfinite(result['final']['validation_loss'])


def test_recipe_is_half_a_million_tokens_a_step_at_gpt3_schedule_on_v5e_16():
  c = config_lib.load(RECIPE)
  tokens = c.batch_size * c.data.kwargs.context
  assert (c.batch_size, tokens) == (512, 524_288)
  assert c.num_train_steps * tokens == pytest.approx(10e9, rel=1e-4)
  assert sharding.mesh_shape(c.mesh, 16) == (1, 16, 1)  # FSDP over v5litepod-16's chips
  assert (c.batch_size // c.grad_accum_steps) % 16 == 0  # microbatches split over the chips
  o = c.optimizer
  assert (o.name, o.learning_rate, o.grad_clip_norm, o.warmup_steps) == ('adamw', 6e-4, 1.0, 715)
  assert (o.kwargs.b1, o.kwargs.b2, o.kwargs.weight_decay) == (0.9, 0.95, 0.1)
  rate = optim.schedule(o, c.num_train_steps)
  assert float(rate(0)) == 0.0 and float(rate(715)) == pytest.approx(6e-4)
  assert float(rate(c.num_train_steps)) == pytest.approx(6e-5)  # cosine to 10%
  assert (c.dtype, c.data.name, c.data.kwargs.corpus) == ('bfloat16', 'webtext', 'c4/en:3.0.1')
