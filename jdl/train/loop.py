"""The one training loop. Read top to bottom, it is the recipe every experiment follows:

  config -> task (model, data, loss) -> mesh and shardings -> sharded init or restore
  -> compiled steps (several per call) -> metrics one call late -> eval / log / checkpoint.

It never looks at which architecture it runs: everything specific lives in the task.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jdl import config as config_lib
from jdl import sharding
from jdl.data import pipeline
from jdl.train.checkpoint import Checkpointer
from jdl.train.logs import MetricWriter
from jdl.train.task import Splits, Task, TrainState


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the message names the step."""


def get_task(config: ml_collections.ConfigDict) -> Task:
  try:
    module = importlib.import_module(f'jdl.tasks.{config.task}')
  except ModuleNotFoundError as e:
    if e.name != f'jdl.tasks.{config.task}':
      raise
    raise config_lib.ConfigError(f"config.task: no task module 'jdl.tasks.{config.task}'") from None
  return module.Task(config)


@dataclasses.dataclass
class Schedule:
  """When things happen, in optimizer steps."""

  total: int
  per_epoch: int
  per_call: int
  log: int
  eval: int  # 0: only at the end
  checkpoint: int  # 0: only at the end

  @classmethod
  def from_config(cls, config, train_rows: int) -> Schedule:
    per_epoch = max(train_rows // config.batch_size, 1)
    total = config.num_epochs * per_epoch if config.num_epochs > 0 else config.num_train_steps
    resolve = lambda every: per_epoch if every == 0 else (0 if every < 0 else every)
    s = cls(
      total=total,
      per_epoch=per_epoch,
      per_call=config.steps_per_call,
      log=resolve(config.log_every_steps),
      eval=resolve(config.eval_every_steps),
      checkpoint=resolve(config.checkpoint_every_steps),
    )
    for name in ('total', 'log', 'eval', 'checkpoint'):
      if getattr(s, name) % s.per_call:
        raise config_lib.ConfigError(
          f'config.steps_per_call={s.per_call} must divide the {name} interval '
          f'({getattr(s, name)} steps)'
        )
    return s

  def due(self, every: int, step: int) -> bool:
    return step == self.total or (every > 0 and step % every == 0)


def build(task: Task, total_steps: int, mesh):
  """Task setup, the state's shardings, and the compiled init; nothing allocated yet."""
  config = task.config
  task.setup(total_steps)
  key = jax.random.key(config.seed)
  abstract = jax.eval_shape(task.init_state, key)
  shardings = sharding.tree_shardings(
    abstract, task.state_axes(abstract), config.sharding_rules, mesh
  )
  init = jax.jit(task.init_state, out_shardings=shardings)
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
  )
  return key, abstract, shardings, init


def compile_steps(task: Task, shardings, mesh, per_call: int, unroll: int = 1):
  """`per_call` training steps in one jit-compiled call; the state's buffers are donated."""

  def run(state: TrainState, batches):
    def one(state, batch):
      key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
      return task.train_step(state, batch, key)

    if per_call == 1:
      state, metrics = one(state, batches)
      return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(one, state, batches, unroll=unroll)

  batch_sharding = sharding.batch_sharding(mesh, stacked=per_call > 1)
  return jax.jit(
    run,
    in_shardings=(shardings, batch_sharding),
    out_shardings=(shardings, NamedSharding(mesh, P())),
    donate_argnums=0,
  )


def make_mesh(config):
  """The config's mesh, set as the current one, after checking that batches split over it."""
  mesh = sharding.make_mesh(config.mesh)
  ways = mesh.shape['data'] * mesh.shape['fsdp']
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % ways:
      raise config_lib.ConfigError(
        f'config.{field}={config[field]} must be divisible by the {ways} devices of the batch '
        f'axes (mesh data={mesh.shape["data"]} x fsdp={mesh.shape["fsdp"]})'
      )
  jax.set_mesh(mesh)
  return mesh


def evaluate(task: Task, state: TrainState, data: Splits, config, mesh, eval_step) -> dict:
  """Mean metrics over every row of every evaluation split: {'validation_loss': ..., ...}."""
  out = {}
  for split, arrays in data.evals.items():
    sums = None
    for local in pipeline.eval_batches(
      arrays, config.eval_batch_size, jax.process_index(), jax.process_count()
    ):
      metrics = eval_step(state, sharding.global_batch(local, mesh))
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
    sums = jax.device_get(sums)
    count = sums.pop('count')
    out.update({f'{split}_{k}': float(v / count) for k, v in sums.items()})
  return out


class _Preemption:
  """SIGTERM (a TPU VM's preemption notice, a scheduler's stop) asks for a checkpoint and exit.

  With several processes JAX's preemption service agrees on one step for all of them (a notice
  reaches the hosts at different steps, and a checkpoint is a collective); alone, a signal
  handler suffices.
  """

  def __init__(self):
    self.multihost = jax.process_count() > 1
    self._signalled = False
    if not self.multihost:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    self._signalled = True

  def reached(self, step: int) -> bool:
    if self.multihost:
      from jax.experimental import multihost_utils

      return multihost_utils.reached_preemption_sync_point(step)
    return self._signalled

  def restore(self):
    if not self.multihost:
      signal.signal(signal.SIGTERM, self._previous)


def _check_finite(metrics: dict[str, np.ndarray], first_step: int) -> None:
  loss = np.asarray(metrics['loss'])
  bad = np.flatnonzero(~np.isfinite(loss))
  if bad.size:
    step = first_step + int(bad[0])
    raise TrainingDiverged(
      f'loss is {loss[bad[0]]} at step {step}: training stopped '
      f'(the last checkpoint is from before it)'
    )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains (or resumes) the experiment described by `config` in `workdir`; returns the final
  metrics and the per-log history."""
  workdir = pathlib.Path(workdir)
  config_lib.validate(config)
  is_main = jax.process_index() == 0
  if is_main:
    config_lib.write(config, workdir)

  # ---- data and schedule
  task = get_task(config)
  data = task.load_data()
  schedule = Schedule.from_config(config, pipeline.num_rows(data.train))

  # ---- mesh, shardings, state
  mesh = make_mesh(config)
  key, abstract, shardings, init = build(task, schedule.total, mesh)
  checkpointer = Checkpointer(workdir, config.keep_checkpoints, config.async_checkpointing)
  restored = checkpointer.restore(abstract, log=print if is_main else (lambda _: None))
  train_iter = iter(
    pipeline.train_dataset(
      data.train,
      config.batch_size,
      config.seed,
      jax.process_index(),
      jax.process_count(),
      schedule.per_call,
    )
  )
  if restored is None:
    state, start = init(key), 0
  else:
    start, state, data_state = restored
    train_iter.set_state(data_state)
  if is_main:
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(abstract.params))
    print(
      f'{config.task}: {n_params:,} parameters; mesh {dict(mesh.shape)} on '
      f'{jax.device_count()} {jax.default_backend()} device(s), {jax.process_count()} '
      f'process(es); {schedule.total} steps ({schedule.per_epoch}/epoch)'
      + (f'; resumed at step {start}' if start else ''),
      flush=True,
    )

  run_steps = compile_steps(task, shardings, mesh, schedule.per_call, config.steps_unroll)
  eval_step = jax.jit(task.eval_step)
  log = MetricWriter(workdir, schedule.total, start, config.progress_bar, enabled=is_main)
  preemption = _Preemption()
  history: list[dict] = []
  window: list[dict[str, np.ndarray]] = []
  pending = None  # (first step, device metrics) of the call whose metrics are not fetched yet

  def drain():
    """Brings the pending call's metrics to the host, stopping on a non-finite loss."""
    nonlocal pending
    if pending is not None:
      first, device_metrics = pending
      host = jax.device_get(device_metrics)
      _check_finite(host, first)
      window.append(host)
      pending = None

  def save(step):
    checkpointer.save(step, state, train_iter.get_state())

  step, preempted = start, False
  t_start = time.perf_counter()
  try:
    while step < schedule.total:
      batches = sharding.global_batch(next(train_iter), mesh, stacked=schedule.per_call > 1)
      state, device_metrics = run_steps(state, batches)
      drain()  # the previous call's metrics, fetched while this call runs
      pending = (step + 1, device_metrics)
      step += schedule.per_call
      log.advance(step)

      boundary = [
        schedule.due(schedule.log, step),
        schedule.due(schedule.eval, step),
        schedule.due(schedule.checkpoint, step),
      ]
      preempted = preemption.reached(step)
      if any(boundary) or preempted:
        drain()
      if boundary[0]:
        record = (
          {k: float(np.mean(np.concatenate([w[k] for w in window]))) for k in window[0]}
          if window
          else {}
        )
        window.clear()
        if boundary[1]:
          record.update(evaluate(task, state, data, config, mesh, eval_step))
        record['epoch'] = step / schedule.per_epoch
        history.append({'step': step, **record})
        log.write(step, record)
      elif boundary[1]:
        record = evaluate(task, state, data, config, mesh, eval_step)
        history.append({'step': step, **record})
        log.write(step, record)
      if boundary[2]:
        save(step)
      if preempted:
        if not boundary[2]:
          save(step)
        checkpointer.wait()
        log.message(f'SIGTERM: checkpoint saved at step {step}; run the same command to resume')
        break
    drain()
  finally:
    preemption.restore()
    checkpointer.close()
    log.close()
  train_seconds = time.perf_counter() - t_start
  if is_main and step >= schedule.total:
    task.report(history, workdir, state, data)
  final = history[-1] if history and step >= schedule.total else {}
  return {
    'step': step,
    'history': history,
    'final': final,
    'state': state,
    'seconds': train_seconds,
    'preempted': preempted,
  }


def restore_latest(
  task: Task, mesh, workdir: str | pathlib.Path, total_steps: int = 1, log=print
) -> tuple[int, TrainState]:
  """(step, state) of the newest readable checkpoint of `workdir`, for evaluation or use.

  `total_steps` only sets the optimizer's schedule, never the shapes being restored.
  """
  workdir = pathlib.Path(workdir)
  _, abstract, _, _ = build(task, total_steps, mesh)
  checkpointer = Checkpointer(workdir, task.config.keep_checkpoints, async_save=False)
  restored = checkpointer.restore(abstract, log=log)
  checkpointer.close()
  if restored is None:
    raise FileNotFoundError(
      f'no checkpoint in {workdir / "checkpoints"}: train first with '
      f'`jdl train --config ... --workdir {workdir}`'
    )
  step, state, _ = restored
  return step, state


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Restores the newest readable checkpoint of `workdir` and evaluates it on every eval split."""
  workdir = pathlib.Path(workdir)
  config_lib.validate(config)
  task = get_task(config)
  data = task.load_data()
  schedule = Schedule.from_config(config, pipeline.num_rows(data.train))
  mesh = make_mesh(config)
  step, state = restore_latest(task, mesh, workdir, schedule.total)
  return {'step': step, **evaluate(task, state, data, config, mesh, jax.jit(task.eval_step))}
