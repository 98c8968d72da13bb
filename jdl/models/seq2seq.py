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

Both models are called like jdl.models.transformer.Transformer, on rows that hold one sentence
pair or several *packed* pairs told apart by segment ids (1, 2, ... ; 0 is padding): each
recurrence restarts at every pair's first position, so that a pair's logits are those it has
alone in a row (tested to 1e-5), and packing only removes the padding a recurrent network would
otherwise step through (a verse is ~32 subwords; one verse a row padded to 96 wasted 2/3 of it):

  - the encoder's carries are zero at each pair's first source position, in both directions
    (the backward direction, and the Sutskever encoder, read each pair's source reversed in
    place: `reverse_segments`);
  - the plain decoder's carries are set, at each pair's first target position, to the encoder's
    final state of *that pair* (the state after its source's last position, read reversed);
    the attentive decoder's to (0, tanh(W_s bwd h_1)) of that pair;
  - the attention at target position i reads only the source positions of i's pair.

Both give `decoding_steps` for jdl.models.decoding: the cached step advances the LSTM state by
one token (the source's projections U_a h_j computed once); the uncached step recomputes the
whole target prefix. Decoding reads one source a row.

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


# The backward pass recomputes tanh(W_a s + U_a h_j) [B, S, A] instead of keeping it for every
# decoder step (the scan would stack T of them): about 1.25x faster per training step of the
# attentive model on 2 CPU cores (8 packed rows of 128), the memory traffic saved outweighing the
# tanh.
_recomputed_attention = jax.checkpoint(additive_attention)


# ---- segments: where each packed pair starts and ends --------------------------------------------


def segment_starts(segments_BxT: jax.Array) -> jax.Array:
  """[B, T] booleans: True at the first position of every segment (a pair's first token)."""
  previous_BxT = jnp.pad(segments_BxT[:, :-1], ((0, 0), (1, 0)))
  return (segments_BxT > 0) & (segments_BxT != previous_BxT)


def reverse_segments(x_BxTx: jax.Array, segments_BxT: jax.Array) -> jax.Array:
  """Reverses every segment's positions in place (padding stays where it is): the backward
  direction of each packed pair, starting at its own last token. An involution; for one segment
  a row it is rnn.reverse_valid."""
  time = segments_BxT.shape[1]
  t_T = jnp.arange(time)
  following_BxT = jnp.pad(segments_BxT[:, 1:], ((0, 0), (0, 1)))
  ends_BxT = (segments_BxT > 0) & (segments_BxT != following_BxT)
  first_BxT = jax.lax.cummax(jnp.where(segment_starts(segments_BxT), t_T, 0), axis=1)
  last_BxT = jax.lax.cummin(jnp.where(ends_BxT, t_T, time - 1), axis=1, reverse=True)
  index_BxT = jnp.where(segments_BxT > 0, first_BxT + last_BxT - t_T, t_T)
  index = index_BxT.reshape(*index_BxT.shape, *[1] * (x_BxTx.ndim - 2))
  return jnp.take_along_axis(x_BxTx, index, axis=1)


def source_span(src_segments_BxS: jax.Array, tgt_segments_BxT: jax.Array):
  """(first, last) [B, T]: the source positions where the pair of each target position starts
  and ends (packed rows keep a pair's source and target under the same segment id)."""
  same_BxTxS = src_segments_BxS[:, None, :] == tgt_segments_BxT[:, :, None]
  time = src_segments_BxS.shape[1]
  return jnp.argmax(same_BxTxS, -1), time - 1 - jnp.argmax(same_BxTxS[..., ::-1], -1)


def _gather(x_BxSx: jax.Array, index_BxT: jax.Array) -> jax.Array:
  return jnp.take_along_axis(x_BxSx, index_BxT[..., None], axis=1)


def run_restarting(cell, x_BxTxF, starts_BxT, init=None) -> tuple[jax.Array, jax.Array]:
  """Runs an LSTM cell over time, its carry restarted at every segment start: to zeros, or to
  `init` ((c, h), [B, T, H] each: the carry for a segment starting at t). Returns the carries
  (c, h) after every step, [B, T, H] each (h is the output).

  rnn.RNN starts only at a row's beginning (and holds its carry over padding); here padding needs
  no hold: a pair's final state is read at its last position, and padding's outputs are masked
  from the loss. The input term W x_t + b of every step is one product before the scan: with the
  few rows of packed batches, accumulating W's gradient step by step inside the scan cost more
  (about 1.2x slower a training step of the plain model, 8 rows of 128, on 2 CPU cores; rnn.py's
  note measured the opposite for its 512-unit LSTM over more rows)."""
  swap = lambda a: jnp.swapaxes(a, 0, 1)  # scan runs over the leading axis
  carry = cell.initial_carry(x_BxTxF.shape[0])
  wx_TxBx4H = swap(cell.project_inputs(x_BxTxF))
  inputs = (wx_TxBx4H, swap(starts_BxT), None if init is None else jax.tree.map(swap, init))

  def body(carry, inputs):
    wx_Bx4H, start_B, init_t = inputs
    carry = restart(carry, start_B, init_t)
    carry, _ = cell.step(carry, wx_Bx4H)
    return carry, carry

  _, (c_TxBxH, h_TxBxH) = jax.lax.scan(body, carry, inputs)
  return swap(c_TxBxH), swap(h_TxBxH)


def restart(carry, start_B, init=None):
  """The carry, replaced where a segment starts (`start_B`) by `init` (zeros when None)."""
  if init is None:
    return jax.tree.map(lambda c: jnp.where(start_B[:, None], jnp.zeros_like(c), c), carry)
  return jax.tree.map(lambda c, c0: jnp.where(start_B[:, None], c0.astype(c.dtype), c), carry, init)


# ---- the model -----------------------------------------------------------------------------------


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
    # The RNN layers hold the cells (and run them in tests, as the reference); the scans that
    # restart at every packed pair are `run_restarting`'s.
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

  def encode(self, src_BxS: jax.Array, segments_BxS: jax.Array, dropout_key=None):
    """What the decoder reads, each pair's source encoded alone (`segments_BxS`: segment ids, or
    booleans for one sentence a row). Encoder-decoder: {'states': every layer's carries (c, h)
    [B, S, H] after each position of the reversed pairs, 'segments'}. Attentive: {'annotations'
    [B, S, 2H], 'keys' (U_a h_j) [B, S, A], 'backward' (bwd h_j) [B, S, H], 'segments'}."""
    segments_BxS = segments_BxS.astype(jnp.int32)
    starts_BxS = segment_starts(segments_BxS)
    x_BxSxE = layers.dropout(self.embed(src_BxS), self.cfg.dropout, dropout_key)
    if not self.cfg.attention:
      # Sutskever's reversed source; a pair reversed in place keeps its span, so its starts.
      h_BxSxD, states = reverse_segments(x_BxSxE, segments_BxS), []
      for cell in self.encoder.forward_cells:
        states.append(run_restarting(cell, h_BxSxD, starts_BxS))
        h_BxSxD = states[-1][1]
      return {'states': states, 'segments': segments_BxS}
    h_BxSxD = x_BxSxE
    for forward, backward in zip(self.encoder.forward_cells, self.encoder.backward_cells):
      _, fwd_BxSxH = run_restarting(forward, h_BxSxD, starts_BxS)
      reversed_in = reverse_segments(h_BxSxD, segments_BxS)
      _, bwd_rev_BxSxH = run_restarting(backward, reversed_in, starts_BxS)
      bwd_BxSxH = reverse_segments(bwd_rev_BxSxH, segments_BxS)
      h_BxSxD = jnp.concatenate([fwd_BxSxH, bwd_BxSxH], -1)
    return {
      'annotations': h_BxSxD,
      'keys': self.U_a(h_BxSxD),
      'backward': bwd_BxSxH,
      'segments': segments_BxS,
    }

  def initial_carries(self, memory, tgt_segments_BxT: jax.Array) -> list:
    """The decoder's carries, per layer ((c, h) [B, T, H] each), for a pair whose target starts
    at position t: the plain model's v, the encoder's final state of that pair (after its
    reversed source's last position); the attentive model's s_0 = (0, tanh(W_s bwd h_1)), bwd
    h_1 at that pair's first source position."""
    first_BxT, last_BxT = source_span(memory['segments'], tgt_segments_BxT)
    if not self.cfg.attention:
      return [(_gather(c, last_BxT), _gather(h, last_BxT)) for c, h in memory['states']]
    h0_BxTxH = jnp.tanh(self.init_state(_gather(memory['backward'], first_BxT)))
    return [(jnp.zeros_like(h0_BxTxH), h0_BxTxH)]

  # ---- decoder ---------------------------------------------------------------------------------

  def attend(self, memory, h_prev_BxH, segment_B):
    """(context c_i [B, 2H], weights a_i [B, S]) for the decoder state s_{i-1} of a position of
    pair `segment_B`: only that pair's source positions are attended to."""
    valid_BxS = memory['segments'] == segment_B[:, None]
    weights_BxS = _recomputed_attention(
      self.W_a(h_prev_BxH), memory['keys'], self.v_a[...], valid_BxS
    )
    annotations = memory['annotations']
    context_Bx2H = jnp.einsum('bs,bsd->bd', weights_BxS.astype(annotations.dtype), annotations)
    return context_Bx2H, weights_BxS

  def cell_input_terms(self, y_xE):
    """The attentive decoder cell reads [E y_{i-1} ; c_i] through one kernel W = [W_y ; W_c]:
    (W_y E y_{i-1} + b [..., 4H], W_c). The first term needs no context, so teacher forcing
    computes it for every step in one product before the scan (as `run_restarting` does)."""
    E, dtype = self.cfg.embed_dim, jnp.dtype(self.cfg.dtype)
    kernel = self.cell.W.kernel[...].astype(dtype)
    wy_x4H = y_xE.astype(dtype) @ kernel[:E] + self.cell.W.bias[...].astype(dtype)
    return wy_x4H, kernel[E:]

  def _attentive_step(self, memory, carry, y_prev_BxE, wy_Bx4H, W_c, segment_B):
    """One step of the attentive decoder: (new carry, readout input [B, H+2H+E], weights)."""
    context_Bx2H, weights_BxS = self.attend(memory, carry[1], segment_B)
    carry, s_BxH = self.cell.step(carry, wy_Bx4H + context_Bx2H.astype(W_c.dtype) @ W_c)
    features = jnp.concatenate([s_BxH.astype(y_prev_BxE.dtype), context_Bx2H, y_prev_BxE], -1)
    return carry, features, weights_BxS

  def logits_of(self, features, key=None):
    """W_o (tanh(L features)) for the attentive model, W_o h for the plain one."""
    if self.cfg.attention:
      features = jnp.tanh(self.readout(features))
    return self.output(layers.dropout(features, self.cfg.dropout, key))

  def decode(
    self,
    tgt_BxT: jax.Array,
    memory,
    tgt_segments_BxT: jax.Array | None = None,
    *,
    dropout_key=None,
    record: list | None = None,
  ):
    """Teacher-forced logits [B, T, V] of the target inputs (<s> y_1 ...), one pair a row when
    `tgt_segments_BxT` is None; `record`, a list, receives the attentive model's weights a_ij
    [B, T, S]."""
    if tgt_segments_BxT is None:
      tgt_segments_BxT = jnp.ones(tgt_BxT.shape, jnp.int32)
    starts_BxT = segment_starts(tgt_segments_BxT)
    inits = self.initial_carries(memory, tgt_segments_BxT)
    k_embed, k_out = _keys(dropout_key, 2)
    y_BxTxE = layers.dropout(self.embed(tgt_BxT), self.cfg.dropout, k_embed)
    if not self.cfg.attention:
      h_BxTxH = y_BxTxE
      for cell, init in zip(self.decoder.forward_cells, inits):
        _, h_BxTxH = run_restarting(cell, h_BxTxH, starts_BxT, init)
      return self.logits_of(h_BxTxH, k_out)

    wy_BxTx4H, W_c = self.cell_input_terms(y_BxTxE)

    def body(carry, inputs):
      y_BxE, wy_Bx4H, start_B, init, segment_B = inputs
      carry = restart(carry, start_B, init)
      carry, features, weights_BxS = self._attentive_step(
        memory, carry, y_BxE, wy_Bx4H, W_c, segment_B
      )
      return carry, (features, weights_BxS)

    swap = lambda a: jnp.swapaxes(a, 0, 1)
    inputs = (
      swap(y_BxTxE),
      swap(wy_BxTx4H),
      swap(starts_BxT),
      jax.tree.map(swap, inits[0]),
      swap(tgt_segments_BxT),
    )
    carry = self.cell.initial_carry(tgt_BxT.shape[0])
    _, (features_TxBxF, weights_TxBxS) = jax.lax.scan(body, carry, inputs)
    if record is not None:
      record.append(swap(weights_TxBxS))
    return self.logits_of(swap(features_TxBxF), k_out)

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
    """Teacher-forced logits [B, T, V] of one or several (packed) pairs a row (the Transformer's
    call; the positions are not needed: the recurrence knows where it is). Without target
    segments a row holds one pair."""
    del src_positions_BxS, tgt_positions_BxT
    k_enc, k_dec = _keys(dropout_key, 2)
    memory = self.encode(src_BxS, src_segments_BxS, k_enc)
    return self.decode(tgt_in_BxT, memory, tgt_segments_BxT, dropout_key=k_dec)

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

    one_N = jnp.ones(src_NxS.shape[:1], jnp.int32)  # one pair a row: segment 1
    carries = [
      jax.tree.map(lambda c: c[:, 0], init) for init in self.initial_carries(memory, one_N[:, None])
    ]

    def step(carries, tokens_NxL1, i):
      token_N = jax.lax.dynamic_index_in_dim(tokens_NxL1, i, axis=1, keepdims=False)
      y_NxE = self.embed(token_N)
      if self.cfg.attention:
        wy_Nx4H, W_c = self.cell_input_terms(y_NxE)
        carry, features, _ = self._attentive_step(memory, carries[0], y_NxE, wy_Nx4H, W_c, one_N)
        return self.logits_of(features), [carry]
      h_NxH, new = y_NxE, []
      for cell, carry in zip(self.decoder.forward_cells, carries):
        carry, h_NxH = cell(carry, h_NxH)
        new.append(carry)
      return self.logits_of(h_NxH), new

    # The source's memory is the same for every beam of a sentence, and beams move only within
    # their sentence: only the carries follow the hypotheses.
    reorder = lambda carries, rows_N: jax.tree.map(lambda c: c[rows_N], carries)
    return step, carries, reorder
