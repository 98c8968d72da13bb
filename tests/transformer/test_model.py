"""The Transformer's attention against NumPy, its masks, and decoding: cached equals uncached,
beam size 1 equals greedy."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl.models import attention
from jdl.models import decoding as decode
from jdl.models.transformer import Transformer, TransformerConfig, segment_mask
from tests.gpt.test_attention import numpy_attention

TINY = TransformerConfig(
  vocab_size=48,
  d_model=32,
  n_heads=4,
  d_ff=64,
  n_encoder_layers=2,
  n_decoder_layers=2,
  dropout=0.0,
  pre_ln=True,
  max_len=40,
)


def test_scaled_dot_product_attention_matches_numpy_under_segment_masks():
  """softmax(QK^T/sqrt(d_k))V with a packed row's masks: two sentences and padding."""
  rng = np.random.default_rng(0)
  B, T, H, K = 2, 6, 2, 8
  q, k, v = (rng.normal(size=(B, T, H, K)).astype(np.float32) for _ in range(3))
  segments = np.array([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 0, 0]], np.int32)
  mask = np.asarray(segment_mask(jnp.asarray(segments), jnp.asarray(segments)))
  got = np.asarray(attention.dot_product_attention(q, k, v, mask))
  real = segments > 0  # padded queries see nothing; their outputs are never used
  with np.errstate(invalid='ignore'):  # NumPy's rows of padded queries are NaN
    expected = numpy_attention(q, k, v, mask)
  np.testing.assert_allclose(got[real], expected[real], rtol=1e-5, atol=1e-6)
  weights = np.asarray(attention.attention_weights(q, k, mask))
  assert np.all(weights[0, :, :3, 3:] == 0) and np.all(weights[0, :, 3:5, :3] == 0)
  assert np.all(weights[1, :, :4, 4:] == 0)  # a padded key gets zero weight


def test_decoder_sees_neither_the_future_nor_padding():
  model = Transformer(TINY, rngs=nnx.Rngs(0))
  src = jnp.array([[5, 6, 7, 8, 0, 0]])
  src_seg = (src > 0).astype(jnp.int32)
  tgt = jnp.array([[1, 9, 10, 11, 12]])
  seg = jnp.ones_like(tgt)
  logits = model(src, tgt, src_segments_BxS=src_seg, tgt_segments_BxT=seg)
  changed_future = model(src, tgt.at[0, 3:].set(20), src_segments_BxS=src_seg, tgt_segments_BxT=seg)
  np.testing.assert_allclose(logits[0, :3], changed_future[0, :3], rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits[0, 3:], changed_future[0, 3:])
  changed_padding = model(
    src.at[0, 4:].set(30), tgt, src_segments_BxS=src_seg, tgt_segments_BxT=seg
  )
  np.testing.assert_allclose(logits, changed_padding, rtol=1e-5, atol=1e-6)
  # Encoder self-attention and cross-attention weights per head, as the figure draws them.
  record = []
  memory = model.encode(src, src_seg, record=record)
  model.decode(tgt, memory, cross_mask=attention.padding_mask(src > 0), record=record)
  assert [w.shape for w in record] == [(1, 4, 6, 6)] * 2 + [(1, 4, 5, 6)] * 2
  # Padded source positions get zero weight from every real query (padded queries' own rows
  # are a uniform average nobody reads).
  assert all(np.all(np.asarray(w)[0, :, :4, 4:] == 0) for w in record[:2])
  assert all(np.all(np.asarray(w)[0, :, :, 4:] == 0) for w in record[2:])


def test_packed_rows_equal_separate_sentences():
  """Two pairs packed in one row give the logits each gives alone."""
  model = Transformer(TINY, rngs=nnx.Rngs(1))
  a_src, a_tgt, b_src, b_tgt = [5, 6, 7], [1, 8, 9], [10, 11], [1, 12, 13, 14]
  packed = model(
    jnp.array([a_src + b_src]),
    jnp.array([a_tgt + b_tgt]),
    src_segments_BxS=jnp.array([[1, 1, 1, 2, 2]]),
    tgt_segments_BxT=jnp.array([[1, 1, 1, 2, 2, 2, 2]]),
    src_positions_BxS=jnp.array([[0, 1, 2, 0, 1]]),
    tgt_positions_BxT=jnp.array([[0, 1, 2, 0, 1, 2, 3]]),
  )
  for src, tgt, part in ((a_src, a_tgt, slice(0, 3)), (b_src, b_tgt, slice(3, 7))):
    alone = model(
      jnp.array([src]),
      jnp.array([tgt]),
      src_segments_BxS=jnp.ones((1, len(src))),
      tgt_segments_BxT=jnp.ones((1, len(tgt))),
    )
    np.testing.assert_allclose(packed[0, part], alone[0], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope='module')
def model_and_sources():
  # Post-LN here (pre-LN above), so both arrangements decode through the cache; one layer
  # each keeps the five compilations short.
  model = Transformer(
    TransformerConfig(
      **{**TINY.__dict__, 'pre_ln': False, 'n_encoder_layers': 1, 'n_decoder_layers': 1}
    ),
    rngs=nnx.Rngs(2),
  )
  src = np.random.default_rng(3).integers(4, 48, (3, 8)).astype(np.int32)
  src[1, 5:] = 0
  return model, src


def test_cached_decoding_equals_uncached(model_and_sources):
  model, src = model_and_sources
  np.testing.assert_array_equal(
    decode.greedy(model, src, 10), decode.greedy(model, src, 10, cached=False)
  )
  np.testing.assert_array_equal(
    decode.beam_search(model, src, 10, 3, 0.6),
    decode.beam_search(model, src, 10, 3, 0.6, cached=False),
  )


def test_beam_size_one_equals_greedy(model_and_sources):
  model, src = model_and_sources
  greedy = np.asarray(decode.greedy(model, src, 10))
  np.testing.assert_array_equal(decode.beam_search(model, src, 10, 1, 0.0), greedy)
  assert greedy.shape == (3, 10)
