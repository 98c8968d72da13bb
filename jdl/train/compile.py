"""`jdl compile`: a config's training step compiled ahead of time for a TPU slice, on a CPU.

The step is the loop's own (`Trainer.run_steps`: the config's mesh, sharding rules, dtype,
gradient accumulation, steps per call and donated state), lowered on abstract inputs (the
state's shapes and the task's `batch_spec`, no data) over the compile-only devices libtpu
describes for the slice, and compiled by the TPU compiler. What it reports, per chip:

  memory    parameters and optimizer state (from the shardings), and the compiler's arguments,
            outputs, aliased (donated) buffers, temporaries and generated code.
            needed = arguments + outputs - aliased + temporaries + code; it fits when needed
            <= HBM minus a reserve (RESERVE of the chip's HBM: the runtime's own buffers and
            fragmentation). A program that cannot fit at all is refused by the compiler: its
            message (what it needed, what it had) is the report.
  FLOPs     the task's analytic count per step (`Task.flops_per_step`) and XLA's count of the
            compiled call beside it, flagged when they differ by more than 10% (XLA counts the
            body of a loop once: steps per call, microbatches and scanned layers read low).
  time      analytic FLOPs / (chips x peak) at the chip's peak and at the stated MFU, and the
            throughput in the task's units (tokens, images).

`sweep` compiles the same config for several meshes (data x fsdp x tensor) and, for a model with
`model.remat`, with and without rematerialization; for other models the memory knob swept is
gradient accumulation. Nothing runs: no TPU is needed, only libtpu (the `tpu` extra).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time

import jax
import ml_collections

from jdl import sharding
from jdl.train import cost
from jdl.train.loop import Trainer, mesh_for
from jdl.train.params import human_bytes

RESERVE = 0.05  # of the chip's HBM, kept free for the runtime
MFU = 0.4
FLAG_RATIO = 0.10  # XLA's count against the analytic one
# Rematerialization recomputes each layer's forward pass in the backward: four passes instead of
# three, at most (the embedding and the output layer are not recomputed).
REMAT_TIME = 4 / 3


def topology_devices(topology: cost.Topology) -> list:
  """The compile-only devices of a slice (one per chip), from libtpu; no TPU needed."""
  _compile_only_process(topology)
  from jax.experimental import topologies

  # A host drives a 2x2 block of chips (or the whole of a smaller slice); v4 and v5p chips hold
  # two TensorCores, which JAX drives as one device ('megacore').
  dims = [int(n) for n in topology.shape.split('x')]
  options = {'chips_per_host_bounds': (min(dims[0], 2), min(dims[1], 2), 1)}
  if topology.megacore:
    options['chip_config_name'] = 'megacore'
  try:
    devices = topologies.get_topology_desc(topology.jax_name, 'tpu', **options).devices
  except RuntimeError as e:
    if 'TPU support not installed' in str(e):
      raise FileNotFoundError(
        "libtpu is not installed: `pip install -e '.[tpu]'` (jax[tpu]) gives the TPU compiler"
      ) from None
    raise
  kind = devices[0].device_kind
  chip = cost.GENERATIONS[topology.generation].chip
  if cost.chip_for_device_kind(kind) != chip or len(devices) != topology.chips:
    raise RuntimeError(
      f'libtpu describes {topology.jax_name} as {len(devices)} devices of kind {kind!r}, not '
      f'{topology.chips} {chip} chips'
    )
  return devices


def _compile_only_process(topology: cost.Topology) -> None:
  """Settings of a process that compiles for TPU devices it does not have.

  libtpu otherwise asks a GCE metadata server for the machine's TPU (waiting for it off Cloud),
  warns when it cannot name the slice, and holds a lock file that keeps a second process (a
  parallel test, another `jdl compile`) from loading it, which guards chips this process does
  not have; all must be set before libtpu loads. Executables for compile-only devices cannot be
  read back from JAX's persistent cache, so none is written.
  """
  if 'tpu' in (jax.config.jax_platforms or 'tpu'):
    return  # a TPU machine: libtpu drives its own chips, leave it alone
  for name, value in (
    ('TPU_SKIP_MDS_QUERY', '1'),
    ('TPU_ACCELERATOR_TYPE', topology.gcloud_name),
    ('TPU_WORKER_HOSTNAMES', 'localhost'),
    ('ALLOW_MULTIPLE_LIBTPU_LOAD', '1'),
  ):
    os.environ.setdefault(name, value)
  jax.config.update('jax_enable_compilation_cache', False)


def _tree_bytes(tree) -> int:
  """Bytes one device holds of a tree of sharded ShapeDtypeStructs."""
  return sum(
    math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree)
  )


def _refusal(error: Exception, memory: dict) -> dict:
  """What the TPU compiler said when a program cannot fit, and what that proves is needed: its
  temporaries alone beside the state (the message names them), or its whole use."""
  text = str(error)
  out = {'compiler_message': text.splitlines()[0][:500]}
  size = r'([\d.]+[KMGTP]?)'
  if m := re.search(rf'required for HLO temporaries \({size}\) exceeds available HBM', text):
    out['temporaries'] = cost.parse_bytes(m[1])
    out['needed_at_least'] = memory['params'] + memory['opt_state'] + out['temporaries']
  elif m := re.search(rf'Used {size} of {size} hbm', text):
    out['needed_at_least'] = cost.parse_bytes(m[1])
  return out


def _out_of_memory(error: Exception) -> bool:
  return 'RESOURCE_EXHAUSTED' in str(error) or 'out of memory' in str(error).lower()


def compile_step(
  config: ml_collections.ConfigDict,
  topology: cost.Topology,
  mfu: float = MFU,
  reserve: float = RESERVE,
  devices: list | None = None,
) -> dict:
  """Compiles the config's training step for the slice; returns the report (see the module
  doc), every size in bytes per chip and every FLOP count for all chips together."""
  devices = devices or topology_devices(topology)
  config = config.copy_and_resolve_references()
  if config.num_epochs <= 0 and config.num_train_steps <= 0:
    config.num_train_steps = 1  # a shape-only config: the schedule's length changes no shape
  mesh = mesh_for(config, devices)
  chips = mesh.size
  chip = topology.chip
  t_start = time.perf_counter()
  trainer = Trainer(config, total_steps=max(config.num_train_steps, 1), mesh=mesh)
  task, per_call = trainer.task, trainer.schedule.per_call
  batch = task.batch_spec(config.batch_size)
  stacked = {k: jax.ShapeDtypeStruct((per_call, *v.shape), v.dtype) for k, v in batch.items()}
  with jax.set_mesh(mesh):  # activations' sharding constraints read the current mesh
    lowered = trainer.run_steps.lower(trainer.abstract_state, stacked if per_call > 1 else batch)

  hbm = chip.hbm_bytes
  memory = {
    'params': _tree_bytes(trainer.abstract_state.params),
    'opt_state': _tree_bytes(trainer.abstract_state.opt_state),
    'hbm': hbm,
    'reserve': reserve * hbm,
    'usable': (1 - reserve) * hbm,
  }
  report = {
    'topology': topology.jax_name,
    'gcloud': topology.gcloud_name,
    'chip': chip.name,
    'chips': chips,
    'mesh': dict(zip(sharding.MESH_AXES, mesh.devices.shape)),
    'batch_size': config.batch_size,
    'grad_accum_steps': config.grad_accum_steps,
    'steps_per_call': per_call,
    'dtype': config.dtype,
    'remat': config.model.get('remat'),
    'memory': memory,
  }
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    if not _out_of_memory(e):
      raise
    compiled = None
    memory.update(_refusal(e, memory))
  report['compile_seconds'] = time.perf_counter() - t_start

  analytic = task.flops_per_step(trainer.plan, batch)
  unit, units = task.batch_units(batch)
  flops = {'per_step': analytic, 'per_call': analytic * per_call, 'xla_per_call': None}
  if compiled is not None:
    stats = compiled.memory_analysis()
    memory.update(
      arguments=stats.argument_size_in_bytes,
      outputs=stats.output_size_in_bytes,
      aliased=stats.alias_size_in_bytes,
      temporaries=stats.temp_size_in_bytes,
      code=stats.generated_code_size_in_bytes,
    )
    memory['needed'] = (
      memory['arguments']
      + memory['outputs']
      - memory['aliased']
      + memory['temporaries']
      + memory['code']
    )
    xla = cost.xla_flops(compiled)
    if xla is not None:  # XLA counts one device's program
      flops['xla_per_call'] = xla * chips
      flops['xla_ratio'] = flops['xla_per_call'] / flops['per_call']
      flops['flagged'] = abs(flops['xla_ratio'] - 1) > FLAG_RATIO
  needed = memory.get('needed', memory.get('needed_at_least'))
  memory['margin'] = None if needed is None else memory['usable'] - needed
  report['fits'] = compiled is not None and memory['margin'] >= 0
  report['flops'] = flops

  at_peak = cost.step_seconds(analytic, chip, chips)
  report['time'] = {
    'mfu': mfu,
    'peak_flops_per_chip': chip.bf16_flops,
    'step_seconds_at_peak': at_peak,
    'step_seconds': at_peak / mfu,
    'unit': unit,
    'units_per_step': units,
    'units_per_second_at_peak': units / at_peak,
    'units_per_second': units * mfu / at_peak,
  }
  return report


# ---- the sweep ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Option:
  mesh: tuple[int, int, int]  # data, fsdp, tensor
  knob: str  # 'model.remat' or 'grad_accum_steps'
  value: bool | int


def sweep_options(config: ml_collections.ConfigDict, chips: int) -> list[Option]:
  """Data parallel, FSDP, and FSDP with 2- and 4-way tensor parallelism over every chip, each
  with the memory knob off and on: `model.remat` where the model has it, else gradient
  accumulation over 1 and 2 microbatches (a mesh whose batch axes do not divide the batch, or
  its microbatch, is left out)."""
  meshes = [(chips, 1, 1), (1, chips, 1)]
  meshes += [(1, chips // t, t) for t in (2, 4) if chips % t == 0 and chips // t >= 1]
  meshes = list(dict.fromkeys(meshes))
  if 'remat' in config.model:
    knob, values = 'model.remat', (False, True)
  else:
    knob, values = 'grad_accum_steps', (1, 2)
  options = []
  for mesh in meshes:
    for value in values:
      accum = value if knob == 'grad_accum_steps' else config.grad_accum_steps
      if config.batch_size % accum == 0 and (config.batch_size // accum) % (mesh[0] * mesh[1]) == 0:
        options.append(Option(mesh, knob, value))
  return options


def predicted_seconds(report: dict, option: Option) -> float:
  """A sweep row's predicted step: the report's, times REMAT_TIME with rematerialization."""
  remat = option.knob == 'model.remat' and option.value
  return report['time']['step_seconds'] * (REMAT_TIME if remat else 1)


def best_option(rows: list[dict]) -> dict | None:
  """The best row that fits: the shortest predicted step, then the least communication (fewer
  tensor-parallel, then fewer FSDP ways: communication is not in the prediction), then the
  memory knob off (no recomputation, one microbatch); None when none fits."""

  def rank(row):
    o = row['option']
    return (row['predicted_step_seconds'], o['mesh'][2], o['mesh'][1], o['value'])

  fitting = sorted((r for r in rows if r['fits']), key=rank)
  return fitting[0]['option'] if fitting else None


def sweep(
  config: ml_collections.ConfigDict,
  topology: cost.Topology,
  mfu: float = MFU,
  reserve: float = RESERVE,
  log=lambda _: None,
) -> dict:
  """Compiles every `sweep_options` choice: {'rows': reports, 'best': the best that fits}."""
  devices = topology_devices(topology)
  rows = []
  for option in sweep_options(config, topology.chips):
    c = config.copy_and_resolve_references()
    c.mesh.update(dict(zip(sharding.MESH_AXES, option.mesh)))
    if option.knob == 'model.remat':
      c.model.remat = option.value
    else:
      c.grad_accum_steps = option.value
    log(f'compiling mesh data x fsdp x tensor = {option.mesh}, {option.knob}={option.value} ...')
    report = compile_step(c, topology, mfu, reserve, devices)
    seconds = predicted_seconds(report, option)
    rows.append({'option': dataclasses.asdict(option), 'predicted_step_seconds': seconds, **report})
  return {'rows': rows, 'best': best_option(rows)}


# ---- text ------------------------------------------------------------------------------------


def _bytes(n: float | None) -> str:
  if n is None:
    return '-'
  return ('-' if n < 0 else '') + human_bytes(abs(n))


def _seconds(s: float) -> str:
  for unit, scale in (('s', 1), ('ms', 1e-3), ('us', 1e-6)):
    if s >= scale or unit == 'us':
      return f'{s / scale:.3g} {unit}'


def format_report(r: dict) -> str:
  m, f, t = r['memory'], r['flops'], r['time']
  mesh = ' x '.join(f'{k} {v}' for k, v in r['mesh'].items())
  row = lambda name, n, note='': f'  {name:20s}{_bytes(n):>12s}{note}'
  lines = [
    f'{r["topology"]} ({r["gcloud"]}): {r["chips"]} x {r["chip"]}; mesh {mesh}; batch '
    f'{r["batch_size"]} ({r["grad_accum_steps"]} microbatch(es), {r["steps_per_call"]} step(s) '
    f'per call), {r["dtype"]}' + ('' if r['remat'] is None else f', remat {r["remat"]}'),
    '',
    'memory per chip',
    row('parameters', m['params']),
    row('optimizer state', m['opt_state']),
  ]
  if 'needed' in m:
    lines += [
      row('arguments', m['arguments'], '  (state and batch)'),
      row('outputs', m['outputs']),
      row('aliased (donated)', -m['aliased']),
      row('temporaries', m['temporaries']),
      row('generated code', m['code']),
      row('needed', m['needed'], '  = arguments + outputs - aliased + temporaries + code'),
    ]
  else:
    lines.append(f'  the compiler refused it: {m["compiler_message"]}')
    if 'needed_at_least' in m:
      what = 'parameters + optimizer state + temporaries' if 'temporaries' in m else 'its count'
      lines.append(row('needed at least', m['needed_at_least'], f'  = {what}'))
  lines.append(
    row('usable HBM', m['usable'], f'  = {_bytes(m["hbm"])} - reserve {_bytes(m["reserve"])}')
  )
  verdict = 'fits' if r['fits'] else 'DOES NOT FIT'
  margin = '' if m['margin'] is None else f': margin {_bytes(m["margin"])}'
  lines += [f'  {verdict}{margin}', '', 'FLOPs']
  lines.append(f'  per step (analytic)  {f["per_step"]:.4g}')
  if f['xla_per_call'] is not None:
    flag = '  <- differs by more than 10%' if f['flagged'] else ''
    lines.append(
      f'  XLA, one call of {r["steps_per_call"]} step(s): {f["xla_per_call"]:.4g} = '
      f'{f["xla_ratio"]:.3f} x analytic{flag}'
    )
    if f['flagged']:
      lines.append(
        '  (XLA counts the body of a loop once: scanned layers, microbatches and steps per '
        'call read low; remat and elementwise work read high)'
      )
  per = t['unit']
  lines += [
    '',
    f'predicted step time ({r["chips"]} chips at {t["peak_flops_per_chip"] / 1e12:.0f} TFLOP/s '
    'bf16 each)',
    f'  at peak             {_seconds(t["step_seconds_at_peak"]):>10s}  '
    f'{t["units_per_second_at_peak"]:,.0f} {per}/s',
    f'  at MFU {t["mfu"]:<4.0%}         {_seconds(t["step_seconds"]):>10s}  '
    f'{t["units_per_second"]:,.0f} {per}/s',
    '',
    f'lowered and compiled in {r["compile_seconds"]:.1f} s',
  ]
  return '\n'.join(lines)


def format_sweep(result: dict) -> str:
  if not result['rows']:
    return 'no mesh of the sweep splits the batch over its batch axes'
  first = result['rows'][0]
  lines = [
    f'{first["topology"]} ({first["gcloud"]}): {first["chips"]} x {first["chip"]}; batch '
    f'{first["batch_size"]}; predicted step at MFU {first["time"]["mfu"]:.0%}',
    '',
  ]
  lines += [
    f'{"data x fsdp x tensor":22s} {"option":24s} {"needed/chip":>12s} {"margin":>11s} '
    f'{"fits":>5s} {"step":>10s}'
  ]
  for row in result['rows']:
    o, m = row['option'], row['memory']
    needed = m.get('needed', m.get('needed_at_least'))
    lines.append(
      f'{" x ".join(map(str, o["mesh"])):22s} {o["knob"] + "=" + str(o["value"]):24s} '
      f'{_bytes(needed):>12s} {_bytes(m["margin"]):>11s} {"yes" if row["fits"] else "no":>5s} '
      f'{_seconds(row["predicted_step_seconds"]):>10s}'
    )
  best = result['best']
  if best is None:
    lines.append('\nnone fits')
  else:
    lines.append(
      f'\nbest that fits: mesh data x fsdp x tensor = {" x ".join(map(str, best["mesh"]))}, '
      f'{best["knob"]}={best["value"]} (shortest predicted step, then least communication; '
      f'remat costs {REMAT_TIME:.2f} x the time, communication is not modelled)'
    )
  return '\n'.join(lines)
