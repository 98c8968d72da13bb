"""The recurrent encoder-decoders: cached decoding (the LSTM state advanced one token at a time)
gives what recomputing the whole prefix gives, greedy and beam; the additive attention's weights
sum to one over the real source positions; padding changes nothing; the Sutskever encoder reads
the source reversed; the restarting scans give what jdl.models.rnn's RNN layer gives; and a pair
packed with others into a row has the logits, loss and gradients it has alone in a row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl.data import bible_pairs, ding
from jdl.models import decoding, rnn
from jdl.models.seq2seq import Seq2Seq, Seq2SeqConfig, additive_attention, reverse_segments

SRC = np.array([[5, 6, 7, 8, 9, 0, 0, 0], [10, 11, 12, 0, 0, 0, 0, 0]], np.int32)


def model(attention: bool, seed: int = 0) -> Seq2Seq:
  cfg = Seq2SeqConfig(
    vocab_size=40,
    embed_dim=8,
    hidden_size=12,
    num_layers=1 if attention else 2,
    attention=attention,
    attention_dim=6,
    dropout=0.0,
    max_len=16,
  )
  return Seq2Seq(cfg, rngs=nnx.Rngs(seed))


def jitted(m, fn):
  """fn(model, *args) compiled once (eager dispatch of many small ops is slow on a busy CPU)."""
  graphdef, state = nnx.split(m)
  return jax.jit(lambda state, *args: fn(nnx.merge(graphdef, state), *args)), state


@pytest.mark.parametrize('attention', [False, True])
def test_cached_step_logits_equal_recomputation(attention):
  tokens = np.array([[1, 7, 3, 9, 4, 0], [1, 2, 2, 5, 6, 0]], np.int32)

  def logits(m, src, tokens):
    step_c, state, _ = m.decoding_steps(src, 1, 5, cached=True)
    step_u, none, _ = m.decoding_steps(src, 1, 5, cached=False)
    cached, recomputed = [], []
    for i in range(5):
      logits_c, state = step_c(state, tokens, i)
      cached.append(logits_c)
      recomputed.append(step_u(none, tokens, i)[0])
    # ... and the teacher-forced forward pass of training.
    full = m(src, tokens[:, :5], src_segments_BxS=(src > 0).astype(jnp.int32))
    return jnp.stack(cached, 1), jnp.stack(recomputed, 1), full

  fn, state = jitted(model(attention), logits)
  cached, recomputed, full = fn(state, SRC, tokens)
  np.testing.assert_allclose(cached, recomputed, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('attention', [False, True])
@pytest.mark.parametrize('beam_size', [0, 3])
def test_cached_decoding_equals_recomputation(attention, beam_size):
  m = model(attention, seed=3)
  cached = decoding.decode(m, SRC, 10, beam_size=beam_size, alpha=0.6, cached=True)
  recomputed = decoding.decode(m, SRC, 10, beam_size=beam_size, alpha=0.6, cached=False)
  np.testing.assert_array_equal(cached, recomputed)
  assert cached.shape == (2, 10)


def test_beam_of_one_is_greedy():
  m = model(True, seed=1)
  np.testing.assert_array_equal(
    decoding.decode(m, SRC, 10, beam_size=1, alpha=0.0), decoding.decode(m, SRC, 10)
  )


def test_attention_weights_sum_to_one_over_the_real_positions():
  m = model(True)
  record = []
  memory = m.encode(jnp.asarray(SRC), jnp.asarray(SRC > 0))
  m.decode(jnp.asarray([[1, 4, 5], [1, 6, 0]]), memory, record=record)
  (weights_BxTxS,) = record
  assert weights_BxTxS.shape == (2, 3, 8)
  np.testing.assert_allclose(weights_BxTxS.sum(-1), 1.0, rtol=1e-6)
  assert float(jnp.abs(weights_BxTxS[0, :, 5:]).max()) == 0.0  # padding gets none
  assert float(jnp.abs(weights_BxTxS[1, :, 3:]).max()) == 0.0
  # Against NumPy: v^T tanh(q + k_j), softmax over the valid positions.
  rng = np.random.default_rng(0)
  q, k, v = rng.normal(size=(1, 4)), rng.normal(size=(1, 3, 4)), rng.normal(size=4)
  e = np.tanh(k + q[:, None]) @ v
  e[0, 2] = -np.inf
  expected = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
  got = additive_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), np.array([[1, 1, 0]]))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('attention', [False, True])
def test_padding_changes_nothing(attention):
  tgt = np.array([[1, 4, 5, 6]], np.int32)
  short, long = SRC[1:, :3], SRC[1:]
  forward = lambda m, src: m(src, tgt, src_segments_BxS=(src > 0).astype(jnp.int32))
  fn, state = jitted(model(attention), forward)
  np.testing.assert_allclose(fn(state, short), fn(state, long), rtol=1e-5, atol=1e-6)


def test_encoders_match_the_rnn_layer():
  """The restarting scans against jdl.models.rnn's RNN (the reference, one sentence a row):
  the plain model's v is the final state of the layers run over the reversed source (and not
  that of the source read forward); the attentive model's annotations are the bidirectional
  layer's outputs at the real positions, and s_0 = tanh(W_s bwd h_1)."""
  src, valid = jnp.asarray(SRC), jnp.asarray(SRC > 0)
  lengths, one = valid.sum(-1), jnp.ones((2, 1), jnp.int32)
  m = model(False)
  carries = m.initial_carries(m.encode(src, valid), one)
  _, _, finals = m.encoder.run(rnn.reverse_valid(m.embed(src), lengths), lengths)
  for got, want in zip(jax.tree.leaves(carries), jax.tree.leaves(finals)):
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-6, atol=1e-6)
  forward = m.encoder.run(m.embed(src), lengths)[2]
  assert not np.allclose(jax.tree.leaves(forward)[1], jax.tree.leaves(carries)[1][:, 0])

  m = model(True)
  memory = m.encode(src, valid)
  annotations, summary = m.encoder(m.embed(src), lengths)
  np.testing.assert_allclose(
    np.where(SRC[..., None] > 0, memory['annotations'], 0), annotations, rtol=1e-6, atol=1e-6
  )
  (c0, h0), H = m.initial_carries(memory, one)[0], m.cfg.hidden_size
  np.testing.assert_allclose(h0[:, 0], jnp.tanh(m.init_state(summary[:, H:])), rtol=1e-6)
  np.testing.assert_array_equal(c0, 0.0)


def test_reverse_segments_reverses_each_pair_in_place():
  segments = np.array([[1, 1, 1, 2, 2, 3, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]], np.int32)
  x = np.arange(16).reshape(2, 8)
  want = [[2, 1, 0, 4, 3, 5, 6, 7], [15, 14, 13, 12, 11, 10, 9, 8]]
  got = reverse_segments(jnp.asarray(x), jnp.asarray(segments))
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(reverse_segments(got, jnp.asarray(segments)), x)  # involution


def _pairs(n: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  src = [list(rng.integers(4, 40, rng.integers(1, 9))) for _ in range(n)]
  tgt = [list(rng.integers(4, 40, rng.integers(1, 8))) for _ in range(n)]
  return src, tgt


@pytest.mark.parametrize('attention', [False, True])
def test_packed_pairs_have_their_alone_logits_loss_and_gradients(attention):
  src, tgt = _pairs(9)
  packed = ding.pack(src, tgt, 16, seed=0)
  alone = bible_pairs.one_per_row(src, tgt, 16)
  assert len(packed['src']) < len(src) and packed['tgt_segments'].max() >= 3  # really packed

  def forward(m, rows):
    logits_BxTxV = m(
      rows['src'],
      rows['tgt_in'],
      src_segments_BxS=rows['src_segments'],
      tgt_segments_BxT=rows['tgt_segments'],
    )
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV, -1)
    nll_BxT = -jnp.take_along_axis(logp_BxTxV, rows['tgt_out'][..., None], -1)[..., 0]
    return (nll_BxT * (rows['tgt_segments'] > 0)).sum(), logits_BxTxV

  m = model(attention, seed=2)
  graphdef, state = nnx.split(m)
  value_and_grad = jax.jit(
    jax.value_and_grad(lambda state, rows: forward(nnx.merge(graphdef, state), rows), has_aux=True)
  )
  (loss_p, logits_p), grads_p = value_and_grad(state, packed)
  (loss_a, logits_a), grads_a = value_and_grad(state, alone)
  # Each pair's logits where it sits in the packed rows (found by its source tokens).
  where = {}
  for r in range(len(packed['src'])):
    for k in range(1, packed['src_segments'][r].max() + 1):
      key = tuple(packed['src'][r][packed['src_segments'][r] == k])
      where[key] = (r, packed['tgt_segments'][r] == k)
  assert len(where) == len(src)  # every pair found, by a source of its own
  for i, (s, t) in enumerate(zip(src, tgt)):
    r, positions = where[tuple(s)]
    np.testing.assert_allclose(
      logits_p[r][positions], logits_a[i, : len(t) + 1], rtol=1e-5, atol=1e-5
    )
  np.testing.assert_allclose(loss_p, loss_a, rtol=1e-5)
  for got, want in zip(jax.tree.leaves(grads_p), jax.tree.leaves(grads_a)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
