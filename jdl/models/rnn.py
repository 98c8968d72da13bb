"""Recurrent networks: the lecture's Elman, Jordan and LSTM cells, the multiplicative LSTM of the
sentiment neuron, and one `RNN` layer that runs any of them over a batch of sequences with
`jax.lax.scan`.

Every cell splits its update into two parts, `project_inputs(x)` (the input term W x_t + b) and
`step(carry, wx_t)` (the recurrent part); `cell(carry, x_t)` does both for one step, and that is
what the scan runs. Projecting the inputs of all time steps in one large product before the scan
is the usual trick, but on CPU it measured about 20% slower per training step for the 512-unit
LSTM of `jdl bench lstm`: the [T, B, 4H] projections and their gradients (67 MB each there) cost
more memory traffic than the small per-step products they replace.

Logical axis names: input kernels ('embed', 'mlp'), recurrent kernels ('mlp', None) -- the
recurrent matrix maps the hidden state to itself, and naming both sides 'mlp' would map one mesh
axis twice.

`lstm_kernel` (RNN, CharRNN; config `model.lstm_kernel`) chooses how an LSTM layer runs: 'scan'
(the default: the cell in a `lax.scan`, everywhere), 'ffi' (jdl.models.lstm_ffi: one fused
XLA:CPU custom call per direction of the whole sequence, float32, CPU only), 'onednn'
(jdl.models.lstm_ffi.onednn: the whole layer, input projection included, as oneDNN's LSTM
primitives, as PyTorch's `nn.LSTM` runs on CPU; float32, CPU only) or 'auto' (where the
computation is lowered for CPU, 'onednn' if it is built, else 'ffi' if it is built, else 'scan':
the order of their speed on `jdl bench lstm`). Per-row lengths, another cell or a non-float32
dtype always run the scan. The kernels give the scan's results to float32 rounding
(tests/models/test_lstm_ffi.py, test_lstm_onednn.py). The modules here default to the scan (pure
JAX, every platform); the rnn_lm task, `jdl train`'s, defaults to 'auto': on the idle machine
'onednn' measured 0.369-0.380 s a step against the scan's 0.457 (`jdl bench lstm`, 3 Dec 2026;
'ffi' measured no faster than the scan, docs/benchmarks.md).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models import lstm_ffi
from jdl.models.lstm_ffi import onednn

Carry = Any  # an array or a tuple of arrays, [batch, ...]
GLOROT = nnx.initializers.glorot_uniform()
ZEROS = nnx.initializers.zeros_init()


def linear(
  n_in: int,
  n_out: int,
  axes: tuple,
  *,
  use_bias: bool,
  dtype,
  rngs: nnx.Rngs,
  kernel_init=GLOROT,
  bias_init=ZEROS,
) -> nnx.Linear:
  return nnx.Linear(
    n_in,
    n_out,
    use_bias=use_bias,
    dtype=dtype,
    param_dtype=jnp.float32,
    rngs=rngs,
    kernel_init=nnx.with_partitioning(kernel_init, axes),
    bias_init=nnx.with_partitioning(bias_init, (axes[1],)),
  )


def _carry_dtype(dtype) -> jnp.dtype:
  """The recurrent state stays in float32 (or wider) even under bfloat16 compute: it is summed
  over many steps, where bfloat16's 8 mantissa bits would lose the small updates."""
  return jnp.promote_types(dtype or jnp.float32, jnp.float32)


def _forget_bias_init(key, shape, dtype=jnp.float32):
  """Bias 1 on the forget gate (columns [0, H) of [f | i | o | c]) and 0 elsewhere: the cell
  starts by keeping its state, which lets gradients reach far back from the first step on
  (Gers et al. 2000; Jozefowicz et al. 2015)."""
  hidden = shape[-1] // 4
  return jnp.zeros(shape, dtype).at[..., :hidden].set(1.0)


# ---- cells ---------------------------------------------------------------------------------------


class LSTMCell(nnx.Module):
  """Long short-term memory, as on the lecture's slide (gates f, i, o; cell state c):

    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)
    i_t = sigmoid(W_i x_t + U_i h_{t-1} + b_i)
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + b_o)
    c_t = f_t * c_{t-1} + i_t * tanh(W_c x_t + U_c h_{t-1} + b_c)
    h_t = o_t * tanh(c_t)

  The four W (and U) are stored side by side in one kernel, columns [f | i | o | c], so that a
  step costs two matrix products instead of eight.
  """

  def __init__(self, in_features: int, hidden_size: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.hidden_size = hidden_size
    self.carry_dtype = _carry_dtype(dtype)
    self.W = linear(
      in_features,
      4 * hidden_size,
      ('embed', 'mlp'),
      use_bias=True,
      dtype=dtype,
      rngs=rngs,
      bias_init=_forget_bias_init,
    )
    self.U = linear(
      hidden_size,
      4 * hidden_size,
      ('mlp', None),
      use_bias=False,
      dtype=dtype,
      rngs=rngs,
      kernel_init=nnx.initializers.orthogonal(),
    )

  def initial_carry(self, batch_size: int) -> Carry:
    zeros = jnp.zeros((batch_size, self.hidden_size), self.carry_dtype)
    return zeros, zeros  # (c, h)

  def project_inputs(self, x_xF: jax.Array) -> jax.Array:
    return self.W(x_xF)  # [W_f x + b_f | W_i x + b_i | W_o x + b_o | W_c x + b_c]

  def step(self, carry: Carry, wx_Bx4H: jax.Array) -> tuple[Carry, jax.Array]:
    c_prev, h_prev = carry
    pre = wx_Bx4H + self.U(h_prev.astype(wx_Bx4H.dtype))
    pre_f, pre_i, pre_o, pre_c = jnp.split(pre.astype(self.carry_dtype), 4, axis=-1)
    f_t = jax.nn.sigmoid(pre_f)
    i_t = jax.nn.sigmoid(pre_i)
    o_t = jax.nn.sigmoid(pre_o)
    c_t = f_t * c_prev + i_t * jnp.tanh(pre_c)
    h_t = o_t * jnp.tanh(c_t)
    return (c_t, h_t), h_t

  def __call__(self, carry: Carry, x_BxF: jax.Array) -> tuple[Carry, jax.Array]:
    return self.step(carry, self.project_inputs(x_BxF))


class ElmanCell(nnx.Module):
  """Elman network: the hidden state feeds back, h_t = tanh(W x_t + U h_{t-1} + b)."""

  def __init__(self, in_features: int, hidden_size: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.hidden_size = hidden_size
    self.carry_dtype = _carry_dtype(dtype)
    self.W = linear(
      in_features, hidden_size, ('embed', 'mlp'), use_bias=True, dtype=dtype, rngs=rngs
    )
    self.U = linear(
      hidden_size,
      hidden_size,
      ('mlp', None),
      use_bias=False,
      dtype=dtype,
      rngs=rngs,
      kernel_init=nnx.initializers.orthogonal(),
    )

  def initial_carry(self, batch_size: int) -> Carry:
    return jnp.zeros((batch_size, self.hidden_size), self.carry_dtype)  # h

  def project_inputs(self, x_xF: jax.Array) -> jax.Array:
    return self.W(x_xF)

  def step(self, h_prev: Carry, wx_BxH: jax.Array) -> tuple[Carry, jax.Array]:
    h_t = jnp.tanh((wx_BxH + self.U(h_prev.astype(wx_BxH.dtype))).astype(self.carry_dtype))
    return h_t, h_t

  def __call__(self, carry: Carry, x_BxF: jax.Array) -> tuple[Carry, jax.Array]:
    return self.step(carry, self.project_inputs(x_BxF))


class JordanCell(nnx.Module):
  """Jordan network: the previous *output* feeds back into the hidden layer,

    h_t = tanh(W x_t + U y_{t-1} + b),   y_t = V h_t + c.

  The carry is y_{t-1} (output_size wide); the layer's output is y_t.
  """

  def __init__(
    self,
    in_features: int,
    hidden_size: int,
    output_size: int | None = None,
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.hidden_size = hidden_size
    self.carry_dtype = _carry_dtype(dtype)
    self.output_size = output_size or hidden_size
    self.W = linear(
      in_features, hidden_size, ('embed', 'mlp'), use_bias=True, dtype=dtype, rngs=rngs
    )
    self.U = linear(
      self.output_size, hidden_size, (None, 'mlp'), use_bias=False, dtype=dtype, rngs=rngs
    )
    self.V = linear(
      hidden_size, self.output_size, ('mlp', None), use_bias=True, dtype=dtype, rngs=rngs
    )

  def initial_carry(self, batch_size: int) -> Carry:
    return jnp.zeros((batch_size, self.output_size), self.carry_dtype)  # y

  def project_inputs(self, x_xF: jax.Array) -> jax.Array:
    return self.W(x_xF)

  def step(self, y_prev: Carry, wx_BxH: jax.Array) -> tuple[Carry, jax.Array]:
    h_t = jnp.tanh(wx_BxH + self.U(y_prev.astype(wx_BxH.dtype)))
    y_t = self.V(h_t).astype(self.carry_dtype)
    return y_t, y_t

  def __call__(self, carry: Carry, x_BxF: jax.Array) -> tuple[Carry, jax.Array]:
    return self.step(carry, self.project_inputs(x_BxF))


class _WeightNormLinear(nnx.Module):
  """y = x (g * v / ||v||) + b, each output column's norm set by its gain g (Salimans & Kingma
  2016; the sentiment neuron's released code normalises its four mLSTM kernels so). g starts at
  v's column norms, so the layer starts as the plain linear map of v."""

  def __init__(self, n_in: int, n_out: int, axes: tuple, *, use_bias: bool, dtype, rngs, **init):
    self.v = linear(n_in, n_out, axes, use_bias=use_bias, dtype=dtype, rngs=rngs, **init)
    norm = jnp.linalg.norm(self.v.kernel[...], axis=0)
    self.g = nnx.Param(nnx.with_partitioning(lambda *_: norm, (axes[1],))(None, norm.shape))
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.kernel.astype(self.dtype or x.dtype)
    y = x.astype(kernel.dtype) @ kernel
    return y if self.v.bias is None else y + self.v.bias[...].astype(kernel.dtype)

  @property
  def kernel(self) -> jax.Array:
    v = self.v.kernel[...]
    return v * (self.g[...] / jnp.linalg.norm(v, axis=0))

  @property
  def bias(self):
    return self.v.bias


class MLSTMCell(nnx.Module):
  """Multiplicative LSTM (Krause et al. 2016), the cell of Radford et al. 2017's sentiment
  neuron: an intermediate state m_t, the input's projection times the previous hidden state's,
  replaces h_{t-1} in the gates, so each input byte chooses its own recurrent transition:

    m_t = (W_mx x_t) * (W_mh h_{t-1})
    f_t = sigmoid(W_fx x_t + W_fm m_t + b_f)
    i_t = sigmoid(W_ix x_t + W_im m_t + b_i)
    o_t = sigmoid(W_ox x_t + W_om m_t + b_o)
    u_t = tanh(W_ux x_t + W_um m_t + b_u)
    c_t = f_t * c_{t-1} + i_t * u_t
    h_t = o_t * tanh(c_t)

  (Krause et al.'s paper places the tanh differently: no tanh on the candidate, the output gate
  inside the last tanh; these lines are the released sentiment-neuron code's, which the paper's
  results come from.) The four W_.x are one kernel `W` [F, 4H] (columns [f | i | o | u], as
  LSTMCell), the four W_.m one kernel `M` [H, 4H]; `W_mx` [F, H] and `W_mh` [H, H] make m_t.
  `weight_norm=True` normalises the columns of all four kernels with a learned gain each (the
  paper's option). Carry (c, h); output h.
  """

  def __init__(
    self,
    in_features: int,
    hidden_size: int,
    *,
    weight_norm: bool = False,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.hidden_size = hidden_size
    self.carry_dtype = _carry_dtype(dtype)
    make = _WeightNormLinear if weight_norm else linear
    kw = dict(dtype=dtype, rngs=rngs)
    H = hidden_size
    self.W = make(
      in_features, 4 * H, ('embed', 'mlp'), use_bias=True, bias_init=_forget_bias_init, **kw
    )
    self.W_mx = make(in_features, H, ('embed', 'mlp'), use_bias=False, **kw)
    orthogonal = nnx.initializers.orthogonal()
    self.W_mh = make(H, H, ('mlp', None), use_bias=False, kernel_init=orthogonal, **kw)
    self.M = make(H, 4 * H, ('mlp', None), use_bias=False, kernel_init=orthogonal, **kw)

  def initial_carry(self, batch_size: int) -> Carry:
    zeros = jnp.zeros((batch_size, self.hidden_size), self.carry_dtype)
    return zeros, zeros  # (c, h)

  def project_inputs(self, x_xF: jax.Array) -> jax.Array:
    return jnp.concatenate([self.W_mx(x_xF), self.W(x_xF)], -1)  # [W_mx x | W_.x x + b_.]

  def step(self, carry: Carry, wx_Bx5H: jax.Array) -> tuple[Carry, jax.Array]:
    c_prev, h_prev = carry
    wmx_BxH, wx_Bx4H = wx_Bx5H[..., : self.hidden_size], wx_Bx5H[..., self.hidden_size :]
    m_BxH = wmx_BxH * self.W_mh(h_prev.astype(wx_Bx5H.dtype))
    pre = (wx_Bx4H + self.M(m_BxH)).astype(self.carry_dtype)
    pre_f, pre_i, pre_o, pre_u = jnp.split(pre, 4, axis=-1)
    f_t = jax.nn.sigmoid(pre_f)
    i_t = jax.nn.sigmoid(pre_i)
    o_t = jax.nn.sigmoid(pre_o)
    c_t = f_t * c_prev + i_t * jnp.tanh(pre_u)
    h_t = o_t * jnp.tanh(c_t)
    return (c_t, h_t), h_t

  def __call__(self, carry: Carry, x_BxF: jax.Array) -> tuple[Carry, jax.Array]:
    return self.step(carry, self.project_inputs(x_BxF))


CELLS = {
  'lstm': LSTMCell,
  'elman': ElmanCell,
  'jordan': JordanCell,
  'mlstm': MLSTMCell,
  'mlstm_wn': functools.partial(MLSTMCell, weight_norm=True),  # the paper's weight normalisation
}


def cell_output_size(cell: nnx.Module) -> int:
  return getattr(cell, 'output_size', cell.hidden_size)


# ---- running a cell over sequences ---------------------------------------------------------------


def valid_mask(lengths_B: jax.Array | None, batch: int, time: int) -> jax.Array:
  """[B, T] booleans: True where step t < the sequence's length."""
  if lengths_B is None:
    return jnp.ones((batch, time), bool)
  return jnp.arange(time)[None, :] < lengths_B[:, None]


def reverse_valid(x_BxTx: jax.Array, lengths_B: jax.Array | None) -> jax.Array:
  """Reverses each sequence's first `length` steps and leaves its padding in place, so that the
  backward direction starts at a sequence's real last step, not at padding. An involution."""
  batch, time = x_BxTx.shape[:2]
  if lengths_B is None:
    return x_BxTx[:, ::-1]
  t_T = jnp.arange(time)
  src_BxT = jnp.where(t_T[None] < lengths_B[:, None], lengths_B[:, None] - 1 - t_T[None], t_T[None])
  return jnp.take_along_axis(x_BxTx, src_BxT.reshape(batch, time, *[1] * (x_BxTx.ndim - 2)), axis=1)


LSTM_KERNELS = ('auto', 'scan', 'ffi', 'onednn')


def _fused_lstm_applies(cell, x_BxTxF, lengths_B, carry, kernel=lstm_ffi) -> bool:
  """Whether a fused kernel (jdl.models.lstm_ffi or its onednn module) can run this layer
  exactly: an LSTM over whole sequences in float32, the kernel built."""
  f32 = jnp.dtype(jnp.float32)
  return (
    type(cell) is LSTMCell
    and lengths_B is None
    and x_BxTxF.shape[1] > 0
    and jnp.dtype(cell.W.dtype or jnp.float32) == f32
    and x_BxTxF.dtype == f32
    and all(leaf.dtype == f32 for leaf in jax.tree.leaves(carry))
    and kernel.available()
  )


def _run_fused_lstm(cell: LSTMCell, x_BxTxF: jax.Array, carry: Carry):
  """run_cell's result through the fused kernel: the input projection of every step as one XLA
  product (time-major, the kernel's layout), then the recurrence in one custom call."""
  c0_BxH, h0_BxH = carry
  wx_TxBx4H = cell.project_inputs(jnp.swapaxes(x_BxTxF, 0, 1))
  h_TxBxH, c_BxH = lstm_ffi.lstm_sequence(wx_TxBx4H, cell.U.kernel[...], c0_BxH, h0_BxH)
  return (c_BxH, h_TxBxH[-1]), jnp.swapaxes(h_TxBxH, 0, 1), h_TxBxH[-1]


def _run_onednn_lstm(cell: LSTMCell, x_BxTxF: jax.Array, carry: Carry):
  """run_cell's result through oneDNN's LSTM primitives (input projection included)."""
  c0_BxH, h0_BxH = carry
  h_TxBxH, c_BxH, h_BxH = onednn.lstm_layer(
    jnp.swapaxes(x_BxTxF, 0, 1),
    cell.W.kernel[...],
    cell.W.bias[...],
    cell.U.kernel[...],
    c0_BxH,
    h0_BxH,
  )
  return (c_BxH, h_BxH), jnp.swapaxes(h_TxBxH, 0, 1), h_BxH


# The fused kernels by name, with how run_cell runs each, in the order 'auto' tries them.
FUSED_LSTM_KERNELS = {'onednn': (onednn, _run_onednn_lstm), 'ffi': (lstm_ffi, _run_fused_lstm)}


def run_cell(
  cell: nnx.Module,
  x_BxTxF: jax.Array,
  lengths_B: jax.Array | None = None,
  carry: Carry | None = None,
  unroll: int = 1,
  lstm_kernel: str = 'scan',
) -> tuple[Carry, jax.Array, jax.Array]:
  """Runs `cell` forward over time. Steps at or beyond a sequence's length leave its carry
  unchanged and output zeros. Returns (final carry, outputs [B, T, H], last valid output [B, H]).
  `unroll` steps per loop iteration cut the loop's per-iteration overhead, which matters for
  small cells; for the 512-unit LSTM of `jdl bench lstm` 8 measured slower than 1.
  `lstm_kernel`: see the module's docstring ('ffi' and 'onednn' raise where their kernel is
  unavailable)."""
  batch, time = x_BxTxF.shape[:2]
  if carry is None:
    carry = cell.initial_carry(batch)
  if lstm_kernel not in LSTM_KERNELS:
    raise ValueError(f'lstm_kernel must be one of {LSTM_KERNELS}, not {lstm_kernel!r}')
  fused = FUSED_LSTM_KERNELS
  if lstm_kernel in fused and type(cell) is LSTMCell and not fused[lstm_kernel][0].available():
    reason = fused[lstm_kernel][0].unavailable_reason()
    raise ValueError(f'lstm_kernel {lstm_kernel}: the kernel is unavailable ({reason})')
  if lstm_kernel in fused:
    kernel, run = fused[lstm_kernel]
    if _fused_lstm_applies(cell, x_BxTxF, lengths_B, carry, kernel):
      return run(cell, x_BxTxF, carry)
  # 'auto' asks only where the default backend is the CPU (a GPU or TPU machine never builds a
  # kernel), the fastest first; platform_dependent then keeps the scan for a lowering for
  # another platform (a TPU step compiled ahead on this CPU: `jdl compile`).
  elif lstm_kernel == 'auto' and jax.default_backend() == 'cpu':
    for kernel, run in fused.values():
      if _fused_lstm_applies(cell, x_BxTxF, lengths_B, carry, kernel):
        return jax.lax.platform_dependent(
          x_BxTxF,
          carry,
          cpu=lambda x, c: run(cell, x, c),
          default=lambda x, c: run_cell(cell, x, None, c, unroll),
        )
  x_TxBxF = jnp.swapaxes(x_BxTxF, 0, 1)  # scan runs over the leading axis
  if lengths_B is None:
    # Every step is valid: no per-step select of the carry (measured 1.10x on `jdl bench lstm`).
    def plain(carry, x_BxF):
      return cell(carry, x_BxF)

    carry, y_TxBxH = jax.lax.scan(plain, carry, x_TxBxF, unroll=unroll)
    return carry, jnp.swapaxes(y_TxBxH, 0, 1), y_TxBxH[-1]
  valid_TxB = valid_mask(lengths_B, batch, time).T
  last_BxH = jnp.zeros((batch, cell_output_size(cell)), jax.tree.leaves(carry)[0].dtype)

  def body(state, inputs):
    carry, last_BxH = state
    x_BxF, valid_B = inputs
    new_carry, y_BxH = cell(carry, x_BxF)
    keep = lambda new, old: jnp.where(valid_B.reshape(-1, *[1] * (new.ndim - 1)), new, old)
    carry = jax.tree.map(keep, new_carry, carry)
    y_BxH = keep(y_BxH, jnp.zeros_like(y_BxH))
    return (carry, keep(y_BxH, last_BxH)), y_BxH

  (carry, last_BxH), y_TxBxH = jax.lax.scan(
    body, (carry, last_BxH), (x_TxBxF, valid_TxB), unroll=unroll
  )
  return carry, jnp.swapaxes(y_TxBxH, 0, 1), last_BxH


class RNN(nnx.Module):
  """A stack of `num_layers` recurrent layers of one cell type, optionally bidirectional.

  A bidirectional layer runs a second cell over each sequence's valid part reversed and
  concatenates both directions' outputs (forward first), 2 * hidden wide; the next layer reads
  that. Call with x [B, T, F] and optional lengths [B]; returns (outputs [B, T, D], summary
  [B, D]), where the summary is the top layer's output at the last valid step of each direction
  (for the backward direction, the step at t = 0), a fixed-size encoding of each sequence.
  """

  def __init__(
    self,
    cell: str,
    in_features: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    unroll: int = 1,
    lstm_kernel: str = 'scan',
    dtype=jnp.float32,
    rngs: nnx.Rngs,
    **cell_kwargs,
  ):
    if cell not in CELLS:
      raise ValueError(f'unknown cell {cell!r}; choose one of {sorted(CELLS)}')
    if lstm_kernel not in LSTM_KERNELS:
      raise ValueError(f'lstm_kernel must be one of {LSTM_KERNELS}, not {lstm_kernel!r}')
    self.lstm_kernel = lstm_kernel
    make = lambda n_in: CELLS[cell](n_in, hidden_size, dtype=dtype, rngs=rngs, **cell_kwargs)
    self.bidirectional = bidirectional
    self.unroll = unroll
    forward, backward = [], []
    width = in_features
    for _ in range(num_layers):
      forward.append(make(width))
      if bidirectional:
        backward.append(make(width))
      width = cell_output_size(forward[-1]) * (2 if bidirectional else 1)
    self.forward_cells = nnx.List(forward)
    self.backward_cells = nnx.List(backward)
    self.output_size = width

  def __call__(
    self, x_BxTxF: jax.Array, lengths_B: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    outputs_BxTxD, summary_BxD, _ = self.run(x_BxTxF, lengths_B)
    return outputs_BxTxD, summary_BxD

  def initial_carries(self, batch_size: int) -> list[Carry]:
    return [cell.initial_carry(batch_size) for cell in self.forward_cells]

  def run(
    self, x_BxTxF: jax.Array, lengths_B: jax.Array | None = None, carries: list[Carry] | None = None
  ) -> tuple[jax.Array, jax.Array, list[Carry]]:
    """As `__call__`, and also each forward layer's final carry; `carries` (one per layer, as
    returned) continues from an earlier call instead of the zero state. That is how a language
    model reads a prompt once and then generates one character per call."""
    if carries is not None and self.bidirectional:
      raise ValueError('a bidirectional RNN reads whole sequences; it cannot continue a carry')
    h_BxTxD = x_BxTxF
    finals = []
    for i, cell in enumerate(self.forward_cells):
      carry = None if carries is None else carries[i]
      final, out_BxTxH, last_BxH = run_cell(
        cell, h_BxTxD, lengths_B, carry, unroll=self.unroll, lstm_kernel=self.lstm_kernel
      )
      finals.append(final)
      if self.bidirectional:
        reversed_in = reverse_valid(h_BxTxD, lengths_B)
        _, back_rev_BxTxH, back_last_BxH = run_cell(
          self.backward_cells[i],
          reversed_in,
          lengths_B,
          unroll=self.unroll,
          lstm_kernel=self.lstm_kernel,
        )
        out_BxTxH = jnp.concatenate([out_BxTxH, reverse_valid(back_rev_BxTxH, lengths_B)], -1)
        last_BxH = jnp.concatenate([last_BxH, back_last_BxH], -1)
      h_BxTxD = out_BxTxH
    return h_BxTxD, last_BxH, finals


class SequenceRegressor(nnx.Module):
  """RNN encoder and a linear head on its per-sequence summary: [B, T, F] -> [B, out]."""

  def __init__(
    self,
    cell: str,
    in_features: int,
    hidden_size: int,
    out_features: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    unroll: int = 1,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.rnn = RNN(
      cell,
      in_features,
      hidden_size,
      num_layers=num_layers,
      bidirectional=bidirectional,
      unroll=unroll,
      dtype=dtype,
      rngs=rngs,
    )
    self.head = linear(
      self.rnn.output_size, out_features, ('mlp', None), use_bias=True, dtype=dtype, rngs=rngs
    )

  def __call__(self, x_BxTxF: jax.Array, lengths_B: jax.Array | None = None) -> jax.Array:
    _, summary_BxD = self.rnn(x_BxTxF, lengths_B)
    return self.head(summary_BxD)


class CharRNN(nnx.Module):
  """A character-level language model: an embedding of each character, a stack of recurrent
  layers, and a linear read-out of the next character's logits at every position.

  Call with tokens [B, T] (and optionally the carries of an earlier call); returns logits
  [B, T, V] and the final carries, so that generation feeds one character at a time."""

  def __init__(
    self,
    cell: str,
    vocab_size: int,
    embed_dim: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    unroll: int = 1,
    lstm_kernel: str = 'scan',
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.vocab_size = vocab_size
    self.embed = nnx.Embed(
      vocab_size,
      embed_dim,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
      embedding_init=nnx.with_partitioning(nnx.initializers.normal(1.0), ('vocab', 'embed')),
    )
    self.rnn = RNN(
      cell,
      embed_dim,
      hidden_size,
      num_layers=num_layers,
      unroll=unroll,
      lstm_kernel=lstm_kernel,
      dtype=dtype,
      rngs=rngs,
    )
    self.head = linear(
      self.rnn.output_size, vocab_size, ('mlp', 'vocab'), use_bias=True, dtype=dtype, rngs=rngs
    )

  def __call__(
    self, tokens_BxT: jax.Array, carries: list[Carry] | None = None
  ) -> tuple[jax.Array, list[Carry]]:
    outputs_BxTxD, _, carries = self.rnn.run(self.embed(tokens_BxT), carries=carries)
    return self.head(outputs_BxTxD), carries
