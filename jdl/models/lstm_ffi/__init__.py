"""A fused LSTM over a whole sequence for XLA:CPU: two custom calls through `jax.ffi`, built by
jdl itself on first use, with `jax.custom_vjp` tying them together.

On CPU the `lax.scan` LSTM spends most of its time outside its two in-loop products: the loop's
per-iteration overhead and the gate arithmetic between small XLA ops (docs/benchmarks.md, `jdl
bench lstm`). Here the whole recurrence is one custom call each way (lstm.cc): per time step one
OpenBLAS product and one vectorised pass over the gates, split over the cores by hidden unit.

  forward   wx [T, B, 4H], U [H, 4H], c0, h0 [B, H] -> h [T, B, H], c [T, B, H], gates [T, B, 4H]
  backward  dh [T, B, H], dc_T, U, gates, c, h, c0, h0 -> d wx [T, B, 4H], dU [H, 4H], dc0, dh0

wx = W x_t + b is projected by XLA outside (so W's and x's gradients are large XLA products of
d wx), and dU is one product over all T * B rows after the backward loop.

The build: lstm.cc (package data) is compiled with g++ -O3 -march=native against the OpenBLAS of
the `scipy-openblas32` package and jaxlib's FFI headers into `jdl.paths.CACHE/lstm_ffi/`, under a
hash of the source, the flags, the compiler, jax, the BLAS and the CPU, so that a changed source
or machine builds anew and a second process reuses the library (`make ext` builds it ahead). If
the compiler or the BLAS is missing, the build fails or `JDL_LSTM_FFI=0` is set, `available()`
is False, the reason is logged once, and jdl.models.rnn runs the `lax.scan` LSTM instead.

Sharding: under a mesh the call runs per shard of the batch (`jax.shard_map` over the batch axes
'data' and 'fsdp', everything else replicated: a tensor-parallel U is gathered), and U's gradient
is summed over the shards; a batch that does not divide over those axes runs whole on every
device.

The build and the sharding (`build`, `over_batch_shards`) serve jdl.models.lstm_ffi.onednn too,
the whole layer as oneDNN's LSTM primitives (lstm_onednn.cc).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import math
import os
import pathlib
import shutil
import subprocess
import threading

import jax
import jax.numpy as jnp
import numpy as np

from jdl import paths
from jdl.sharding import BATCH_AXES

log = logging.getLogger(__name__)

SOURCE = pathlib.Path(__file__).with_name('lstm.cc')
# -w: jaxlib's FFI headers warn under g++ 12; no -ffast-math: lstm.cc's exp rounds with IEEE
# addition.
FLAGS = ('-O3', '-march=native', '-std=c++20', '-shared', '-fPIC', '-w')
DISABLE_ENV = 'JDL_LSTM_FFI'  # '0': never build or use the kernel
THREADS_ENV = 'JDL_LSTM_FFI_THREADS'  # threads of the kernel (default: this process's cores)
CORETYPE_ENV = 'JDL_LSTM_FFI_CORETYPE'  # OpenBLAS's kernels for it (default: see _blas_environment)
FORWARD, BACKWARD = 'jdl_lstm_fwd', 'jdl_lstm_bwd'


class Unavailable(Exception):
  """Why the kernel cannot be built or loaded here."""


# ---- the build ----------------------------------------------------------------------------------


def _blas() -> tuple[str, str, str]:
  """(include dir, library dir, link name) of scipy-openblas32, found without importing it:
  its import loads the library, which would start OpenBLAS's thread pool (see _load_library)."""
  spec = importlib.util.find_spec('scipy_openblas32')
  libs = []
  if spec is not None and spec.submodule_search_locations:
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    libs = sorted((root / 'lib').glob('libscipy_openblas*'))
  if not libs:
    raise Unavailable('the BLAS is missing: pip install scipy-openblas32')
  return str(root / 'include'), str(root / 'lib'), libs[0].name.split('.')[0][3:]


def _cpu() -> str:
  """The CPU's model and feature flags (-march=native code is for this CPU only)."""
  try:
    lines = pathlib.Path('/proc/cpuinfo').read_text().splitlines()
  except OSError:
    return os.uname().machine
  return ' '.join(sorted({ln for ln in lines if ln.startswith(('model name', 'flags'))}))


def build(
  source: pathlib.Path = SOURCE,
  cache: pathlib.Path | None = None,
  libraries: tuple[tuple[str, str, str], ...] | None = None,
  stamp: str = '',
) -> pathlib.Path:
  """The compiled library of `source` in `cache` (paths.CACHE), built if it is not there yet.
  `libraries`: the (include dir, library dir, link name) it links (default: the BLAS, _blas());
  `stamp`: what else the library depends on (their versions), part of the cache key.
  Raises Unavailable with the reason (no compiler, no BLAS, compiler errors)."""
  compiler = shutil.which(os.environ.get('CXX') or 'g++')
  if compiler is None:
    raise Unavailable('no C++ compiler: g++ is not on PATH (Debian: apt-get install g++)')
  if libraries is None:
    libraries = (_blas(),)
  try:
    text = pathlib.Path(source).read_bytes()
  except OSError as e:
    raise Unavailable(f'cannot read {source}: {e}') from None
  version = subprocess.run(
    [compiler, '-dumpfullversion'], capture_output=True, text=True, timeout=60
  ).stdout.strip()
  key = hashlib.sha256(
    b'\0'.join(
      [text, ' '.join(FLAGS).encode(), compiler.encode(), version.encode()]
      + [jax.__version__.encode(), repr(libraries).encode(), stamp.encode(), _cpu().encode()]
    )
  ).hexdigest()[:16]
  out = pathlib.Path(cache or paths.CACHE) / 'lstm_ffi' / f'{pathlib.Path(source).stem}-{key}.so'
  if out.is_file():
    return out
  out.parent.mkdir(parents=True, exist_ok=True)
  partial = out.with_name(f'{out.name}.{os.getpid()}.partial')
  command = [compiler, *FLAGS, f'-I{jax.ffi.include_dir()}']
  command += [f'-I{include}' for include, _, _ in libraries if include] + ['-x', 'c++', '-']
  command += ['-o', str(partial)]
  for _, libdir, lib in libraries:  # no library dir: the compiler's own (libgomp)
    command += [f'-L{libdir}', f'-Wl,-rpath,{libdir}'] if libdir else []
    command += [f'-l{lib}']
  # The hashed text is what is compiled (stdin), even if the file changes meanwhile.
  proc = subprocess.run(command, input=text, capture_output=True, timeout=600)
  if proc.returncode:
    partial.unlink(missing_ok=True)
    errors = [ln for ln in proc.stderr.decode(errors='replace').splitlines() if 'error' in ln]
    raise Unavailable(
      f'g++ failed on {source} (exit {proc.returncode}): ' + ' | '.join(errors[:3] or ['no output'])
    )
  os.replace(partial, out)  # atomic: a concurrent process sees no half-written library
  return out


# ---- loading, once per process ------------------------------------------------------------------

_lock = threading.Lock()
_loaded: dict = {}  # 'library' (ctypes.CDLL) or 'reason' (str), once tried
_registered = False


def _blas_environment() -> dict[str, str]:
  """What OpenBLAS reads from the environment when it loads (with the kernel's library):
  - one thread: the kernel calls it single-threaded (it splits the work itself), so it needs
    no pool of idle threads;
  - on a CPU with AVX-512 its SkylakeX kernels (or CORETYPE_ENV's choice): OpenBLAS 0.3.34
    takes a CPU it does not know (the AMD EPYC of docs/benchmarks.md, family 26) for Haswell,
    and this machine's environment sets OPENBLAS_CORETYPE=Haswell for numpy's copy; the AVX2
    kernels reach 87-103 GFLOP/s a core on the kernel's products there, SkylakeX's 131-184.
    The copy of scipy-openblas32 serves only this kernel, so its choice changes nothing else."""
  env = {'OPENBLAS_NUM_THREADS': '1'}
  avx512 = {'avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'avx512cd'}
  if os.environ.get(CORETYPE_ENV):
    env['OPENBLAS_CORETYPE'] = os.environ[CORETYPE_ENV]
  elif avx512 <= set(_cpu().split()):
    env['OPENBLAS_CORETYPE'] = 'SkylakeX'
  return env


def _load_library(path: pathlib.Path, env: dict[str, str] | None = None) -> ctypes.CDLL:
  """The library at `path`, loaded with `env` (default: _blas_environment()) set meanwhile."""
  env = _blas_environment() if env is None else env
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    return ctypes.CDLL(str(path))
  except OSError as e:
    raise Unavailable(f'cannot load {path}: {e}') from None
  finally:
    for k, v in saved.items():
      if v is None:
        del os.environ[k]
      else:
        os.environ[k] = v


def available() -> bool:
  """Whether the kernel is built and registered with XLA:CPU; the first call builds it (a few
  seconds, or a cache hit) and logs why not, once, when it cannot."""
  global _registered
  with _lock:
    if not _loaded:
      try:
        if os.environ.get(DISABLE_ENV, '1').strip() == '0':
          raise Unavailable(f'disabled by {DISABLE_ENV}=0')
        library = _load_library(build(SOURCE))
        if not _registered:  # a target name can be registered once per process
          for name, symbol in ((FORWARD, 'JdlLstmForward'), (BACKWARD, 'JdlLstmBackward')):
            capsule = jax.ffi.pycapsule(getattr(library, symbol))
            jax.ffi.register_ffi_target(name, capsule, platform='cpu')
          _registered = True
        _loaded['library'] = library
      except Unavailable as e:
        _loaded['reason'] = str(e)
        log.warning(
          'jdl LSTM: the fused XLA:CPU kernel is unavailable (%s); the LSTM runs as a lax.scan', e
        )
    return 'library' in _loaded


def unavailable_reason() -> str | None:
  """Why `available()` is False (None when it is True or was not asked yet)."""
  return _loaded.get('reason')


def reset() -> None:
  """Forgets the outcome of `available()`, so that the next call tries again (tests)."""
  with _lock:
    _loaded.clear()


def threads() -> int:
  """The kernel's threads: this process's cores, at most 8 (a step of the 512-unit LSTM is a
  fraction of a millisecond; more threads would cut it into products too small to be fast)."""
  return int(os.environ.get(THREADS_ENV) or min(len(os.sched_getaffinity(0)), 8))


# ---- the custom calls and their VJP -------------------------------------------------------------


def _forward(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH):
  T, B, G = wx_TxBx4H.shape
  H = G // 4
  state = jax.ShapeDtypeStruct((T, B, H), jnp.float32)
  gates = jax.ShapeDtypeStruct((T, B, G), jnp.float32)
  # The gates are written over wx (each element read before it is written), and in the backward
  # pass d wx over the gates: two [T, B, 4H] buffers fewer (67 MB each in `jdl bench lstm`).
  call = jax.ffi.ffi_call(
    FORWARD, (state, state, gates), vmap_method='sequential', input_output_aliases={0: 2}
  )
  return call(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH, threads=np.int64(threads()))


@jax.custom_vjp
def _lstm(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH):
  h_TxBxH, c_TxBxH, _ = _forward(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH)
  return h_TxBxH, c_TxBxH[-1]


def _lstm_fwd(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH):
  h_TxBxH, c_TxBxH, gates_TxBx4H = _forward(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH)
  return (h_TxBxH, c_TxBxH[-1]), (U_Hx4H, gates_TxBx4H, c_TxBxH, h_TxBxH, c0_BxH, h0_BxH)


def _lstm_bwd(residuals, cotangents):
  U_Hx4H, gates_TxBx4H, c_TxBxH, h_TxBxH, c0_BxH, h0_BxH = residuals
  dh_TxBxH, dc_BxH = cotangents
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  T, B, G = gates_TxBx4H.shape
  H = G // 4
  call = jax.ffi.ffi_call(
    BACKWARD,
    (f32(T, B, G), f32(H, G), f32(B, H), f32(B, H)),
    vmap_method='sequential',
    input_output_aliases={3: 0},
  )
  return call(
    dh_TxBxH,
    dc_BxH,
    U_Hx4H,
    gates_TxBx4H,
    c_TxBxH,
    h_TxBxH,
    c0_BxH,
    h0_BxH,
    threads=np.int64(threads()),
  )  # (d wx, dU, dc0, dh0)


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def lstm_sequence(wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH):
  """The LSTM over a whole time-major sequence, float32: wx_t = W x_t + b of every step
  [T, B, 4H] (gate columns [f | i | o | c]), recurrent kernel U [H, 4H], initial (c, h)
  [B, H]. Returns (h of every step [T, B, H], final c [B, H]); the final h is h[-1].
  Call only when `available()`; lowers for CPU only."""
  args = [jnp.asarray(a, jnp.float32) for a in (wx_TxBx4H, U_Hx4H, c0_BxH, h0_BxH)]
  return over_batch_shards(_lstm, args, (1, None, 0, 0), (1, 0))


def over_batch_shards(fn, args, in_batch_dims, out_batch_dims):
  """fn(*args), under a mesh once per shard of the batch: `jax.shard_map` over the batch axes
  'data' and 'fsdp', everything else replicated (a tensor-parallel weight is gathered), the
  weights' gradients summed over the shards; a batch that does not divide over those axes runs
  whole on every device. in_batch_dims / out_batch_dims: each argument's / output's batch
  dimension, None for a replicated one (the first argument has one)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return fn(*args)
  batch = args[0].shape[in_batch_dims[0]]
  axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names and mesh.shape[a] > 1)
  if batch % math.prod(mesh.shape[a] for a in axes):
    axes = ()  # a batch that does not divide: every device runs all of it
  rows = axes or None
  spec = lambda dim: jax.P() if dim is None else jax.P(*[None] * dim, rows)
  return jax.shard_map(
    fn,
    mesh=mesh,
    in_specs=tuple(spec(d) for d in in_batch_dims),
    out_specs=tuple(spec(d) for d in out_batch_dims),
    # ffi_call outputs carry no varying-axes types; shard_map then sums a replicated input's
    # cotangent over the batch shards, which is its gradient (each shard's rows contribute a
    # part).
    check_vma=False,
  )(*args)
