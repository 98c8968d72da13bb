"""The multiplicative LSTM against a NumPy reference of its equations (plain and weight-normalised),
its gradients against finite differences, and a carried state against one long pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

import jdl.train.task  # noqa: F401  (turns off eager sharding, as the loop runs models)
from jdl.models import rnn

B, T, F, H = 3, 7, 4, 5


def _cell(name, seed=1, in_features=F, hidden=H, dtype=jnp.float32):
  cell = rnn.CELLS[name](in_features, hidden, dtype=dtype, rngs=nnx.Rngs(seed))
  # Random biases and gains: the forget-gate-one bias and norm-equal gains would hide a mistake.
  leaves = jax.tree.leaves(
    nnx.state(cell, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable)
  )
  for i, leaf in enumerate(leaves):
    if leaf[...].ndim == 1:
      leaf[...] = jax.random.normal(jax.random.key(100 + i), leaf[...].shape, leaf[...].dtype)
  return cell


def _kernel(layer):
  """A layer's effective kernel in float64: plain, or g * v / ||v|| per column, recomputed here."""
  if isinstance(layer, nnx.Linear):
    return np.asarray(layer.kernel[...], np.float64)
  v, g = np.asarray(layer.v.kernel[...], np.float64), np.asarray(layer.g[...], np.float64)
  return v / np.sqrt((v**2).sum(0, keepdims=True)) * g


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


def numpy_mlstm(cell, x_BxTxF):
  """Krause et al.'s equations as the sentiment neuron's code writes them, gate by gate."""
  W, M, W_mx, W_mh = (_kernel(layer) for layer in (cell.W, cell.M, cell.W_mx, cell.W_mh))
  b = np.asarray(cell.W.bias[...], np.float64)
  W_f, W_i, W_o, W_u = np.split(W, 4, axis=1)
  M_f, M_i, M_o, M_u = np.split(M, 4, axis=1)
  b_f, b_i, b_o, b_u = np.split(b, 4)
  c = h = np.zeros((x_BxTxF.shape[0], cell.hidden_size))
  outputs, cells = [], []
  for x in np.asarray(x_BxTxF, np.float64).swapaxes(0, 1):
    m = (x @ W_mx) * (h @ W_mh)
    f = _sigmoid(x @ W_f + m @ M_f + b_f)
    i = _sigmoid(x @ W_i + m @ M_i + b_i)
    o = _sigmoid(x @ W_o + m @ M_o + b_o)
    c = f * c + i * np.tanh(x @ W_u + m @ M_u + b_u)
    h = o * np.tanh(c)
    outputs.append(h)
    cells.append(c)
  return np.stack(outputs, 1), np.stack(cells, 1)


@pytest.mark.parametrize('name', ['mlstm', 'mlstm_wn'])
def test_mlstm_equals_numpy(name):
  cell, x = _cell(name), jax.random.normal(jax.random.key(0), (B, T, F))
  (c_final, h_final), ours_BxTxH, last_BxH = rnn.run_cell(cell, x, unroll=3)
  ref_h, ref_c = numpy_mlstm(cell, x)
  np.testing.assert_allclose(ours_BxTxH, ref_h, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(c_final, ref_c[:, -1], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(h_final, ref_h[:, -1], atol=1e-5, rtol=1e-5)
  assert np.abs(ref_h).max() > 0.05  # the reference is not trivially near zero


def test_weight_norm_starts_as_the_plain_kernel_and_keeps_the_gain():
  cell = rnn.CELLS['mlstm_wn'](F, H, rngs=nnx.Rngs(3))
  np.testing.assert_allclose(cell.W.kernel, cell.W.v.kernel[...], rtol=1e-6)
  cell.W.v.kernel[...] = cell.W.v.kernel[...] * 7.0  # scaling v leaves the kernel unchanged
  np.testing.assert_allclose(np.linalg.norm(cell.W.kernel, axis=0), cell.W.g[...], rtol=1e-5)
  params = jax.tree.leaves(nnx.state(cell, nnx.Param))
  plain = jax.tree.leaves(nnx.state(rnn.CELLS['mlstm'](F, H, rngs=nnx.Rngs(3)), nnx.Param))
  # one gain per output column of the four kernels: 4H + 4H + H + H
  assert sum(p.size for p in params) - sum(p.size for p in plain) == 10 * H


@pytest.mark.parametrize('name', ['mlstm', 'mlstm_wn'])
def test_gradients_match_finite_differences(name):
  with jax.enable_x64(True):
    cell = _cell(name, in_features=2, hidden=3, dtype=jnp.float64)
    graphdef, params = nnx.split(cell)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    x = jax.random.normal(jax.random.key(4), (2, 4, 2), jnp.float64)

    def loss(params, x):
      _, out, _ = rnn.run_cell(nnx.merge(graphdef, params), x)
      return jnp.sum(out**2)

    check_grads(loss, (params, x), order=1, modes=['rev'], atol=1e-5, rtol=1e-5)


def test_carried_state_equals_one_long_pass():
  """Reading a sequence in chunks, each continuing the last one's carry (truncated BPTT's
  forward pass), gives the one long pass's outputs and final state."""
  model = rnn.CharRNN('mlstm', 256, 6, 8, rngs=nnx.Rngs(2))
  tokens = jax.random.randint(jax.random.key(5), (2, 24), 0, 256)
  whole, finals = model(tokens)
  outs, carries = [], None
  for start in range(0, 24, 8):
    out, carries = model(tokens[:, start : start + 8], carries)
    outs.append(out)
  np.testing.assert_allclose(jnp.concatenate(outs, 1), whole, atol=1e-5)
  for a, b in zip(jax.tree.leaves(carries), jax.tree.leaves(finals), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6)
