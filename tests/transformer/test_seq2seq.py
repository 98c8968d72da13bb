"""The recurrent encoder-decoders: cached decoding (the LSTM state advanced one token at a time)
gives what recomputing the whole prefix gives, greedy and beam; the additive attention's weights
sum to one over the real source positions; padding changes nothing; the Sutskever encoder reads
the source reversed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl.models import decoding, rnn
from jdl.models.seq2seq import Seq2Seq, Seq2SeqConfig, additive_attention

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


def test_plain_encoder_reads_the_source_reversed():
  m = model(False)
  valid = jnp.asarray(SRC > 0)
  carries = m.encode(jnp.asarray(SRC), valid)['carries']
  # The same layers run by hand over the reversed embedded source.
  x = rnn.reverse_valid(m.embed(jnp.asarray(SRC)), valid.sum(-1))
  _, _, finals = m.encoder.run(x, valid.sum(-1))
  for got, want in zip(jax.tree.leaves(carries), jax.tree.leaves(finals)):
    np.testing.assert_array_equal(got, want)
  forward = m.encoder.run(m.embed(jnp.asarray(SRC)), valid.sum(-1))[2]
  assert not np.allclose(jax.tree.leaves(forward)[1], jax.tree.leaves(carries)[1])
