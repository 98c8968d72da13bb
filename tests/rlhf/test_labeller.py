"""The automatic labeller: its classifier task (windows labelled by their review), the
Bradley-Terry preference against NumPy, padding that changes nothing, and the trunk copied from
a language-model run."""

import jax
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.config import ConfigError
from jdl.data import reviews
from jdl.models.gpt import GPTConfig
from jdl.models.scalar_head import ScalarGPT
from jdl.rlhf.labeller import Labeller
from jdl.tasks.sentiment_classifier import review_windows
from jdl.train import loop
from jdl.train.errors import UsageError
from tests.rlhf.small_runs import LABELLER, smoke_runs


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  return smoke_runs(tmp_path_factory.getbasetemp())


@pytest.fixture(scope='module')
def tiny():
  """A random 1-layer classifier with a non-zero head (a fresh head scores everything 0)."""
  model = ScalarGPT(GPTConfig(256, 24, 1, 2, 16), 1, rngs=nnx.Rngs(0))
  model.head_kernel[...] = jax.random.normal(jax.random.key(1), (16, 1))
  model.head_bias[...] = np.array([0.3], np.float32)
  return Labeller(model, 'auto:tiny', temperature=0.5)


def test_windows_are_review_bytes_with_the_review_label():
  w = review_windows('validation', 48, 48, 0)
  texts, labels = reviews.examples('reviews', 'validation')
  first = reviews.ByteTokenizer().encode(texts[0])
  n0 = len(first) // 48
  np.testing.assert_array_equal(w['tokens'][:n0].ravel(), first[: n0 * 48])
  assert (w['label'][:n0] == labels[0]).all()
  assert w['tokens'].shape[1] == 48 and len(w['tokens']) == len(w['label'])
  assert abs(w['label'].mean() - labels.mean()) < 0.05  # both polarities, as the reviews
  assert len(review_windows('validation', 48, 48, 100)['tokens']) == 100


def test_scores_match_one_forward_pass_whatever_the_padding(tiny):
  texts = ['dull', 'superb acting, fast plot']
  got = tiny.logits(texts)
  forward = nnx.jit(lambda model, ids: model(ids)[0, -1, 0])
  for text, score in zip(texts, got, strict=True):
    want = float(forward(tiny.model, reviews.ByteTokenizer().encode(text)[None]))
    assert score == pytest.approx(want, abs=1e-5)
  np.testing.assert_allclose(tiny.logits(texts[::-1]), got[::-1], atol=1e-6)
  np.testing.assert_allclose(tiny.p_positive(texts), 1 / (1 + np.exp(-got)), rtol=1e-12)


def test_bradley_terry_preference_and_sampled_choice(tiny):
  a, b = ['a great film', 'boring', 'fine'], ['awful', 'a joy', 'fine']
  s_a, s_b = tiny.logits(a), tiny.logits(b)
  p = tiny.preference(a, b)
  np.testing.assert_allclose(p, 1 / (1 + np.exp(-(s_a - s_b) / 0.5)), rtol=1e-12)
  assert p[2] == 0.5  # the same text: no preference
  # Ranking two texts is the Bradley-Terry draw: over many draws a comes first with p.
  many = 4000
  orders = tiny.rank([[a[0], b[0]]] * many, np.random.default_rng(0))
  assert (orders[:, 0] == 0).mean() == pytest.approx(p[0], abs=0.03)


def test_plackett_luce_ranking_of_several(tiny):
  texts = ['a great film', 'boring', 'fine', 'a joy']
  s = tiny.logits(texts)
  many = 6000
  orders = tiny.rank([texts] * many, np.random.default_rng(1))
  assert sorted(orders[0].tolist()) == [0, 1, 2, 3]
  # The first of several is chosen with softmax(s / T) ...
  first = np.bincount(orders[:, 0], minlength=4) / many
  want = np.exp(s / 0.5) / np.exp(s / 0.5).sum()
  np.testing.assert_allclose(first, want, atol=0.03)
  # Near temperature 0 the ranking is the order of the scores.
  assert len(set(s.tolist())) == 4
  cold = type(tiny)(tiny.model, 'cold', temperature=1e-6)
  np.testing.assert_array_equal(
    cold.rank([texts, texts[::-1]], np.random.default_rng(0)),
    [np.argsort(-s), np.argsort(-s[::-1])],
  )


def test_bad_input_is_refused(tiny):
  with pytest.raises(UsageError, match='context of 24'):
    tiny.logits(['x' * 25])
  with pytest.raises(UsageError, match='empty'):
    tiny.logits(['ok', ''])
  with pytest.raises(UsageError, match='pairs'):
    tiny.preference(['a'], ['b', 'c'])


def test_smoke_run_loads_as_a_labeller(runs):
  _, labeller_dir = runs
  lab = Labeller.load(labeller_dir)
  assert lab.name == 'auto:labeller' and lab.context == 16
  p = lab.p_positive(['a fine movie', 'bad'])
  assert p.shape == (2,) and ((0 < p) & (p < 1)).all()
  with pytest.raises(UsageError, match='not a labeller'):
    Labeller.load(runs[0])


def test_trunk_starts_from_the_language_model(runs):
  sft_dir, _ = runs
  config = config_lib.load(f'{LABELLER}:smoke')
  with config.unlocked():
    config.init_from = str(sft_dir)
    config.model.update(n_layer=2, n_head=2, d_model=32, context=32)
  from jdl.train.run import load_run

  state = loop.Trainer(config).init_state()
  lm = jax.device_get(load_run(sft_dir).state.params)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params['trunk']), lm)
  assert not np.asarray(state.params['head_kernel']).any()
  with config.unlocked():
    config.model.d_model = 16
  with pytest.raises(ConfigError, match='model.d_model = 32'):
    loop.Trainer(config)


def test_bag_of_words_labeller_sums_the_weights_of_the_words_present(tmp_path):
  import json

  from jdl.rlhf.labeller import BOW_FILE, BowLabeller

  saved = {'vocabulary': {'great': 0, 'bad': 1, 'not bad': 2}, 'coef': [1.5, -2.0, 2.5]}
  (tmp_path / BOW_FILE).write_text(json.dumps(dict(saved, intercept=0.25)))
  lab = Labeller.load(tmp_path, temperature=0.5)
  assert isinstance(lab, BowLabeller) and lab.name == f'auto:{tmp_path.name}'
  texts = ['a great film', 'bad bad', 'not bad , great', 'nothing here']
  np.testing.assert_allclose(lab.logits(texts), [1.75, -1.75, 2.25, 0.25])  # present, not counted
  p = lab.preference(texts[:2], texts[2:])
  np.testing.assert_allclose(p, 1 / (1 + np.exp(-np.array([1.75 - 2.25, -1.75 - 0.25]) / 0.5)))
