"""Every test process sees 8 CPU devices, so that data, FSDP and tensor parallel run here."""

import os
import pathlib
import subprocess
import sys

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
import jax  # noqa: E402

jax.config.update('jax_num_cpu_devices', 8)
# Runs that resume, or compare two runs, compile the same programs again in new closures: the
# persistent cache turns the second compilation into a read (shared by the xdist workers).
# Processes started by the tests (`run_jdl`) use the same cache through the environment.
os.environ.setdefault(
  'JAX_COMPILATION_CACHE_DIR', str(pathlib.Path(__file__).parent.parent / '.jax_cache')
)
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update(
  'jax_persistent_cache_min_compile_time_secs',
  float(os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS']),
)

import pytest  # noqa: E402

pytest_plugins = ('tests.gcs_emulator',)  # the `gcs` fixture: a local Cloud Storage emulator

ROOT = pathlib.Path(__file__).resolve().parent.parent
MLP = str(ROOT / 'experiments/mlp/keras_regression.py')


def run_jdl(*args, env=None, timeout=300, check=False) -> subprocess.CompletedProcess:
  """`python -m jdl ...` in a fresh process (its own JAX, one CPU device unless told)."""
  full_env = dict(os.environ, **(env or {}))
  full_env.setdefault('JAX_PLATFORMS', 'cpu')
  proc = subprocess.run(
    [sys.executable, '-m', 'jdl', *map(str, args)],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=full_env,
    cwd=ROOT,
  )
  if check and proc.returncode:
    raise AssertionError(f'jdl {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
  return proc


@pytest.fixture
def mlp_config():
  from jdl import config as config_lib

  return config_lib.load(MLP + ':smoke')


@pytest.fixture
def no_mesh():
  """A plain model test runs without the mesh an earlier run left set for its process
  (loop.make_mesh sets it with jax.set_mesh): nnx would otherwise resolve the model's logical
  axis names against that mesh."""
  with jax.set_mesh(None):
    yield
