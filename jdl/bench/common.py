"""What every benchmark reports beside its numbers: the machine, the date, the versions."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    for line in open('/proc/cpuinfo'):
      if line.startswith('model name'):
        cpu = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return f'{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}'


def today() -> str:
  return datetime.date.today().isoformat()


def median(values) -> float:
  return statistics.median(values)


def run_peer(module: str, args: list[str], env: dict[str, str] | None = None,
             timeout: int = 1800) -> str:
  """Runs a peer's measurement in its own process (its own framework state and allocator)."""
  proc = subprocess.run([sys.executable, '-m', module, *args], capture_output=True, text=True,
                        env=dict(os.environ, **(env or {})), timeout=timeout)
  if proc.returncode:
    raise RuntimeError(f'{module} failed:\n{proc.stderr[-3000:]}')
  return proc.stdout


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
  """This machine's float32 matrix-product rate through JAX (best of `repeats`): the ceiling
  that model FLOP utilisation is measured against."""
  import time

  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    t = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


def compiled_flops(fn, *args) -> float:
  """FLOPs of one call of `fn(*args)` as XLA counts them after compilation."""
  import jax
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis.get('flops', 0.0))


# glibc malloc settings for PyTorch peers: large activations stay mapped instead of being returned
# to the OS and page-faulted back in every step (several times faster steps on this machine).
TORCH_ENV = {'MALLOC_MMAP_THRESHOLD_': '33554432', 'MALLOC_TRIM_THRESHOLD_': '1e11',
             'MALLOC_TOP_PAD_': '1e9'}


class Peer:
  """A peer's training steps in its own process, driven a round at a time so that rounds of jdl
  and of the peer alternate on a shared machine. The peer module prints one JSON line describing
  itself (`info`), then for every line `K` on its stdin runs K steps and prints one JSON line."""

  def __init__(self, module: str, args: list[str], env: dict[str, str] | None = None):
    self.proc = subprocess.Popen([sys.executable, '-m', module, *args], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, **(env or {})))
    self.info = self._read()

  def _read(self) -> dict:
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f'benchmark peer {self.proc.args[2]} exited with {self.proc.wait()}')
    return json.loads(line)

  def steps(self, k: int) -> dict:
    self.proc.stdin.write(f'{k}\n')
    self.proc.stdin.flush()
    return self._read()

  def close(self) -> None:
    self.proc.stdin.close()
    self.proc.wait()
