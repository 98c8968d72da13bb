"""The fused XLA:CPU LSTM (jdl.models.lstm_ffi) against the lax.scan LSTM it replaces: outputs,
final carries and gradients, sharded and not, the rnn_lm training step, and the fallback when
the kernel is disabled or cannot be built."""

import logging
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding

import jdl.train.task  # noqa: F401  (turns off eager sharding, as the loop runs models)
from jdl import config as config_lib
from jdl.models import lstm_ffi, rnn
from jdl.models.lstm_ffi import onednn
from jdl.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHAR_BIBLE = str(ROOT / 'experiments/rnn/char_bible.py')


@pytest.fixture(autouse=True)
def fresh_kernel_state(monkeypatch):
  """Every test decides availability anew (a test may disable or break the build), with the
  oneDNN kernel, which 'auto' prefers, disabled (tests/models/test_lstm_onednn.py)."""
  monkeypatch.setenv(onednn.DISABLE_ENV, '0')
  lstm_ffi.reset()
  onednn.reset()
  yield
  lstm_ffi.reset()
  onednn.reset()


def _problem(B, T, F, H, seed=0):
  cell = rnn.LSTMCell(F, H, rngs=nnx.Rngs(seed))
  keys = jax.random.split(jax.random.key(seed + 1), 4)
  x_BxTxF = jax.random.normal(keys[0], (B, T, F))
  carry = (jax.random.normal(keys[1], (B, H)), jax.random.normal(keys[2], (B, H)))
  # A cotangent that weighs every output differently, so no error can cancel out.
  weights_BxTxH = jax.random.normal(keys[3], (B, T, H))
  return cell, x_BxTxF, carry, weights_BxTxH


def _loss_and_grads(cell, kernel):
  graphdef, state = nnx.split(cell)

  def loss(state, x_BxTxF, carry, weights_BxTxH):
    (c_BxH, h_BxH), y_BxTxH, last_BxH = rnn.run_cell(
      nnx.merge(graphdef, state), x_BxTxF, None, carry, lstm_kernel=kernel
    )
    value = jnp.sum(y_BxTxH * weights_BxTxH) + jnp.sum(c_BxH * 1.3) - jnp.sum(h_BxH * 0.7)
    return value + jnp.sum(last_BxH), (c_BxH, h_BxH, y_BxTxH)

  grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
  run = lambda *args: grad(state, *args)
  run.lower = lambda *args: grad.lower(state, *args)
  return run


def _assert_close(got, want, rtol=1e-5):
  """Equal to `rtol` relative to the largest magnitude of each array (float32 rounding)."""
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    g, w = np.asarray(g), np.asarray(w)
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, rtol=0, atol=rtol * max(float(np.abs(w).max()), 1e-6))


def _hlo(fn, *args) -> str:
  return jax.jit(fn).lower(*args).as_text()


@pytest.mark.parametrize(
  'B,T,F,H,threads',
  [
    (3, 5, 4, 7, 2),  # H below one vector: one thread does all, no vector code
    (1, 1, 3, 37, 2),  # B = 1, T = 1, H not a multiple of 8 or 16: chunks of 16, 16, 5 units
    (4, 3, 5, 40, 3),  # three threads, chunks of 16, 16, 8 units
  ],
)
def test_outputs_carry_and_gradients_equal_the_scan(B, T, F, H, threads, monkeypatch):
  monkeypatch.setenv(lstm_ffi.THREADS_ENV, str(threads))
  assert lstm_ffi.available(), lstm_ffi.unavailable_reason()
  cell, x, carry, weights = _problem(B, T, F, H)
  (loss_scan, aux_scan), grads_scan = _loss_and_grads(cell, 'scan')(x, carry, weights)
  (loss_ffi, aux_ffi), grads_ffi = _loss_and_grads(cell, 'ffi')(x, carry, weights)
  _assert_close(aux_ffi, aux_scan)  # final c, final h, every output
  _assert_close(loss_ffi, loss_scan)
  # W, b, U (the state), the inputs, the initial (c, h)
  assert len(jax.tree.leaves(grads_ffi)) == 6
  _assert_close(grads_ffi, grads_scan)


def test_auto_runs_the_kernel_on_cpu_and_scan_does_not():
  cell, x, carry, _ = _problem(2, 4, 3, 8)
  run = lambda kernel: lambda x, carry: rnn.run_cell(cell, x, None, carry, lstm_kernel=kernel)[1]
  assert lstm_ffi.FORWARD in _hlo(run('auto'), x, carry)
  assert lstm_ffi.FORWARD not in _hlo(run('scan'), x, carry)
  np.testing.assert_allclose(run('auto')(x, carry), run('scan')(x, carry), atol=1e-6)
  # Per-row lengths run the scan (the kernel has no per-row mask).
  lengths = jnp.array([4, 2])
  masked = lambda x, carry: rnn.run_cell(cell, x, lengths, carry, lstm_kernel='auto')[1]
  assert lstm_ffi.FORWARD not in _hlo(masked, x, carry)


def test_disabled_kernel_runs_the_scan_and_says_why(monkeypatch, caplog):
  monkeypatch.setenv(lstm_ffi.DISABLE_ENV, '0')
  model = rnn.RNN('lstm', 3, 8, lstm_kernel='auto', rngs=nnx.Rngs(0))
  scan = rnn.RNN('lstm', 3, 8, rngs=nnx.Rngs(0))  # lstm_kernel 'scan', the default
  x = jax.random.normal(jax.random.key(0), (2, 5, 3))
  with caplog.at_level(logging.WARNING, logger=lstm_ffi.__name__):
    assert lstm_ffi.FORWARD not in _hlo(lambda x: model(x)[0], x)
    out, _ = model(x)  # the reason is logged once, not at every call
  np.testing.assert_array_equal(out, scan(x)[0])
  messages = [r.getMessage() for r in caplog.records if r.name == lstm_ffi.__name__]
  assert len(messages) == 1 and 'JDL_LSTM_FFI=0' in messages[0] and 'lax.scan' in messages[0]
  with pytest.raises(ValueError, match='unavailable .disabled by JDL_LSTM_FFI=0'):
    rnn.run_cell(model.forward_cells[0], x, lstm_kernel='ffi')


def test_unbuildable_source_or_missing_compiler_falls_back_with_a_message(
  tmp_path, monkeypatch, caplog
):
  broken = tmp_path / 'lstm.cc'
  broken.write_text(lstm_ffi.SOURCE.read_text().replace('namespace {', 'namespace { oops', 1))
  monkeypatch.setattr(lstm_ffi, 'SOURCE', broken)
  monkeypatch.setattr(lstm_ffi.paths, 'CACHE', tmp_path / 'cache')
  with caplog.at_level(logging.WARNING, logger=lstm_ffi.__name__):
    assert not lstm_ffi.available()
  assert 'g++ failed on' in lstm_ffi.unavailable_reason() and 'error' in caplog.text
  assert not list((tmp_path / 'cache').rglob('*.so'))  # nothing half-built left as a library
  model = rnn.RNN('lstm', 3, 8, lstm_kernel='auto', rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 5, 3))
  scan = rnn.RNN('lstm', 3, 8, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(model(x)[0], scan(x)[0])

  monkeypatch.setenv('CXX', 'no-such-compiler-jdl')
  with pytest.raises(lstm_ffi.Unavailable, match='no C.. compiler'):
    lstm_ffi.build(lstm_ffi.SOURCE, tmp_path / 'cache')


@pytest.mark.parametrize('batch', [8, 3])  # split over data x fsdp = 4; 3 does not divide
def test_sharded_batch_equals_one_device(batch):
  cell, x, carry, weights = _problem(batch, 4, 3, 20)
  (_, aux_want), grads_want = _loss_and_grads(cell, 'scan')(x, carry, weights)
  mesh = jax.make_mesh((2, 2, 2), ('data', 'fsdp', 'tensor'), (jax.sharding.AxisType.Auto,) * 3)
  rows = ('data', 'fsdp') if batch % 4 == 0 else None
  put = lambda a: jax.device_put(a, NamedSharding(mesh, jax.P(rows)))
  args = (put(x), jax.tree.map(put, carry), put(weights))
  with jax.set_mesh(mesh):
    grads = _loss_and_grads(cell, 'auto')  # as the training loop runs it with 'auto'
    assert lstm_ffi.BACKWARD in grads.lower(*args).as_text()
    (_, aux_got), grads_got = grads(*args)
  _assert_close(aux_got, aux_want)
  _assert_close(grads_got, grads_want)


def test_rnn_lm_training_steps_give_the_scans_losses(tmp_path, monkeypatch):
  """`jdl train`'s loop on the smoke config (8 devices here: the batch split 8 ways), with
  `model.lstm_kernel='auto'` (the fused kernel on this CPU, oneDNN's being disabled) and with
  'scan'."""
  assert lstm_ffi.available(), lstm_ffi.unavailable_reason()
  fused_calls = []
  traced = lstm_ffi.lstm_sequence
  monkeypatch.setattr(lstm_ffi, 'lstm_sequence', lambda *a: fused_calls.append(1) or traced(*a))
  losses = {}
  for kernel in ('scan', 'auto'):
    losses[kernel] = rnn_lm_losses(tmp_path / kernel, kernel)
    assert bool(fused_calls) == (kernel == 'auto')
  assert len(losses['auto']) == 5 and math.isfinite(losses['auto'][-1])
  np.testing.assert_allclose(losses['auto'], losses['scan'], rtol=1e-5)


def rnn_lm_losses(workdir, kernel: str | None) -> list[float]:
  """The 4 training losses and the final validation loss of the smoke char LSTM through `jdl
  train`'s loop, with `model.lstm_kernel = kernel` (None: the rnn_lm task's default)."""
  config = config_lib.load(f'{CHAR_BIBLE}:smoke')
  assert 'lstm_kernel' not in config.model  # the config leaves it to the task
  if kernel is not None:
    with config.unlocked():
      config.model.lstm_kernel = kernel
  config.num_train_steps = 4
  config.steps_per_call = 1
  config.log_every_steps = 1
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 4
  result = loop.train_and_evaluate(config, workdir)
  return [h['loss'] for h in result['history'] if 'loss' in h] + [
    result['final']['validation_loss']
  ]
