"""The recurrent cells against flax and NumPy references, and the RNN layer's scan, masking,
stacking and bidirectionality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

import jdl.train.task  # noqa: F401  (turns off eager sharding, as the loop runs models)
from jdl.models import rnn

B, T, F, H = 3, 7, 4, 5


def _inputs(seed=0, shape=(B, T, F)):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _cell(name, seed=1, in_features=F, hidden=H, dtype=jnp.float32):
  cell = rnn.CELLS[name](in_features, hidden, dtype=dtype, rngs=nnx.Rngs(seed))
  # Random biases: the zero / forget-gate-one initial biases would hide a misplaced bias.
  for i, leaf in enumerate(
    jax.tree.leaves(nnx.state(cell, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))
  ):
    if leaf[...].ndim == 1:
      leaf[...] = jax.random.normal(jax.random.key(100 + i), leaf[...].shape, leaf[...].dtype)
  return cell


def _np(linear):
  kernel = np.asarray(linear.kernel[...], np.float64)
  bias = np.asarray(linear.bias[...], np.float64) if linear.bias is not None else 0.0
  return kernel, bias


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


def numpy_lstm(cell, x_BxTxF):
  """The lecture's equations, gate by gate, in float64."""
  W, b = _np(cell.W)
  U, _ = _np(cell.U)
  W_f, W_i, W_o, W_c = np.split(W, 4, axis=1)
  U_f, U_i, U_o, U_c = np.split(U, 4, axis=1)
  b_f, b_i, b_o, b_c = np.split(b, 4)
  c = h = np.zeros((x_BxTxF.shape[0], cell.hidden_size))
  outputs = []
  for x in np.asarray(x_BxTxF, np.float64).swapaxes(0, 1):
    f = _sigmoid(x @ W_f + h @ U_f + b_f)
    i = _sigmoid(x @ W_i + h @ U_i + b_i)
    o = _sigmoid(x @ W_o + h @ U_o + b_o)
    c = f * c + i * np.tanh(x @ W_c + h @ U_c + b_c)
    h = o * np.tanh(c)
    outputs.append(h)
  return np.stack(outputs, 1)


def numpy_elman(cell, x_BxTxF):
  (W, b), (U, _) = _np(cell.W), _np(cell.U)
  h = np.zeros((x_BxTxF.shape[0], cell.hidden_size))
  outputs = []
  for x in np.asarray(x_BxTxF, np.float64).swapaxes(0, 1):
    h = np.tanh(x @ W + h @ U + b)
    outputs.append(h)
  return np.stack(outputs, 1)


def numpy_jordan(cell, x_BxTxF):
  (W, b), (U, _), (V, c) = _np(cell.W), _np(cell.U), _np(cell.V)
  y = np.zeros((x_BxTxF.shape[0], cell.output_size))
  outputs = []
  for x in np.asarray(x_BxTxF, np.float64).swapaxes(0, 1):
    h = np.tanh(x @ W + y @ U + b)
    y = h @ V + c
    outputs.append(y)
  return np.stack(outputs, 1)


NUMPY = {'lstm': numpy_lstm, 'elman': numpy_elman, 'jordan': numpy_jordan}


def test_lstm_equals_flax_optimized_lstm_cell_and_numpy():
  cell, x = _cell('lstm'), _inputs()
  _, ours_BxTxH, _ = rnn.run_cell(cell, x)

  # flax's OptimizedLSTMCell: dense_i (no bias) and dense_h (with bias), columns [i | f | g | o];
  # ours: W (with bias) and U (no bias), columns [f | i | o | c] (c is flax's g).
  flax_cell = nnx.OptimizedLSTMCell(F, H, rngs=nnx.Rngs(0))

  def to_flax(a):
    f, i, o, c = jnp.split(a[...], 4, axis=-1)
    return jnp.concatenate([i, f, c, o], axis=-1)

  flax_cell.dense_i.kernel[...] = to_flax(cell.W.kernel)
  flax_cell.dense_h.kernel[...] = to_flax(cell.U.kernel)
  flax_cell.dense_h.bias[...] = to_flax(cell.W.bias)

  @nnx.jit  # one compiled loop rather than op-by-op dispatch
  def flax_run(flax_cell, x):
    carry = (jnp.zeros((B, H)), jnp.zeros((B, H)))  # (c, h), as ours
    flax_outputs = []
    for t in range(T):
      carry, h = flax_cell(carry, x[:, t])
      flax_outputs.append(h)
    return jnp.stack(flax_outputs, 1)

  np.testing.assert_allclose(ours_BxTxH, flax_run(flax_cell, x), atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(ours_BxTxH, numpy_lstm(cell, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('name', ['elman', 'jordan'])
def test_elman_and_jordan_equal_numpy(name):
  cell, x = _cell(name), _inputs()
  _, ours_BxTxH, _ = rnn.run_cell(cell, x)
  np.testing.assert_allclose(ours_BxTxH, NUMPY[name](cell, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('name', ['lstm', 'elman', 'jordan'])
def test_scan_equals_unrolled_python_loop(name):
  cell, x = _cell(name), _inputs()
  carry_scan, out_scan, last_scan = rnn.run_cell(cell, x, unroll=3)
  carry = cell.initial_carry(B)
  outputs = []
  for t in range(T):
    carry, y = cell(carry, x[:, t])
    outputs.append(y)
  np.testing.assert_allclose(out_scan, jnp.stack(outputs, 1), atol=1e-6)
  np.testing.assert_allclose(last_scan, outputs[-1], atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), carry_scan, carry)


@pytest.mark.parametrize('name', ['lstm', 'elman', 'jordan'])
def test_no_lengths_equals_full_lengths(name):
  # Without lengths run_cell skips the per-step select; with every length = T it keeps it. The
  # two programs fuse differently, so they agree to float32 rounding (1 ulp seen), not bitwise.
  cell, x = _cell(name), _inputs()
  plain = rnn.run_cell(cell, x)
  masked = rnn.run_cell(cell, x, jnp.full((B,), T))
  same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  jax.tree.map(same, plain, masked)


@pytest.mark.parametrize('name', ['lstm', 'elman', 'jordan'])
def test_gradients_match_finite_differences(name):
  with jax.enable_x64(True):  # float64 throughout, so finite differences are exact enough
    cell = _cell(name, in_features=2, hidden=3, dtype=jnp.float64)
    graphdef, params = nnx.split(cell)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    x = jnp.asarray(_inputs(shape=(2, 3, 2)), jnp.float64)

    @jax.jit  # one compilation per derivative instead of one per scan call
    def total(params, x):
      _, outputs, last = rnn.run_cell(nnx.merge(graphdef, params), x, jnp.array([3, 2]))
      return jnp.sum(outputs**2) + jnp.sum(jnp.sin(last))

    check_grads(total, (params, x), order=1, modes=['rev'])


@pytest.mark.parametrize('name', ['lstm', 'jordan'])  # a tuple carry and an output carry
def test_padded_steps_leave_the_state_unchanged(name):
  cell, x = _cell(name), _inputs()
  lengths = jnp.array([T, 4, 1])
  carry, outputs, last = rnn.run_cell(cell, x, lengths)
  for b, length in enumerate(lengths.tolist()):
    alone_carry, alone_out, alone_last = rnn.run_cell(cell, x[b : b + 1, :length])
    np.testing.assert_allclose(outputs[b, :length], alone_out[0], atol=1e-6)
    np.testing.assert_array_equal(outputs[b, length:], 0.0)  # padding outputs zeros
    np.testing.assert_allclose(last[b], alone_last[0], atol=1e-6)
    jax.tree.map(lambda a, s: np.testing.assert_allclose(a[b], s[0], atol=1e-6), carry, alone_carry)


def test_bidirectional_backward_runs_each_valid_part_reversed():
  layer = rnn.RNN('lstm', F, H, bidirectional=True, rngs=nnx.Rngs(0))
  x, lengths = _inputs(), jnp.array([T, 5, 2])
  out_BxTx2H, summary_Bx2H = layer(x, lengths)
  assert out_BxTx2H.shape == (B, T, 2 * H) and summary_Bx2H.shape == (B, 2 * H)
  backward_cell = layer.backward_cells[0]
  for b, length in enumerate(lengths.tolist()):
    _, reversed_run, _ = rnn.run_cell(backward_cell, x[b : b + 1, :length][:, ::-1])
    np.testing.assert_allclose(out_BxTx2H[b, :length, H:], reversed_run[0, ::-1], atol=1e-6)
    np.testing.assert_array_equal(out_BxTx2H[b, length:], 0.0)
    # the backward summary is its output at t = 0, having read the whole sequence
    np.testing.assert_allclose(summary_Bx2H[b, H:], reversed_run[0, -1], atol=1e-6)


@pytest.mark.parametrize('name', ['lstm', 'jordan'])
def test_stacked_bidirectional_shapes_and_axis_names(name):
  model = rnn.SequenceRegressor(name, F, H, 2, num_layers=3, bidirectional=True, rngs=nnx.Rngs(0))
  assert model(_inputs(), jnp.array([T, 3, 1])).shape == (B, 2)
  assert model.rnn.forward_cells[1].W.in_features == 2 * H  # reads both directions below
  specs = jax.tree.leaves(
    nnx.get_partition_spec(nnx.state(model, nnx.Param)),
    is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec),
  )
  for spec in specs:
    names = [a for a in spec if a is not None]
    assert len(names) == len(set(names)), spec  # no mesh axis mapped twice
