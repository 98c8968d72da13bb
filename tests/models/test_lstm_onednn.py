"""oneDNN's LSTM primitives (jdl.models.lstm_ffi.onednn) against the lax.scan LSTM: outputs,
final carries and every gradient, sharded and not, the rnn_lm training step, 'auto' choosing it,
and the error when it is disabled or its package is missing."""

import importlib.metadata
import math

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding

from jdl.models import lstm_ffi, rnn
from jdl.models.lstm_ffi import onednn
from tests.models.test_lstm_ffi import _assert_close, _hlo, _loss_and_grads, _problem, rnn_lm_losses


@pytest.fixture(autouse=True)
def fresh_kernel_state():
  """Every test decides availability anew (a test may disable the kernel)."""
  onednn.reset()
  yield
  onednn.reset()


@pytest.mark.parametrize(
  'B,T,F,H',
  [
    (3, 5, 4, 7),  # odd sizes, H below one vector
    (64, 128, 64, 512),  # `jdl bench lstm`'s layer
  ],
)
def test_outputs_carry_and_gradients_equal_the_scan(B, T, F, H):
  assert onednn.available(), onednn.unavailable_reason()
  cell, x, carry, weights = _problem(B, T, F, H)
  grads = _loss_and_grads(cell, 'onednn')
  assert onednn.BACKWARD in grads.lower(x, carry, weights).as_text()
  (loss_scan, aux_scan), grads_scan = _loss_and_grads(cell, 'scan')(x, carry, weights)
  (loss_dnn, aux_dnn), grads_dnn = grads(x, carry, weights)
  _assert_close(aux_dnn, aux_scan)  # final c, final h, every output
  _assert_close(loss_dnn, loss_scan)
  # W, b, U (the state), the inputs, the initial (c, h)
  assert len(jax.tree.leaves(grads_dnn)) == 6
  _assert_close(grads_dnn, grads_scan)


def test_auto_runs_onednn_on_cpu():
  cell, x, carry, _ = _problem(2, 4, 3, 8)
  run = lambda x, carry: rnn.run_cell(cell, x, None, carry, lstm_kernel='auto')[1]
  hlo = _hlo(run, x, carry)
  assert onednn.FORWARD in hlo and lstm_ffi.FORWARD not in hlo
  scan = rnn.run_cell(cell, x, None, carry, lstm_kernel='scan')[1]
  np.testing.assert_allclose(run(x, carry), scan, atol=1e-6)


def test_disabled_kernel_raises_and_lengths_run_the_scan(monkeypatch):
  cell, x, carry, _ = _problem(2, 4, 3, 8)
  # Per-row lengths run the scan (the primitive has no per-row mask).
  lengths = np.array([4, 2])
  masked = lambda x, carry: rnn.run_cell(cell, x, lengths, carry, lstm_kernel='onednn')[1]
  assert onednn.FORWARD not in _hlo(masked, x, carry)
  monkeypatch.setenv(onednn.DISABLE_ENV, '0')
  onednn.reset()
  with pytest.raises(
    ValueError, match='onednn: the kernel is unavailable .disabled by JDL_LSTM_ONEDNN=0'
  ):
    rnn.run_cell(cell, x, None, carry, lstm_kernel='onednn')


def test_missing_onednn_package_is_a_reason(monkeypatch):
  def missing(name):
    raise importlib.metadata.PackageNotFoundError(name)

  monkeypatch.setattr(importlib.metadata, 'distribution', missing)
  assert not onednn.available()
  assert 'oneDNN is missing (onednn-cpu-gomp): pip install' in onednn.unavailable_reason()
  cell, x, carry, _ = _problem(2, 4, 3, 8)
  with pytest.raises(ValueError, match='onednn: the kernel is unavailable .oneDNN is missing'):
    rnn.run_cell(cell, x, None, carry, lstm_kernel='onednn')


@pytest.mark.parametrize('batch', [8, 3])  # split over data x fsdp = 4; 3 does not divide
def test_sharded_batch_equals_one_device(batch):
  cell, x, carry, weights = _problem(batch, 4, 3, 20)
  (_, aux_want), grads_want = _loss_and_grads(cell, 'scan')(x, carry, weights)
  mesh = jax.make_mesh((2, 2, 2), ('data', 'fsdp', 'tensor'), (jax.sharding.AxisType.Auto,) * 3)
  rows = ('data', 'fsdp') if batch % 4 == 0 else None
  put = lambda a: jax.device_put(a, NamedSharding(mesh, jax.P(rows)))
  args = (put(x), jax.tree.map(put, carry), put(weights))
  with jax.set_mesh(mesh):
    grads = _loss_and_grads(cell, 'onednn')
    assert onednn.BACKWARD in grads.lower(*args).as_text()
    (_, aux_got), grads_got = grads(*args)
  _assert_close(aux_got, aux_want)
  _assert_close(grads_got, grads_want)


def test_rnn_lm_training_steps_give_the_scans_losses(tmp_path, monkeypatch):
  """`jdl train`'s loop on the smoke config (the batch split over this process's devices), with
  the rnn_lm task's default `model.lstm_kernel` ('auto', which picks oneDNN's primitives on this
  CPU) and with 'scan'."""
  assert onednn.available(), onednn.unavailable_reason()
  calls = []
  traced = onednn.lstm_layer
  monkeypatch.setattr(onednn, 'lstm_layer', lambda *a: calls.append(1) or traced(*a))
  losses = {}
  for kernel in ('scan', None):  # None: the task's default, rnn_lm.LSTM_KERNEL
    losses[kernel or 'onednn'] = rnn_lm_losses(tmp_path / str(kernel), kernel)
    assert bool(calls) == (kernel is None)
  assert len(losses['onednn']) == 5 and math.isfinite(losses['onednn'][-1])
  np.testing.assert_allclose(losses['onednn'], losses['scan'], rtol=1e-5)
