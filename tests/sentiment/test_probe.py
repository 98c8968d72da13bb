"""The probe pipeline's parts on tiny models and planted features: batched features equal one
text at a time, the per-byte trace ends at the final state, the single-unit threshold and the L1
selection find a planted unit, permutation gives chance, steering holds the unit."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jdl.train.task  # noqa: F401  (turns off eager sharding, as the loop runs models)
from jdl.models import rnn, sampling
from jdl.sentiment import features, probe, steer


def _model(seed=0, width=8):
  return rnn.CharRNN('mlstm', 256, 6, width, unroll=2, rngs=nnx.Rngs(seed))


def test_batched_features_equal_one_text_at_a_time_and_the_trace():
  model = _model()
  texts = ['a fine film', 'dull.', 'x' * 300, 'café, not bad at all']
  feats = features.final_states(model, texts, batch_size=3)
  for i, text in enumerate(texts):
    tokens = jnp.asarray(np.frombuffer(text.encode(), np.uint8)[None].astype(np.int32))
    _, carries = model(tokens)
    c, h = carries[-1]
    np.testing.assert_allclose(feats['cell'][i], c[0], atol=1e-5)
    np.testing.assert_allclose(feats['hidden'][i], h[0], atol=1e-5)
    trace = features.byte_trace(model, text.encode())
    assert trace['cell'].shape == (len(text.encode()), 8)
    np.testing.assert_allclose(trace['cell'][-1], c[0], atol=1e-5)
  cut = features.final_states(model, texts, max_bytes=5, keep='last')
  np.testing.assert_allclose(
    cut['cell'][2], features.final_states(model, ['x' * 5])['cell'][0], atol=1e-6
  )


def test_single_unit_threshold_by_hand():
  values = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
  labels = np.array([0, 0, 1, 0, 1, 1])
  got = probe.threshold_accuracy(values, labels, np.array([0.0, 0.9, 0.45]), np.array([0, 1, 1]))
  # best cut: between 0.2 and 0.3 (5/6) ties with 0.4-0.5 (5/6); the first is taken
  assert got['sign'] == 1 and abs(got['threshold'] - 0.25) < 1e-9
  assert abs(got['train_accuracy'] - 5 / 6) < 1e-9 and got['test_accuracy'] == 1.0
  flipped = probe.threshold_accuracy(-values, labels, -values, labels)
  assert flipped['sign'] == -1 and abs(flipped['train_accuracy'] - 5 / 6) < 1e-9


def _planted(seed=0, n=(200, 100, 100), width=32, unit=7, strength=2.0):
  rng = np.random.default_rng(seed)
  feats, labels = {}, {}
  for split, m in zip(('train', 'validation', 'test'), n, strict=True):
    y = rng.permutation(np.arange(m) % 2)
    x = rng.normal(size=(m, width))
    x[:, unit] += strength * (2 * y - 1)  # one unit that reads the label
    feats[split], labels[split] = x, y
  return feats, labels


def test_l1_probe_finds_the_planted_unit_and_permutation_gives_chance():
  feats, labels = _planted()
  found = probe.best_unit(feats, labels)
  assert found['unit'] == 7 and found['test_accuracy'] > 0.9 and found['probe_test_accuracy'] > 0.9
  null = probe.permutation_null(feats, labels, found['C'], permutations=20)
  assert 0.4 < np.mean(null) < 0.6 and max(null) < found['test_accuracy']
  curve = probe.data_efficiency(feats, labels, None, sizes=(10, 0), resamples=3)
  assert curve['sizes'] == [10, 200] and len(curve['probe'][0]) == 3 and len(curve['probe'][1]) == 1
  assert np.mean(curve['probe'][1]) > 0.9


def test_steering_holds_the_unit_and_equals_a_hand_written_loop():
  model, unit, value = _model(seed=3, width=8), 2, 0.75

  class Bytes:
    encode = staticmethod(lambda s: np.frombuffer(s.encode(), np.uint8).astype(np.int32))
    decode = staticmethod(lambda ids: bytes(np.asarray(ids, np.uint8).tolist()).decode('latin-1'))

  prefill, step = steer._functions(unit, value)
  out = np.asarray(
    sampling.generate(
      model, jnp.asarray([[104, 105]]), 6, temperature=0.0, prefill=prefill, step=step
    )
  )
  carries, tokens = None, [104, 105]
  for t in tokens:
    logits, carries = model(jnp.asarray([[t]]), carries)
    carries = steer._clamp(carries, unit, value)
  for _ in range(6):
    tokens.append(int(logits[0, -1].argmax()))
    logits, carries = model(jnp.asarray([[tokens[-1]]]), carries)
    carries = steer._clamp(carries, unit, value)
    assert float(carries[-1][0][0, unit]) == value
  assert out[0].tolist() == tokens
  texts = steer.steered_samples(model, Bytes, 'hi', unit, value, n=2, max_new_tokens=5)
  assert len(texts) == 2 and all(t.startswith('hi') and len(t) == 7 for t in texts)
  assert jax.tree.leaves(carries)  # the loop ran
