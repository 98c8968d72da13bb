"""The benchmark harness: the machine, the date and versions every benchmark reports, jdl's
compiled step timed one call at a time, peers in their own processes, alternating rounds.

Every comparison a benchmark prints is also appended to `RESULTS` (`jdl bench all --json` writes
them), and `PROFILE_DIR` set (`jdl bench NAME --profile DIR`) has `alternate` profile a few more
steps of both sides after its rounds (jdl.bench.profile)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

# What the benchmarks of this process measured: one dict per comparison (print_comparison, or
# `record` for a benchmark with its own table); `jdl bench all` reads it.
RESULTS: list[dict] = []
# Set by `jdl bench NAME --profile DIR`: `alternate` then profiles both sides (jdl.bench.profile).
PROFILE_DIR: str | None = None
_last_jdl_steps = None  # the JdlSteps the running benchmark built: its compiled step's HLO
_peaks: list[float] = []  # matmul peaks measured in this process


def record(**fields) -> dict:
  """Appends one measurement (ratio, rates, MFU, ...) to RESULTS, with the date and the load."""
  entry = dict(fields, date=today(), load=list(os.getloadavg()))
  RESULTS.append(entry)
  return entry


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


def run_peer(
  module: str, args: list[str], env: dict[str, str] | None = None, timeout: int = 1800
) -> str:
  """Runs a peer's measurement in its own process (its own framework state and allocator)."""
  proc = subprocess.run(
    [sys.executable, '-m', module, *args],
    capture_output=True,
    text=True,
    env=dict(os.environ, **(env or {})),
    timeout=timeout,
  )
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
  _peaks.append(2 * n**3 / best)
  return 2 * n**3 / best


def compiled_flops(fn, *args) -> float:
  """FLOPs of one call of `fn(*args)` as XLA counts them after compilation."""
  import jax

  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis.get('flops', 0.0))


# glibc malloc settings for PyTorch peers: large activations stay mapped instead of being returned
# to the OS and page-faulted back in every step (several times faster steps on this machine).
TORCH_ENV = {
  'MALLOC_MMAP_THRESHOLD_': '33554432',
  'MALLOC_TRIM_THRESHOLD_': '1e11',
  'MALLOC_TOP_PAD_': '1e9',
}


class JdlSteps:
  """jdl's own training step (the Trainer's compiled call, as `jdl train` runs it), timed one
  call at a time on batches that `make_batch(rng)` draws; no data set is loaded."""

  def __init__(self, config, make_batch):
    from jdl.train.loop import Trainer

    config.steps_per_call = 1
    self.trainer = Trainer(config, total_steps=config.num_train_steps)
    self.state = self.trainer.init_state()
    self.make_batch = make_batch
    self.rng = np.random.default_rng(0)
    global _last_jdl_steps
    _last_jdl_steps = self

  def steps(self, k: int) -> tuple[list[float], list[float]]:
    """(seconds, loss) of each of k steps."""
    times, losses = [], []
    for _ in range(k):
      batch = self.trainer.global_batch(self.make_batch(self.rng))
      t = time.perf_counter()
      self.state, metrics = self.trainer.run_steps(self.state, batch)
      losses.append(float(metrics['loss'][0]))  # waits for the step
      times.append(time.perf_counter() - t)
    return times, losses


class Peer:
  """A peer's training steps in its own process, driven a round at a time so that rounds of jdl
  and of the peer alternate on a shared machine. The peer module prints one JSON line describing
  itself (`info`), then for every line `K` on its stdin runs K steps and prints one JSON line."""

  def __init__(self, module: str, args: list[str], env: dict[str, str] | None = None):
    self.proc = subprocess.Popen(
      [sys.executable, '-m', module, *args],
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      text=True,
      env=dict(os.environ, **(env or {})),
    )
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

  def profile(self, outdir: str, k: int) -> dict:
    """k steps under the peer's profiler (torch.profiler), its trace written into `outdir`."""
    self.proc.stdin.write(f'profile {k} {os.path.abspath(outdir)}\n')
    self.proc.stdin.flush()
    return self._read()

  def close(self) -> None:
    self.proc.stdin.close()
    self.proc.wait()


def serve(step, prepare=lambda: None) -> None:
  """The peer's side of `Peer`: for every line K on stdin, K calls of `step(prepare())`, only
  `step` timed (it returns the loss as a float, which waits for the step), then one JSON line."""
  for line in sys.stdin:
    if line.startswith('profile '):  # Peer.profile: k steps under torch.profiler
      _, k, outdir = line.split(maxsplit=2)
      from jdl.bench import profile

      print(json.dumps(profile.torch_profile(step, prepare, int(k), outdir.strip())), flush=True)
      continue
    times, losses = [], []
    for _ in range(int(line)):
      inputs = prepare()
      t = time.perf_counter()
      losses.append(step(inputs))
      times.append(time.perf_counter() - t)
    print(json.dumps({'step_seconds': times, 'loss': losses}), flush=True)


def alternate(
  jdl_steps, peer: Peer, rounds: int, per_round: int
) -> tuple[list[float], list[float], float]:
  """Rounds of `per_round` jdl steps then as many peer steps, each round after a measurement of
  the matmul peak: (jdl step seconds, peer step seconds, best peak). `jdl_steps(k)` returns the
  seconds of k steps."""
  peaks, jdl_times, peer_times = [], [], []
  for r in range(rounds):
    peaks.append(matmul_peak_flops(repeats=5))
    jdl_times += jdl_steps(per_round)
    peer_times += peer.steps(per_round)['step_seconds']
    print(
      f'round {r + 1}/{rounds}: matmul peak {peaks[-1] / 1e9:.1f} GFLOP/s; jdl '
      f'{[round(x, 3) for x in jdl_times[-per_round:]]}; peer '
      f'{[round(x, 3) for x in peer_times[-per_round:]]}',
      flush=True,
    )
  if PROFILE_DIR:
    from jdl.bench import profile

    profile.capture(jdl_steps, peer, PROFILE_DIR, jdl=_last_jdl_steps)
  return jdl_times, peer_times, max(peaks)


def print_comparison(
  peer_name: str,
  jdl_times: list[float],
  peer_times: list[float],
  *,
  units_per_step: int,
  unit: str,
  flops_per_step: float,
  peak: float,
  flops_label: str,
  stretch: float,
) -> float:
  """The Markdown table of medians (s/step, units/s, FLOP/s against the peak) and the ratio
  against the 1.0x target and the stretch; returns jdl / peer units per second."""
  rows = []
  for name, times in (('jdl (JAX/XLA)', jdl_times), (peer_name, peer_times)):
    med = median(times)
    rows.append((name, med, units_per_step / med, flops_per_step / med / peak))
  print(f'\n| implementation | s/step (median) | {unit}/s | {flops_label} |')
  print('|---|---|---|---|')
  for name, med, rate, util in rows:
    print(f'| {name} | {med:.3f} | {rate:,.0f} | {util:.1%} |')
  ratio = rows[0][2] / rows[1][2]
  print(
    f'\njdl / PyTorch {unit}/s: {ratio:.2f}x (target >= 1.0x: '
    f'{"met" if ratio >= 1.0 else "NOT met"}; stretch {stretch}x: '
    f'{"met" if ratio >= stretch else "not met"})'
  )
  record(
    peer=peer_name,
    ratio=ratio,
    unit=unit,
    stretch=stretch,
    jdl_seconds_per_step=rows[0][1],
    peer_seconds_per_step=rows[1][1],
    jdl_units_per_second=rows[0][2],
    peer_units_per_second=rows[1][2],
    jdl_mfu=rows[0][3],
    peer_mfu=rows[1][3],
    flops_per_step=flops_per_step,
    peak_flops=peak,
  )
  return ratio
