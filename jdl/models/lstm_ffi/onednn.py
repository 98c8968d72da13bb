"""A whole LSTM layer for XLA:CPU as oneDNN's LSTM primitives, the ones PyTorch's `nn.LSTM` runs
on CPU: `lstm_forward` (forward_training, keeping its workspace) and `lstm_backward`, each one
`jax.ffi` custom call (lstm_onednn.cc), tied with `jax.custom_vjp`.

Unlike jdl.models.lstm_ffi's kernel, the input projection W x_t + b is inside the calls: the
backward primitive returns the gradients of x, W, U, b, h0 and c0 itself.

Layouts: x and h are time-major [T, B, .] (oneDNN's tnc; batch-major ntc, which would spare
two transposes, measured slower: `jdl bench lstm` at 0.85x PyTorch against 0.88-0.92x). oneDNN
orders the gates (i, f, c~, o) and keeps W [F, 4, H], U [H, 4, H], b [4, H]; jdl's LSTMCell
keeps the columns [f | i | o | c]. The permutation (an involution: i<->f, c<->o) is applied in
JAX, outside the calls, and autodiff applies it to the gradients.

The workspace (what the backward primitive reads: every step's gates and states) is an XLA
buffer: its size comes from the library (jdl_lstm_onednn_sizes, through ctypes) once per shape
at trace time, and the forward call returns it as a uint8 output that the backward call takes.
oneDNN's scratchpads stay in the library, reused between calls (lstm_onednn.cc).

The build is lstm_ffi's (`build`: g++, jaxlib's FFI headers, the cache keyed by the source, the
flags, the compiler, jax, oneDNN's version and the CPU), against the `onednn-cpu-gomp` and
`onednn-devel-cpu-gomp` packages (libdnnl.so.3 on GNU OpenMP, linked with an rpath). Sharding
is lstm_ffi's too (`over_batch_shards`).

Threads: oneDNN's OpenMP team is this process's cores (THREADS_ENV overrides). Between
parallel regions GNU OpenMP's idle workers spin for a while (OMP_WAIT_POLICY unset) or for good
(ACTIVE), against XLA's threads. OMP_WAIT_POLICY is therefore made passive while the library
loads (where the environment does not set it; see `_OMP_ENVIRONMENT`): on 2 cores the layer's
forward and backward at `jdl bench lstm`'s shape measured 0.30 s passive, 0.47 s active and
0.30 s with GOMP_SPINCOUNT 10^4 or 10^5.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import logging
import os
import pathlib
import threading

import jax
import jax.numpy as jnp
import numpy as np

from jdl.models import lstm_ffi

log = logging.getLogger(__name__)

SOURCE = pathlib.Path(__file__).with_name('lstm_onednn.cc')
DISABLE_ENV = 'JDL_LSTM_ONEDNN'  # '0': never build or use the kernel
THREADS_ENV = 'JDL_LSTM_ONEDNN_THREADS'  # OpenMP threads of oneDNN (default: this process's cores)
FORWARD, BACKWARD = 'jdl_lstm_onednn_fwd', 'jdl_lstm_onednn_bwd'
# jdl's gate blocks [f | i | o | c] in oneDNN's order (i, f, c, o), and back (an involution).
GATES = (1, 0, 3, 2)
# Read by GNU OpenMP when it loads (with the library, unless something loaded it before).
_OMP_ENVIRONMENT = {'OMP_WAIT_POLICY': 'PASSIVE'}


def _onednn() -> tuple[tuple[tuple[str, str, str], ...], str]:
  """(the libraries to link, oneDNN's version): oneDNN's headers and library from its packages,
  found through their file lists, and GNU OpenMP (oneDNN's runtime, omp_set_num_threads)."""
  try:
    runtime = importlib.metadata.distribution('onednn-cpu-gomp')
    devel = importlib.metadata.distribution('onednn-devel-cpu-gomp')
  except importlib.metadata.PackageNotFoundError as e:
    raise lstm_ffi.Unavailable(
      f'oneDNN is missing ({e.name}): pip install onednn-cpu-gomp onednn-devel-cpu-gomp'
    ) from None
  find = lambda dist, name: [
    pathlib.Path(dist.locate_file(f)).resolve() for f in dist.files or () if str(f).endswith(name)
  ]
  libs, headers = find(runtime, '/libdnnl.so'), find(devel, 'oneapi/dnnl/dnnl.hpp')
  if not libs or not headers:
    raise lstm_ffi.Unavailable("oneDNN's packages hold no libdnnl.so or oneapi/dnnl/dnnl.hpp")
  include = str(headers[0].parents[2])
  return ((include, str(libs[0].parent), 'dnnl'), ('', '', 'gomp')), runtime.version


# ---- loading, once per process ------------------------------------------------------------------

_lock = threading.Lock()
_loaded: dict = {}  # 'library' (ctypes.CDLL) or 'reason' (str), once tried
_registered = False


def available() -> bool:
  """Whether the kernel is built and registered with XLA:CPU; the first call builds it (about
  half a minute, or a cache hit) and logs why not, once, when it cannot."""
  global _registered
  with _lock:
    if not _loaded:
      try:
        if os.environ.get(DISABLE_ENV, '1').strip() == '0':
          raise lstm_ffi.Unavailable(f'disabled by {DISABLE_ENV}=0')
        libraries, version = _onednn()
        path = lstm_ffi.build(SOURCE, libraries=libraries, stamp=f'onednn {version}')
        env = {k: v for k, v in _OMP_ENVIRONMENT.items() if k not in os.environ}
        library = lstm_ffi._load_library(path, env)
        library.jdl_lstm_onednn_sizes.argtypes = [ctypes.c_int64] * 4 + [
          ctypes.POINTER(ctypes.c_int64),
          ctypes.c_char_p,
          ctypes.c_int64,
        ]
        if not _registered:  # a target name can be registered once per process
          for name, symbol in (
            (FORWARD, 'JdlLstmOnednnForward'),
            (BACKWARD, 'JdlLstmOnednnBackward'),
          ):
            capsule = jax.ffi.pycapsule(getattr(library, symbol))
            jax.ffi.register_ffi_target(name, capsule, platform='cpu')
          _registered = True
        _loaded['library'] = library
      except lstm_ffi.Unavailable as e:
        _loaded['reason'] = str(e)
        log.warning('jdl LSTM: the oneDNN XLA:CPU kernel is unavailable (%s)', e)
    return 'library' in _loaded


def unavailable_reason() -> str | None:
  """Why `available()` is False (None when it is True or was not asked yet)."""
  return _loaded.get('reason')


def reset() -> None:
  """Forgets the outcome of `available()`, so that the next call tries again (tests)."""
  with _lock:
    _loaded.clear()
    _workspace_bytes.cache_clear()


def threads() -> int:
  """oneDNN's OpenMP threads: this process's cores, or THREADS_ENV."""
  return int(os.environ.get(THREADS_ENV) or len(os.sched_getaffinity(0)))


@functools.cache
def _workspace_bytes(T: int, B: int, F: int, H: int) -> int:
  """The size of the layer's workspace (the library makes and keeps its primitives)."""
  size, error = ctypes.c_int64(), ctypes.create_string_buffer(512)
  if _loaded['library'].jdl_lstm_onednn_sizes(T, B, F, H, ctypes.byref(size), error, len(error)):
    raise ValueError(f'oneDNN LSTM [T={T}, B={B}, F={F}, H={H}]: {error.value.decode()}')
  return size.value


# ---- the custom calls and their VJP -------------------------------------------------------------


def _forward(x_TxBxF, W_Fx4xH, U_Hx4xH, b_4xH, h0_BxH, c0_BxH):
  (T, B, F), H = x_TxBxF.shape, U_Hx4xH.shape[0]
  workspace = jax.ShapeDtypeStruct((_workspace_bytes(T, B, F, H),), jnp.uint8)
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  call = jax.ffi.ffi_call(
    FORWARD, (f32(T, B, H), f32(B, H), f32(B, H), workspace), vmap_method='sequential'
  )
  return call(x_TxBxF, W_Fx4xH, U_Hx4xH, b_4xH, h0_BxH, c0_BxH, threads=np.int64(threads()))


@jax.custom_vjp
def _layer(x_TxBxF, W_Fx4xH, U_Hx4xH, b_4xH, h0_BxH, c0_BxH):
  return _forward(x_TxBxF, W_Fx4xH, U_Hx4xH, b_4xH, h0_BxH, c0_BxH)[:3]


def _layer_fwd(*args):
  h_TxBxH, h_BxH, c_BxH, workspace = _forward(*args)
  return (h_TxBxH, h_BxH, c_BxH), (*args, h_TxBxH, h_BxH, c_BxH, workspace)


def _layer_bwd(residuals, cotangents):
  outputs = [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in residuals[:6]]
  call = jax.ffi.ffi_call(BACKWARD, outputs, vmap_method='sequential')
  # dx, dW, dU, db, dh0, dc0
  return tuple(call(*residuals, *cotangents, threads=np.int64(threads())))


_layer.defvjp(_layer_fwd, _layer_bwd)


def lstm_layer(x_TxBxF, W_Fx4H, b_4H, U_Hx4H, c0_BxH, h0_BxH):
  """jdl.models.rnn.LSTMCell over a whole time-major sequence, float32: inputs x [T, B, F],
  input kernel W [F, 4H] and bias b [4H], recurrent kernel U [H, 4H] (gate columns
  [f | i | o | c]), initial (c, h) [B, H]. Returns (h of every step [T, B, H], final c, final h).
  Call only when `available()`; lowers for CPU only."""
  H = U_Hx4H.shape[0]
  to_onednn = lambda a: jnp.asarray(a, jnp.float32).reshape(*a.shape[:-1], 4, H)[..., GATES, :]
  args = (
    jnp.asarray(x_TxBxF, jnp.float32),
    to_onednn(W_Fx4H),
    to_onednn(U_Hx4H),
    to_onednn(b_4H),
    jnp.asarray(h0_BxH, jnp.float32),
    jnp.asarray(c0_BxH, jnp.float32),
  )
  h_TxBxH, h_BxH, c_BxH = lstm_ffi.over_batch_shards(
    _layer, args, (1, None, None, None, 0, 0), (1, 0, 0)
  )
  return h_TxBxH, c_BxH, h_BxH
