"""The lecture's "two recurrent networks": an LSTM encoder-decoder (Sutskever, Vinyals and Le
2014) and the same with additive attention over a bidirectional encoder (Bahdanau, Cho and
Bengio 2015), built from jdl.models.rnn's LSTM cell and RNN layer.

Encoder-decoder (`attention=False`). The encoder reads the source *reversed* (the paper's trick:
the first source words end up close to the first target words) through `num_layers` LSTM layers;
its final state (c, h) of every layer is the decoder's initial state, the fixed-size vector v
that must carry the whole sentence:

    v = LSTM_enc(x_S, ..., x_1)
    p(y_1 ... y_T | x) = prod_t softmax(W_o h_t),   h_t = LSTM_dec(h_{t-1}, E y_{t-1}),   h_0 = v

Attentive encoder-decoder (`attention=True`). A bidirectional LSTM gives each source position an
annotation h_j = [fwd h_j ; bwd h_j] (2H); the decoder state s_i reads a context c_i, a mixture of
the annotations weighted by an alignment model, at every step:

    e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)       (additive attention)
    a_ij = exp(e_ij) / sum_k exp(e_ik)              (over the source's real positions)
    c_i = sum_j a_ij h_j
    s_i = LSTM(s_{i-1}, [E y_{i-1} ; c_i]),   s_0 = (0, tanh(W_s bwd h_1))
    p(y_i | y_<i, x) = softmax(W_o tanh(L [s_i ; c_i ; E y_{i-1}]))

Deviations from the papers: an LSTM rather than Bahdanau's GRU (jdl's cells), one `tanh` readout
layer instead of the maxout, and one embedding table for both languages (the joint subword
vocabulary of jdl.data), as jdl's Transformer shares it.

Both models are called like jdl.models.transformer.Transformer, on one sentence pair a row
(segment id 1 on real tokens, 0 on padding), and both give `decoding_steps` for
jdl.models.decoding: the cached step advances the LSTM state by one token (the source's
projections U_a h_j computed once); the uncached step recomputes the whole target prefix.

Shape suffixes: B rows, S source and T target positions, E embedding, H hidden, A attention
width, V vocabulary; N = B*K rows of a beam search.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models import layers, rnn

NEG_INF = -1e9  # the score of a padding position: exp() of it is 0 in float32


@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig:
  vocab_size: int  # shared by source and target
  embed_dim: int = 256
  hidden_size: int = 512  # per direction in the attentive model's encoder
  num_layers: int = 2  # encoder and decoder layers (the attentive model: 1 of each)
  attention: bool = False
  attention_dim: int = 256  # A, the alignment model's hidden width
  dropout: float = 0.1  # on embeddings and on the decoder's outputs
  max_len: int = 256  # the longest output decoding may produce
  dtype: str = 'float32'

  @classmethod
  def from_config(cls, model, dtype: str = 'float32') -> Seq2SeqConfig:
    """From a ConfigDict `config.model`; a key that is not a field is a ConfigError."""
    return layers.config_from_section(cls, model, dtype)


def _keys(key, n):
  return [None] * n if key is None else list(jax.random.split(key, n))


def additive_attention(query_BxA, keys_BxSxA, v_A, valid_BxS):
  """Bahdanau's alignment weights a_ij [B, S] (rows sum to 1 over the valid positions)."""
  e_BxS = jnp.tanh(keys_BxSxA + query_BxA[:, None, :]) @ v_A
  e_BxS = jnp.where(valid_BxS, e_BxS.astype(jnp.float32), NEG_INF)
  return jax.nn.softmax(e_BxS, axis=-1)


class Seq2Seq(nnx.Module):
  def __init__(self, cfg: Seq2SeqConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dtype = jnp.dtype(cfg.dtype)
    E, H, V = cfg.embed_dim, cfg.hidden_size, cfg.vocab_size
    self.embed = nnx.Embed(
      V,
      E,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
      embedding_init=nnx.with_partitioning(nnx.initializers.normal(E**-0.5), ('vocab', 'embed')),
    )
    linear = lambda n_in, n_out, axes, bias=True: rnn.linear(
      n_in, n_out, axes, use_bias=bias, dtype=dtype, rngs=rngs
    )
    if cfg.attention:
      self.encoder = rnn.RNN('lstm', E, H, bidirectional=True, dtype=dtype, rngs=rngs)
      self.init_state = linear(H, H, ('mlp', 'mlp'))  # W_s
      self.W_a = linear(H, cfg.attention_dim, ('mlp', None), bias=False)
      self.U_a = linear(2 * H, cfg.attention_dim, ('mlp', None))
      self.v_a = nnx.Param(
        nnx.initializers.normal(cfg.attention_dim**-0.5)(rngs.params(), (cfg.attention_dim,))
      )
      self.cell = rnn.LSTMCell(E + 2 * H, H, dtype=dtype, rngs=rngs)
      self.readout = linear(H + 2 * H + E, H, ('mlp', 'mlp'))  # L
    else:
      self.encoder = rnn.RNN('lstm', E, H, num_layers=cfg.num_layers, dtype=dtype, rngs=rngs)
      self.decoder = rnn.RNN('lstm', E, H, num_layers=cfg.num_layers, dtype=dtype, rngs=rngs)
    self.output = linear(H, V, ('mlp', 'vocab'))  # W_o

  # ---- encoder ---------------------------------------------------------------------------------

  def encode(self, src_BxS: jax.Array, valid_BxS: jax.Array, dropout_key=None):
    """What the decoder starts from. Encoder-decoder: {'carries'} (each layer's final (c, h)).
    Attentive: {'carries', 'annotations' [B, S, 2H], 'keys' (U_a h_j) [B, S, A], 'valid'}."""
    lengths_B = valid_BxS.sum(-1).astype(jnp.int32)
    x_BxSxE = layers.dropout(self.embed(src_BxS), self.cfg.dropout, dropout_key)
    if not self.cfg.attention:
      reversed_BxSxE = rnn.reverse_valid(x_BxSxE, lengths_B)
      _, _, finals = self.encoder.run(reversed_BxSxE, lengths_B)
      return {'carries': finals}
    annotations_BxSx2H, summary_Bx2H = self.encoder(x_BxSxE, lengths_B)
    H = self.cfg.hidden_size
    h0_BxH = jnp.tanh(self.init_state(summary_Bx2H[:, H:]))  # from bwd h_1, as the paper's s_0
    c0_BxH = jnp.zeros_like(h0_BxH)
    return {
      'carries': [(c0_BxH, h0_BxH)],
      'annotations': annotations_BxSx2H,
      'keys': self.U_a(annotations_BxSx2H),
      'valid': valid_BxS,
    }

  # ---- decoder ---------------------------------------------------------------------------------

  def attend(self, memory, h_prev_BxH):
    """(context c_i [B, 2H], weights a_i [B, S]) for the decoder state s_{i-1}."""
    weights_BxS = additive_attention(
      self.W_a(h_prev_BxH), memory['keys'], self.v_a[...], memory['valid']
    )
    annotations = memory['annotations']
    context_Bx2H = jnp.einsum('bs,bsd->bd', weights_BxS.astype(annotations.dtype), annotations)
    return context_Bx2H, weights_BxS

  def _attentive_step(self, memory, carry, y_prev_BxE):
    """One step of the attentive decoder: (new carry, readout input [B, H+2H+E], weights)."""
    context_Bx2H, weights_BxS = self.attend(memory, carry[1])
    carry, s_BxH = self.cell(carry, jnp.concatenate([y_prev_BxE, context_Bx2H], -1))
    features = jnp.concatenate([s_BxH.astype(y_prev_BxE.dtype), context_Bx2H, y_prev_BxE], -1)
    return carry, features, weights_BxS

  def logits_of(self, features, key=None):
    """W_o (tanh(L features)) for the attentive model, W_o h for the plain one."""
    if self.cfg.attention:
      features = jnp.tanh(self.readout(features))
    return self.output(layers.dropout(features, self.cfg.dropout, key))

  def decode(self, tgt_BxT: jax.Array, memory, *, dropout_key=None, record: list | None = None):
    """Teacher-forced logits [B, T, V] of the target inputs (<s> y_1 ...); `record`, a list,
    receives the attentive model's weights a_ij [B, T, S]."""
    k_embed, k_out = _keys(dropout_key, 2)
    y_BxTxE = layers.dropout(self.embed(tgt_BxT), self.cfg.dropout, k_embed)
    if not self.cfg.attention:
      h_BxTxH, _, _ = self.decoder.run(y_BxTxE, carries=memory['carries'])
      return self.logits_of(h_BxTxH, k_out)

    def body(carry, y_BxE):
      carry, features, weights_BxS = self._attentive_step(memory, carry, y_BxE)
      return carry, (features, weights_BxS)

    _, (features_TxBxF, weights_TxBxS) = jax.lax.scan(
      body, memory['carries'][0], jnp.swapaxes(y_BxTxE, 0, 1)
    )
    if record is not None:
      record.append(jnp.swapaxes(weights_TxBxS, 0, 1))
    return self.logits_of(jnp.swapaxes(features_TxBxF, 0, 1), k_out)

  def __call__(
    self,
    src_BxS,
    tgt_in_BxT,
    *,
    src_segments_BxS,
    tgt_segments_BxT=None,
    src_positions_BxS=None,
    tgt_positions_BxT=None,
    dropout_key=None,
  ) -> jax.Array:
    """Teacher-forced logits [B, T, V], one sentence pair a row (the Transformer's call; the
    positions and target segments are not needed: the recurrence knows where it is)."""
    del tgt_segments_BxT, src_positions_BxS, tgt_positions_BxT
    k_enc, k_dec = _keys(dropout_key, 2)
    memory = self.encode(src_BxS, src_segments_BxS > 0, k_enc)
    return self.decode(tgt_in_BxT, memory, dropout_key=k_dec)

  # ---- decoding (jdl.models.decoding) ----------------------------------------------------------

  def decoding_steps(self, src_BxS: jax.Array, beam_size: int, max_len: int, cached: bool):
    """(step, state, reorder) for jdl.models.decoding's search: step(state, tokens_NxL1, i) gives
    the logits [N, V] of position i + 1. Cached: the state is the LSTM carries, advanced by
    token i alone. Uncached: the decoder runs over the whole prefix again at every step."""
    from jdl.data.ding import PAD

    src_NxS = jnp.repeat(src_BxS, beam_size, axis=0)
    memory = self.encode(src_NxS, src_NxS != PAD)
    if not cached:

      def step_uncached(state, tokens_NxL1, i):
        logits_NxLxV = self.decode(tokens_NxL1, memory)
        return jax.lax.dynamic_index_in_dim(logits_NxLxV, i, axis=1, keepdims=False), state

      return step_uncached, (), lambda state, rows: state

    def step(carries, tokens_NxL1, i):
      token_N = jax.lax.dynamic_index_in_dim(tokens_NxL1, i, axis=1, keepdims=False)
      y_NxE = self.embed(token_N)
      if self.cfg.attention:
        carry, features, _ = self._attentive_step(memory, carries[0], y_NxE)
        return self.logits_of(features), [carry]
      h_Nx1xH, _, carries = self.decoder.run(y_NxE[:, None], carries=carries)
      return self.logits_of(h_Nx1xH[:, 0]), carries

    # The source's memory is the same for every beam of a sentence, and beams move only within
    # their sentence: only the carries follow the hypotheses.
    reorder = lambda carries, rows_N: jax.tree.map(lambda c: c[rows_N], carries)
    return step, memory['carries'], reorder
