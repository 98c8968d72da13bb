"""What a training step costs: the accelerators (peak FLOP/s, HBM), TPU slices by name, and the
FLOPs of a step. `jdl compute`, `jdl compile` and the MFU of a run all read them here.

Peaks are dense bfloat16 matmul throughput per chip, from the vendors' published specifications
(without 2:4 structured sparsity). A TPU v4 or v5p chip has two TensorCores that JAX drives as
one device (megacore); v5e and v6e chips have one. Everything here is per chip.

FLOPs of a step count matmuls and convolutions (2 per multiply-add); elementwise work is left
out, and the backward pass costs two forwards, so training = 3 x forward:

  GPT (Kaplan et al. 2020's 6ND, with attention):  per token forward
      L * (2*D*3D [qkv] + 2*T*D [QK^T] + 2*T*D [AV] + 2*D*D [out] + 2*2*D*F [MLP]) + 2*D*V
  encoder-decoder Transformer: the same terms for each stack, plus cross-attention (queries and
      output from the target, keys and values from the source, scores over the source)
  anything else: the forward pass's matmuls and convolutions counted from its traced program,
      a scan's body times its length (`traced_flops`)

Attention scores are counted for the full square, as computed (the causal half is masked, not
skipped). XLA's own count (`xla_flops`) counts the body of a loop once, so a step that scans
over layers, microbatches or steps reads low there; it serves as a cross-check only.

Every training run logs, with each metrics record, its throughput (the task's units per second
per device) and MFU (analytic FLOPs per second over the devices' peak: the table's bfloat16 peak
on a GPU or TPU, on a CPU the float32 matmul rate measured once per machine): `Meter`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from typing import TYPE_CHECKING

from jdl.config import ConfigError

if TYPE_CHECKING:
  from jdl.models.gpt import GPTConfig
  from jdl.models.transformer import TransformerConfig

PF_DAY = 1e15 * 86400  # FLOPs of a petaFLOP/s-day


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  bf16_flops: float  # peak dense bfloat16 FLOP/s per chip
  hbm_bytes_per_s: float  # memory bandwidth per chip
  hbm_bytes: float  # memory per chip
  source: str


CHIPS = {
  # NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): BF16 Tensor Core 312 TFLOPS
  # (624 with sparsity), GPU memory bandwidth 2,039 GB/s.
  'a100': Chip('NVIDIA A100 SXM4 80GB', 312e12, 2.039e12, 80e9, 'nvidia.com A100 datasheet'),
  # NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 Tensor Core 1,979 TFLOPS with
  # sparsity, i.e. 989 dense; 3.35 TB/s.
  'h100': Chip('NVIDIA H100 SXM5 80GB', 989e12, 3.35e12, 80e9, 'nvidia.com H100 datasheet'),
  # NVIDIA H200 datasheet: same Tensor Cores as H100 SXM (989 TFLOPS dense BF16), 4.8 TB/s.
  'h200': Chip('NVIDIA H200 SXM 141GB', 989e12, 4.8e12, 141e9, 'nvidia.com H200 datasheet'),
  # Google Cloud TPU v4 documentation: 275 TFLOPS (bf16) per chip, 32 GiB HBM2 at 1,200 GB/s.
  'tpu-v4': Chip('Google TPU v4', 275e12, 1.2e12, 32 * 2**30, 'cloud.google.com/tpu/docs/v4'),
  # Cloud TPU v5e documentation: 197 TFLOPS (bf16) per chip, 16 GiB HBM2 at 819 GB/s.
  'tpu-v5e': Chip('Google TPU v5e', 197e12, 819e9, 16 * 2**30, 'cloud.google.com/tpu/docs/v5e'),
  # Cloud TPU v5p documentation: 459 TFLOPS (bf16) per chip, 95 GiB HBM2e at 2,765 GB/s.
  'tpu-v5p': Chip('Google TPU v5p', 459e12, 2.765e12, 95 * 2**30, 'cloud.google.com/tpu/docs/v5p'),
  # Cloud TPU v6e (Trillium) documentation: 918 TFLOPS (bf16) per chip, 32 GiB HBM at 1,640 GB/s.
  'tpu-v6e': Chip('Google TPU v6e', 918e12, 1.64e12, 32 * 2**30, 'cloud.google.com/tpu/docs/v6e'),
}

# jax's `device_kind` -> CHIPS key: the first pattern that occurs in the (lowercased) kind.
_DEVICE_KINDS = (
  ('tpu v4', 'tpu-v4'),
  ('tpu v5 lite', 'tpu-v5e'),
  ('tpu v5e', 'tpu-v5e'),
  ('tpu v5', 'tpu-v5p'),  # v5p reports 'TPU v5' (or 'TPU v5p')
  ('tpu v6', 'tpu-v6e'),  # v6e reports 'TPU v6 lite' (or 'TPU v6e')
  ('a100', 'a100'),
  ('h100', 'h100'),
  ('h200', 'h200'),
)


def chip_for_device_kind(kind: str) -> str | None:
  """The CHIPS key of a jax device's `device_kind` ('TPU v5 lite' -> 'tpu-v5e'); None when the
  table has no such chip (a CPU)."""
  kind = kind.lower()
  return next((chip for pattern, chip in _DEVICE_KINDS if pattern in kind), None)


# ---- TPU slices by name --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Generation:
  chip: str  # key of CHIPS
  jax_prefix: str  # JAX's topology strings: 'v5e:4x4'
  gcloud_prefix: str  # gcloud's accelerator types: 'v5litepod-16'
  cores_per_chip: int  # gcloud's number counts TensorCores on v4 and v5p, chips on v5e and v6e
  shapes: tuple[str, ...]  # the slice shapes jdl knows (chips along each torus axis)


_TORUS_2D = ('1x1', '2x2', '2x4', '4x4', '4x8', '8x8', '8x16', '16x16')
_TORUS_3D = (
  '2x2x1',
  '2x2x2',
  '2x2x4',
  '2x4x4',
  '4x4x4',
  '4x4x8',
  '4x8x8',
  '8x8x8',
  '8x8x16',
  '8x16x16',
  '16x16x16',
)
GENERATIONS = {
  'v4': Generation('tpu-v4', 'v4', 'v4', 2, _TORUS_3D),
  'v5e': Generation('tpu-v5e', 'v5e', 'v5litepod', 1, _TORUS_2D),
  'v5p': Generation('tpu-v5p', 'v5p', 'v5p', 2, _TORUS_3D),
  'v6e': Generation('tpu-v6e', 'v6e', 'v6e', 1, _TORUS_2D),
}


@dataclasses.dataclass(frozen=True)
class Topology:
  """A TPU slice: `jax_name` for `jax.experimental.topologies`, `gcloud_name` for gcloud."""

  generation: str  # key of GENERATIONS
  shape: str  # '4x4'

  @property
  def chips(self) -> int:
    return math.prod(int(n) for n in self.shape.split('x'))

  @property
  def chip(self) -> Chip:
    return CHIPS[GENERATIONS[self.generation].chip]

  @property
  def jax_name(self) -> str:
    return f'{GENERATIONS[self.generation].jax_prefix}:{self.shape}'

  @property
  def gcloud_name(self) -> str:
    g = GENERATIONS[self.generation]
    return f'{g.gcloud_prefix}-{self.chips * g.cores_per_chip}'

  @property
  def megacore(self) -> bool:
    """Two TensorCores per chip, driven as one device."""
    return GENERATIONS[self.generation].cores_per_chip == 2


def known_topologies() -> list[Topology]:
  return [Topology(name, shape) for name, g in GENERATIONS.items() for shape in g.shapes]


def topology(name: str) -> Topology:
  """A slice by gcloud's accelerator type ('v4-32': 16 chips, 'v5litepod-16', 'v5p-8': 4 chips,
  'v6e-16') or JAX's topology string ('v5e:4x4', 'v4:2x2x4'). One naming for every command."""
  for t in known_topologies():
    if name.strip().lower() in (t.jax_name, t.gcloud_name):
      return t
  lines = [
    f'  {g}: '
    + ', '.join(f'{t.gcloud_name} = {t.jax_name}' for t in known_topologies() if t.generation == g)
    for g in GENERATIONS
  ]
  raise ConfigError(
    f'unknown TPU topology {name!r}; jdl knows (gcloud accelerator type = JAX topology, '
    f'the number after the dash counts TensorCores on v4 and v5p, chips on v5e and v6e):\n'
    + '\n'.join(lines)
  )


# ---- FLOPs -------------------------------------------------------------------------------------


def param_count(cfg: GPTConfig) -> int:
  """The exact number of parameters of jdl's GPT (checked against the model in tests)."""
  d, f = cfg.d_model, cfg.ff
  per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
  final_ln = 0 if cfg.post_ln else 2 * d
  return cfg.vocab_size * d + cfg.context * d + cfg.n_layer * per_layer + final_ln


def forward_flops_per_token(cfg: GPTConfig, seq_len: int | None = None) -> int:
  d, f, t = cfg.d_model, cfg.ff, seq_len or cfg.context
  per_layer = 2 * d * 3 * d + 2 * t * d + 2 * t * d + 2 * d * d + 2 * 2 * d * f
  return cfg.n_layer * per_layer + 2 * d * cfg.vocab_size


def training_flops(cfg: GPTConfig, tokens: float, seq_len: int | None = None) -> dict:
  """Training FLOPs of a GPT on `tokens` tokens: 6ND and the per-layer count."""
  n = param_count(cfg)
  return {
    'params': n,
    'tokens': tokens,
    'six_nd': 6 * n * tokens,
    'exact': 3 * forward_flops_per_token(cfg, seq_len) * tokens,
  }


def transformer_forward_flops(cfg: TransformerConfig, src_len: int, tgt_len: int) -> int:
  """Forward FLOPs of one encoder-decoder row of `src_len` source and `tgt_len` target
  positions (padding included: it is computed)."""
  d, f, s, t = cfg.d_model, cfg.d_ff, src_len, tgt_len
  encoder = s * (2 * 4 * d * d + 2 * 2 * s * d + 2 * 2 * d * f)
  decoder = (
    t * (2 * 4 * d * d + 2 * 2 * t * d)  # self-attention
    + t * 2 * 2 * d * d
    + s * 2 * 2 * d * d
    + t * 2 * 2 * s * d  # cross-attention: q, out | k, v | scores, AV
    + t * 2 * 2 * d * f  # feed-forward
  )
  return (
    cfg.n_encoder_layers * encoder + cfg.n_decoder_layers * decoder + t * 2 * d * cfg.vocab_size
  )


def traced_flops(fn, *args) -> float:
  """Matmul and convolution FLOPs of `fn(*args)` from its traced program (args may be
  ShapeDtypeStructs): every dot_general and convolution, a scan's body times its length, the
  costlier branch of a conditional. Nothing is compiled or allocated."""
  import jax

  return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def _jaxpr_flops(jaxpr) -> float:
  from jax.extend import core

  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      (contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in contract)
    elif name == 'conv_general_dilated':
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params['dimension_numbers'].rhs_spec  # (out features, in features, *window)
      per_output = rhs[spec[1]] * math.prod(rhs[i] for i in spec[2:])
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * per_output
    inner = []
    for value in eqn.params.values():
      for v in value if isinstance(value, tuple | list) else (value,):
        if isinstance(v, core.ClosedJaxpr):
          inner.append(v.jaxpr)
        elif isinstance(v, core.Jaxpr):
          inner.append(v)
    if inner:
      counts = [_jaxpr_flops(j) for j in inner]
      body = max(counts) if name == 'cond' else sum(counts)
      total += body * (eqn.params['length'] if name == 'scan' else 1)
  return total


def xla_flops(compiled) -> float | None:
  """XLA's FLOP count of a compiled program (a loop's body counted once); None if it has none."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get('flops')
  return float(flops) if flops is not None else None


def step_seconds(flops: float, chip: Chip, chips: int, utilization: float = 1.0) -> float:
  """Seconds for `flops` on `chips` chips running at `utilization` of their peak."""
  return flops / (chips * chip.bf16_flops * utilization)


def days_to_train(flops: float, chip: str, chips: int, mfu: float) -> float:
  return step_seconds(flops, CHIPS[chip], chips, mfu) / 86400


def parse_bytes(text: str) -> float:
  """'15.75G' or '2.53T' (XLA's memory messages, powers of 1024) -> bytes."""
  match = re.fullmatch(r'([\d.]+)\s*([KMGTP]?)i?B?', text.strip())
  if not match:
    raise ValueError(f'not a byte count: {text!r}')
  return float(match[1]) * 1024 ** ' KMGTP'.index(match[2] or ' ')


# ---- peak of this run's devices, and the MFU of its logged intervals ----------------------------


def cpu_threads() -> int:
  """The CPU threads this process's XLA computations can use: the cores it may run on (taskset),
  or 1 when XLA's multi-threaded Eigen is switched off (as `--threads 1` of the race does)."""
  import os

  if '--xla_cpu_multi_thread_eigen=false' in os.environ.get('XLA_FLAGS', ''):
    return 1
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def cpu_matmul_flops(n: int = 2048, repeats: int = 5, force: bool = False) -> float:
  """This machine's float32 matmul rate (best of `repeats` n^3 products through JAX on the
  process's CPU threads), measured once per machine and thread count and kept in
  paths.CACHE/matmul_peak.json with the load average of the moment. Measured under load it reads
  low (and MFU high), so a later run on a quieter machine (or one that finds its own rate above
  the cached peak: `force`) measures again and keeps the better rate."""
  import json
  import os
  import platform

  import jax
  import jax.numpy as jnp

  from jdl import paths

  cpu = platform.processor() or platform.machine()
  try:
    for line in open('/proc/cpuinfo'):
      if line.startswith('model name'):
        cpu = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  # One entry per thread count: a one-thread process measured against the two-core rate would
  # read half its MFU, and a two-thread one against a one-thread rate over 100%.
  key = f'{cpu}|{cpu_threads()} thread(s) of {os.cpu_count()} cores|jax {jax.__version__}'
  path = paths.CACHE / 'matmul_peak.json'
  try:
    cached = json.loads(path.read_text())
  except (OSError, ValueError):
    cached = {}
  load = os.getloadavg()[0]
  entry = cached.get(key)
  # A rate measured under load reads low: measured again when the machine is quieter than it
  # was then, keeping the best (a peak is a ceiling).
  if entry and not force and not (entry.get('load', 0.0) >= 1.0 and load < entry['load'] - 0.5):
    return float(entry['flops'])
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  best = math.inf
  for _ in range(repeats):
    t = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  flops = 2 * n**3 / best
  if entry and entry['flops'] >= flops:
    flops, load = entry['flops'], min(load, entry.get('load', load))
  cached[key] = {
    'flops': flops,
    'n': n,
    'measured': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
    'load': load,
  }
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cached, indent=1) + '\n')
  except OSError:
    pass  # a read-only home: measured again next time
  return flops


def device_peak_flops(device=None, remeasure: bool = False) -> tuple[float | None, str]:
  """(peak FLOP/s of one device, what it is): a GPU's or TPU's dense bfloat16 peak from CHIPS,
  a CPU device's share of the measured float32 matmul rate (measured again with `remeasure`),
  None for an unknown accelerator."""
  import jax

  device = device or jax.local_devices()[0]
  chip = chip_for_device_kind(device.device_kind)
  if chip:
    return CHIPS[chip].bf16_flops, f'{CHIPS[chip].name} bf16 peak'
  if device.platform == 'cpu':
    cpus = len(jax.local_devices(backend='cpu'))
    flops = (cpu_matmul_flops(force=True) if remeasure else cpu_matmul_flops()) / cpus
    return flops, f'measured fp32 matmul {flops / 1e9:.0f} GFLOP/s' + (
      f' (1/{cpus} of the machine)' if cpus > 1 else ''
    )
  return None, f'no peak known for {device.device_kind}'


class Meter:
  """Throughput and MFU of a run's logged intervals: the task's units (`batch_units`) per second
  per device, and its analytic FLOPs (`flops_per_step`) per second over the devices' peak. The
  caller marks where an interval starts (after compilation, evaluation and saving) and takes a
  lap where it ends (after the steps are done)."""

  def __init__(self, task, plan, batch_spec: dict, devices: int, peak: tuple, step: int, log=print):
    self.mark(step)  # before the FLOPs are counted: steps running meanwhile are timed in full
    self.total_steps, self.total_seconds = 0, 0.0
    self.unit, self.units = task.batch_units(batch_spec)
    self.devices = devices
    self.peak, self.peak_source = peak
    self.log = log
    self._remeasured = False
    try:
      self.flops = float(task.flops_per_step(plan, batch_spec)) or None
    except Exception as e:  # a task whose forward pass cannot be traced abstractly
      self.flops = None
      log(f'MFU not logged: {type(task).__name__} has no FLOP count ({type(e).__name__}: {e})')

  def mark(self, step: int) -> None:
    self._mark = (time.perf_counter(), step)

  def lap(self, step: int) -> dict[str, float]:
    """The fields of a metrics record for the steps since the mark."""
    if step <= self._mark[1]:
      return {}
    seconds = time.perf_counter() - self._mark[0]
    steps = step - self._mark[1]
    self.total_steps += steps
    self.total_seconds += seconds
    out = self._fields(steps, seconds)
    if (
      out.get('mfu', 0.0) > 1.0 and self.peak_source.startswith('measured') and not self._remeasured
    ):
      # Faster than the peak: the cached CPU rate was measured under load. Measure it again now
      # (once), keep the better one, and report this interval against it.
      self._remeasured = True
      old = self.peak_source
      self.peak, self.peak_source = device_peak_flops(remeasure=True)
      out = self._fields(steps, seconds)
      self.log(f'MFU above 100% against the cached {old}: measured again, now {self.peak_source}')
    return out

  def _fields(self, steps: int, seconds: float) -> dict[str, float]:
    out = {f'{self.unit}_per_sec_per_device': steps * self.units / seconds / self.devices}
    if self.flops and self.peak:
      out['mfu'] = steps * self.flops / seconds / (self.devices * self.peak)
    return out

  def summary(self) -> str:
    if not self.total_steps:
      return 'throughput: no interval was timed (too few steps)'
    f = self._fields(self.total_steps, self.total_seconds)
    rate = f'{f[f"{self.unit}_per_sec_per_device"]:,.0f} {self.unit}/s per device'
    if 'mfu' in f:
      return (
        f'throughput: {rate}; MFU {_percent(f["mfu"])} ({self.flops / 1e9:.3g} GFLOP/step '
        f'analytic, against {self.peak_source}; {self.total_steps} steps, compilation excluded)'
      )
    why = 'no FLOP count' if not self.flops else self.peak_source
    return f'throughput: {rate} ({self.total_steps} steps); MFU not measured ({why})'


def _percent(x: float) -> str:
  return f'{x:.1%}' if x >= 1e-3 else f'{100 * x:.2g}%'  # a tiny model's MFU is not 0.0%
