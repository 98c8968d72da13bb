"""The embedding models' objectives and sparse steps against NumPy references; fastText's hash
and n-grams; GloVe's weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.models import embeddings as emb
from jdl.tasks import embeddings as task_lib
from tests.embeddings import W2V


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


# ---- fastText's hash and n-grams ----------------------------------------------------------------


def test_fnv1a_sign_extends_bytes_as_fasttext():
  # Values of gensim 4.4's ft_hash_bytes (fastText's hash), pinned.
  assert emb.fnv1a_32(b'') == 2166136261
  assert emb.fnv1a_32(b'<ki') == 1468299675
  assert emb.fnv1a_32('café'.encode()) == 1970454601
  assert emb.fnv1a_32('привет'.encode()) == 4033455999

  def unsigned(data):  # the textbook FNV-1a, bytes read as unsigned: differs past ASCII
    h = 2166136261
    for b in data:
      h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h

  assert unsigned(b'<ki') == 1468299675
  assert unsigned('café'.encode()) != 1970454601


def test_char_ngrams_of_where_as_in_the_paper():
  assert emb.char_ngrams('where', 3, 3) == ['<wh', 'whe', 'her', 'ere', 're>']
  grams = emb.char_ngrams('where', 3, 6)
  assert len(grams) == 5 + 4 + 3 + 2 and '<where' in grams and 'where>' in grams
  assert emb.char_ngrams('ki', 3, 6) == ['<ki', '<ki>', 'ki>']
  assert emb.char_ngrams('é', 3, 6) == ['<é>']  # characters, not bytes


def test_fasttext_vector_is_the_mean_and_each_row_gets_the_whole_gradient():
  word = jnp.array([[1.0, 2.0]])
  grams = jnp.array([[3.0, 4.0], [5.0, 0.0]])

  def compose(word, grams):
    return emb.FastText.compose(word, grams.sum(0, keepdims=True), jnp.array([2.0]))

  np.testing.assert_allclose(compose(word, grams), [[3.0, 2.0]])  # (1+3+5)/3, (2+4+0)/3
  g_word, g_grams = jax.grad(lambda w, g: compose(w, g).sum(), (0, 1))(word, grams)
  np.testing.assert_allclose(g_word, [[1.0, 1.0]])
  np.testing.assert_allclose(g_grams, [[1.0, 1.0], [1.0, 1.0]])


def test_fasttext_batch_lists_each_rows_words_and_ngrams_once():
  from jdl.data import words

  c = words.from_sentences([['ab', 'cd', 'ab', 'ab', 'cd', 'ef']])
  sub = emb.Subwords.of(c.words, 1000)
  source = words.CentreSource(c, 1, 0.0, 1, 6, 6, subwords=sub.ragged())
  source.calibrate_subwords(1)
  batch = source.batch(np.array([0]), np.random.default_rng(0))
  listed = [c.words[w] for w in batch['unique_words'][0] if w >= 0]
  assert sorted(listed) == ['ab', 'cd', 'ef'] and len(listed) == 3
  # every context slot points at its word's place in the list
  for ctx, ok, slot in zip(
    batch['context'][0].reshape(-1),
    batch['context_valid'][0].reshape(-1),
    batch['word_slot'][0].reshape(-1),
  ):
    if ok:
      assert batch['unique_words'][0, slot] == ctx
  # each listed word's n-grams, once, owned by it: '<ab>' has '<ab', 'ab>', '<ab>'
  for place, w in enumerate(batch['unique_words'][0]):
    if w >= 0:
      owned = batch['ngrams'][0][(batch['ngram_owner'][0] == place) & (batch['ngrams'][0] >= 0)]
      assert sorted(owned) == sorted(emb.ngram_ids(c.words[w], 1000))
      assert batch['ngram_total'][0, place] == 3
  assert batch['lost'][0] == 0


def test_fasttext_out_of_vocabulary_word_is_the_mean_of_its_ngrams():
  model = emb.FastText(4, 3, 97, rngs=nnx.Rngs(0))
  ids = emb.ngram_ids('zebra', 97)
  np.testing.assert_allclose(
    model.oov_vector('zebra'), np.asarray(model.ngrams[...])[ids].mean(0), rtol=1e-6
  )


# ---- GloVe ---------------------------------------------------------------------------------------


def test_glove_weight():
  np.testing.assert_allclose(
    emb.glove_weight(jnp.array([1.0, 50.0, 100.0, 400.0])),
    [0.01**0.75, 0.5**0.75, 1.0, 1.0],
    rtol=1e-6,
  )
  assert 0.5**0.75 == pytest.approx(0.594604, abs=1e-6)


# ---- the sparse steps against NumPy --------------------------------------------------------------


def plan_and_state(spec, **updates):
  config = config_lib.load(spec)
  with config.unlocked():
    config.optimizer.kwargs.max_row_pairs = 0.0  # the plain summed step
    for k, v in updates.items():
      config[k] = v
  task = task_lib.Task(config)
  plan = task.setup(100)
  state = task.init_state(plan, jax.random.key(0))
  return task, plan, state


def w2v_batch():
  # Two centres: target 5 with contexts (7, 9), negatives (5 -> skipped, 11); target 8 with
  # context 7 and a padding slot, negatives (12, 13); then an empty slot.
  return {
    'target': np.array([[5, 8, 0]], np.int32),
    'context': np.array([[[7, 9], [7, 0], [0, 0]]], np.int32),
    'context_valid': np.array([[[1, 1], [1, 0], [0, 0]]], np.float32),
    'negatives': np.array([[[5, 11], [12, 13], [1, 2]]], np.int32),
  }


def numpy_skipgram(w_in, w_out, batch, lr):
  """The C code's per-pair terms, all from the old vectors, summed: (loss per pair, new tables)."""
  w_in, w_out = w_in.copy(), w_out.copy()
  d_in, d_out = np.zeros_like(w_in), np.zeros_like(w_out)
  losses = []
  for n in range(batch['target'].shape[1]):
    c = batch['target'][0, n]
    for x, ok in zip(batch['context'][0, n], batch['context_valid'][0, n]):
      if not ok:
        continue
      v = w_in[x]
      loss = 0.0
      for o, label in [(c, 1.0)] + [(k, 0.0) for k in batch['negatives'][0, n] if k != c]:
        s = w_out[o] @ v
        loss += -np.log(sigmoid(s)) if label else -np.log(sigmoid(-s))
        g = sigmoid(s) - label
        d_in[x] += g * w_out[o]
        d_out[o] += g * v
      losses.append(loss)
  return np.mean(losses), w_in - lr * d_in, w_out - lr * d_out


def test_skipgram_loss_and_sparse_step_match_numpy():
  task, plan, state = plan_and_state(W2V + ':smoke')
  rng = np.random.default_rng(0)
  params = {k: rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in state.params.items()}
  state = state.replace(params=jax.tree.map(jnp.asarray, params))
  batch = w2v_batch()
  lr = 0.025  # the first step's rate
  loss, w_in, w_out = numpy_skipgram(params['inputs'], params['outputs'], batch, lr)
  new, metrics = jax.jit(lambda s, b: task.train_step(plan, s, b, jax.random.key(0)))(state, batch)
  assert float(metrics['loss']) == pytest.approx(loss, rel=1e-5)
  assert float(metrics['examples']) == 3 and float(metrics['lr']) == pytest.approx(lr)
  np.testing.assert_allclose(new.params['inputs'], w_in, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new.params['outputs'], w_out, rtol=1e-5, atol=1e-6)
  touched = {5, 7, 8, 9, 11, 12, 13}
  untouched = [i for i in range(20) if i not in touched]
  assert np.array_equal(np.asarray(new.params['outputs'])[untouched], params['outputs'][untouched])
  # The evaluation loss is the same objective, without the update.
  model = plan.merge(state.params, state.model_state)
  eval_loss, _ = task.loss(model, {k: jnp.asarray(v) for k, v in batch.items()}, None, False)
  assert float(eval_loss) == pytest.approx(loss, rel=1e-5)


def test_cbow_averages_the_context_and_updates_each_context_row_with_the_mean_gradient():
  task, plan, state = plan_and_state(W2V + ':smoke,cbow')
  rng = np.random.default_rng(1)
  params = {k: rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in state.params.items()}
  state = state.replace(params=jax.tree.map(jnp.asarray, params))
  batch = w2v_batch()
  lr = 0.05
  w_in, w_out = params['inputs'].copy(), params['outputs'].copy()
  d_in, d_out, losses = np.zeros_like(w_in), np.zeros_like(w_out), []
  for n in range(2):
    c = batch['target'][0, n]
    ctx = [x for x, ok in zip(batch['context'][0, n], batch['context_valid'][0, n]) if ok]
    h = w_in[ctx].mean(0)
    loss, dh = 0.0, np.zeros_like(h)
    for o, label in [(c, 1.0)] + [(k, 0.0) for k in batch['negatives'][0, n] if k != c]:
      s = w_out[o] @ h
      loss += -np.log(sigmoid(s)) if label else -np.log(sigmoid(-s))
      dh += (sigmoid(s) - label) * w_out[o]
      d_out[o] += (sigmoid(s) - label) * h
    for x in ctx:
      d_in[x] += dh / len(ctx)
    losses.append(loss)
  new, metrics = jax.jit(lambda s, b: task.train_step(plan, s, b, jax.random.key(0)))(state, batch)
  assert float(metrics['loss']) == pytest.approx(np.mean(losses), rel=1e-5)
  np.testing.assert_allclose(new.params['inputs'], w_in - lr * d_in, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new.params['outputs'], w_out - lr * d_out, rtol=1e-5, atol=1e-6)


def test_row_cap_scales_a_crowded_row_to_cap_mean_steps():
  ids = jnp.array([3, 3, 3, 5, emb.NONE])
  pairs = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0])
  scale = task_lib._row_scale(8, ids, pairs, cap=2.0)
  np.testing.assert_allclose(scale, [2 / 3, 2 / 3, 2 / 3, 1.0, 1.0])


def test_glove_loss_and_adagrad_step_match_numpy():
  from tests.embeddings import GLOVE

  task, plan, state = plan_and_state(GLOVE + ':smoke')
  rng = np.random.default_rng(2)
  params = {k: rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in state.params.items()}
  acc = {k: 1.0 + rng.random(v.shape).astype(np.float32) for k, v in state.model_state.items()}
  state = state.replace(
    params=jax.tree.map(jnp.asarray, params), model_state=jax.tree.map(jnp.asarray, acc)
  )
  # entries (i, j, X_ij): row 3 twice, in the same batch
  batch = {
    'row': np.array([3, 3, 7], np.int32),
    'col': np.array([4, 9, 3], np.int32),
    'count': np.array([2.0, 150.0, 0.5], np.float32),
  }
  lr = 0.05
  w, c = params['words'].copy(), params['contexts'].copy()
  bw, bc = params['word_bias'].copy(), params['context_bias'].copy()
  new = {k: v.copy() for k, v in params.items()}
  new_acc = {k: v.copy() for k, v in acc.items()}
  total = 0.0
  for i, j, x in zip(batch['row'], batch['col'], batch['count']):
    f = min(1.0, (x / task.config.model.x_max) ** 0.75)
    diff = w[i] @ c[j] + bw[i] + bc[j] - np.log(x)
    total += 0.5 * f * diff**2
    for table, row, g in (
      ('words', i, f * diff * c[j]),
      ('contexts', j, f * diff * w[i]),
      ('word_bias', i, f * diff),
      ('context_bias', j, f * diff),
    ):
      new[table][row] -= lr * g / np.sqrt(acc[f'{table}_gradsq'][row])  # the old accumulator
      new_acc[f'{table}_gradsq'][row] += g**2
  out, metrics = jax.jit(lambda s, b: task.train_step(plan, s, b, jax.random.key(0)))(state, batch)
  assert float(metrics['loss']) == pytest.approx(total / 3, rel=1e-5)
  for k in new:
    np.testing.assert_allclose(out.params[k], new[k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.model_state[f'{k}_gradsq'], new_acc[f'{k}_gradsq'], rtol=1e-5)
