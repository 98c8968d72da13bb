"""The one training loop. Read top to bottom, it is the recipe every experiment follows:

  config -> task (model, data, objective) -> plan -> mesh and shardings -> sharded init or
  restore -> compiled steps (several per call) -> metrics one call late -> eval (and hooks) /
  log / checkpoint -> stop at the last step, on SIGTERM or when the wall-clock budget is spent.

`Trainer` holds what is built once from a config (task, data, plan, mesh, shardings, compiled
init, train and eval steps); benchmarks, races and tests reuse it rather than assembling these
pieces themselves. The loop never looks at which architecture it runs: that lives in the task.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import time
from collections.abc import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jdl import config as config_lib
from jdl import paths, sharding
from jdl.data import pipeline
from jdl.data.splits import Splits
from jdl.train import cost
from jdl.train.checkpoint import Checkpointer
from jdl.train.errors import WriteFailed
from jdl.train.lock import WorkdirLock, WorkdirLocked
from jdl.train.logs import MetricWriter, read_metrics
from jdl.train.task import Task, TrainState, get_task

# An evaluation hook: (trainer, step, state) -> extra metrics for the evaluation record (a
# translation's BLEU, a generator's sample score). Runs on every process at each evaluation.
EvalHook = Callable[['Trainer', int, TrainState], dict[str, float]]


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the message names the step."""


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


def make_mesh(config):
  """The config's mesh over this run's devices, set as the current one."""
  mesh = mesh_for(config)
  jax.set_mesh(mesh)
  return mesh


def mesh_for(config, devices: list | None = None):
  """The config's mesh over `devices` (default: all of this run's), after checking that batches
  and microbatches split over it."""
  try:
    mesh = sharding.make_mesh(config.mesh, devices)
  except ValueError as e:  # more devices than there are, or sizes that do not divide them
    count = len(jax.devices() if devices is None else devices)
    fields = [f'mesh.{a}={config.mesh[a]}' for a in sharding.MESH_AXES if config.mesh[a] != 1]
    raise config_lib.ConfigError(
      f'config.{", config.".join(fields or ["mesh"])} does not fit the {count} device(s) of this '
      f'run ({e}); -1 on one axis takes the devices the others leave'
    ) from None
  ways = mesh.shape['data'] * mesh.shape['fsdp']
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % ways:
      raise config_lib.ConfigError(
        f'config.{field}={config[field]} must be divisible by the {ways} devices of the batch '
        f'axes (mesh data={mesh.shape["data"]} x fsdp={mesh.shape["fsdp"]})'
      )
  micro = config.batch_size // config.grad_accum_steps
  if micro % ways:
    raise config_lib.ConfigError(
      f'config.grad_accum_steps={config.grad_accum_steps}: microbatches of {micro} rows do not '
      f'split over the {ways} devices of the batch axes'
    )
  return mesh


class Trainer:
  """Everything built once from a config: nothing is allocated or compiled until used.

  `data` may be given (a benchmark's synthetic batches, a test's small split); by default the
  task loads it, when first needed. `total_steps` replaces the schedule (and then no data is
  loaded to count rows): a run restored for use needs only the shapes. `mesh` replaces the
  config's mesh over this process's devices (`jdl compile`: a TPU slice's devices, compile only).
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    data: Splits | None = None,
    total_steps: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
  ):
    config_lib.validate(config)
    self.config = config
    self.task: Task = get_task(config)
    self._data = data
    if total_steps is None:
      self.schedule = Schedule.from_config(config, pipeline.num_rows(self.data.train))
    else:  # a run restored for use: no data needed, the length only shapes the optimizer's rate
      self.schedule = Schedule(total_steps, 1, config.steps_per_call, 0, 0, 0)
    self.mesh = make_mesh(config) if mesh is None else mesh
    self.plan = self.task.setup(self.schedule.total)

    # ---- the state's shardings and its compiled init
    self.key = jax.random.key(config.seed)
    init_state = functools.partial(self.task.init_state, self.plan)
    abstract = jax.eval_shape(init_state, self.key)
    self.shardings = sharding.tree_shardings(
      abstract, self.task.state_axes(self.plan, abstract), config.sharding_rules, self.mesh
    )
    self.abstract_state = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, self.shardings
    )
    self._init = jax.jit(init_state, out_shardings=self.shardings)

    # ---- compiled steps: `per_call` training steps in one call, the state's buffers donated
    per_call = self.schedule.per_call
    replicated = NamedSharding(self.mesh, P())

    def run(state: TrainState, batches):
      def one(state, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        return self.task.train_step(self.plan, state, batch, key)

      if per_call == 1:
        state, metrics = one(state, batches)
        return state, jax.tree.map(lambda m: m[None], metrics)
      return jax.lax.scan(one, state, batches, unroll=config.steps_unroll)

    self.run_steps = jax.jit(
      run,
      in_shardings=(self.shardings, sharding.batch_sharding(self.mesh, stacked=per_call > 1)),
      out_shardings=(self.shardings, replicated),
      donate_argnums=0,
    )
    self._finite = jax.jit(_all_finite)
    self.eval_step = jax.jit(
      functools.partial(self.task.eval_step, self.plan),
      in_shardings=(self.shardings, sharding.batch_sharding(self.mesh)),
      out_shardings=replicated,
    )

  @property
  def data(self) -> Splits:
    """The task's data, loaded on first use."""
    if self._data is None:
      self._data = self.task.load_data()
    return self._data

  @property
  def num_params(self) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(self.abstract_state.params))

  # ---- state -----------------------------------------------------------------------------------

  def init_state(self) -> TrainState:
    return self._init(self.key)

  def checkpointer(self, workdir, async_save: bool | None = None) -> Checkpointer:
    return Checkpointer(
      paths.workdir(workdir),
      self.config.keep_checkpoints,
      self.config.async_checkpointing if async_save is None else async_save,
    )

  def restore(self, workdir, step: int | None = None, log=print):
    """(step, state, data iterator state) of the newest readable checkpoint (or of `step`),
    read straight into this trainer's shardings; None if the workdir has none (and then nothing
    is created: a missing workdir stays missing)."""
    if not (paths.workdir(workdir) / 'checkpoints').exists():
      if step is not None:
        raise FileNotFoundError(f'no checkpoint at step {step} in {workdir}: it has none')
      return None
    checkpointer = self.checkpointer(workdir, async_save=False)
    try:
      return checkpointer.restore(self.abstract_state, step=step, log=log)
    finally:
      checkpointer.close()

  def model(self, state: TrainState):
    """The nnx module of a state (its arrays on the devices as they are)."""
    return self.plan.merge(state.params, state.model_state)

  # ---- data and evaluation ---------------------------------------------------------------------

  def train_batches(self):
    """The training batches of every step, resumable (grain iterator with get/set_state)."""
    return iter(
      pipeline.train_dataset(
        self.data.train,
        self.config.batch_size,
        self.config.seed,
        jax.process_index(),
        jax.process_count(),
        self.schedule.per_call,
        shuffle=self.data.shuffle,
      )
    )

  def global_batch(self, local: dict[str, np.ndarray]):
    return sharding.global_batch(local, self.mesh, stacked=self.schedule.per_call > 1)

  def evaluate(self, state: TrainState, hooks: Sequence[EvalHook] = (), step: int = 0) -> dict:
    """Mean metrics over every row of every evaluation split ({'validation_loss': ...}), and
    what the hooks add."""
    out = {}
    for split, arrays in self.data.evals.items():
      sums = None
      for local in pipeline.eval_batches(
        arrays, self.config.eval_batch_size, jax.process_index(), jax.process_count()
      ):
        metrics = self.eval_step(state, sharding.global_batch(local, self.mesh))
        sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
      sums = jax.device_get(sums)
      count = sums.pop('count')
      out.update({f'{split}_{k}': float(v / count) for k, v in sums.items()})
    for hook in hooks:
      out.update(hook(self, step, state))
    return out

  # ---- the loop --------------------------------------------------------------------------------

  def fit(self, workdir, eval_hooks: Sequence[EvalHook] = (), fresh: bool = False) -> dict:
    """Trains (or resumes) in `workdir` until the last step, SIGTERM or SIGINT, or
    `config.max_seconds` of wall-clock time (compilation included); returns the final metrics,
    the history and why it stopped ('done', 'preempted', 'max_seconds').

    The workdir is locked for the run's length. `fresh` starts at step 0 when the workdir holds
    checkpoints none of which can be restored (they are moved aside); without it that stops.
    """
    t_start = time.perf_counter()
    workdir = paths.workdir(workdir)
    is_main = jax.process_index() == 0
    lock = WorkdirLock(workdir)
    refused = None
    if is_main:
      try:
        lock.acquire()
      except WorkdirLocked as e:
        refused = e
    if _any_process(refused is not None):  # every process stops, not only the one that knows
      raise refused or WorkdirLocked(f'{workdir} is in use by another jdl run (see process 0)')
    try:
      # The task's own hooks (a translation task's validation BLEU) are made once per run: they
      # read their sentences when made, not at every evaluation.
      return self._fit(workdir, (*eval_hooks, *self.task.eval_hooks()), fresh, t_start)
    finally:
      lock.release()

  def _fit(self, workdir, eval_hooks, fresh: bool, t_start: float) -> dict:
    config, schedule, task = self.config, self.schedule, self.task
    is_main = jax.process_index() == 0
    say = print if is_main else (lambda _: None)
    checkpointer = self.checkpointer(workdir)
    try:
      restored = checkpointer.restore(self.abstract_state, log=say, fresh=fresh)
    except BaseException:
      checkpointer.close()
      raise
    if restored is not None and restored[0] >= schedule.total:
      checkpointer.close()
      return self._complete(workdir, restored, say, t_start)
    train_iter = self.train_batches()
    if restored is None:
      state, start = self.init_state(), 0
    else:
      start, state, data_state = restored
      train_iter.set_state(data_state)
    if is_main:  # only now: a config that does not fit the checkpoint has changed nothing
      if note := config_lib.write(config, workdir, resumed_at=start):
        say(note)
    say(
      f'{config.task}: {self.num_params:,} parameters; mesh {dict(self.mesh.shape)} on '
      f'{jax.device_count()} {jax.default_backend()} device(s), {jax.process_count()} '
      f'process(es); {schedule.total} steps ({schedule.per_epoch}/epoch)'
      + (f'; resumed at step {start}' if start else '')
      + (f'; budget {config.max_seconds:g} s' if config.max_seconds > 0 else '')
    )

    log = MetricWriter(workdir, schedule.total, start, config.progress_bar, enabled=is_main)
    peak = cost.device_peak_flops()  # before any step: a CPU is not measured against this run
    meter = None  # throughput and MFU, from the first call's end (compilation excluded)
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

    def save(step: int) -> None:
      """Checkpoints a state that is finite throughout; a blow-up is never saved."""
      if not bool(self._finite(state)):
        raise TrainingDiverged(
          f'the parameters or optimizer state hold NaN or infinite values at step {step}: '
          'training stopped without saving them (the last checkpoint is from before)'
        )
      checkpointer.save(step, state, train_iter.get_state())

    step, stop, write_failed = start, None, False
    rows = (
      (config.batch_size,) if schedule.per_call == 1 else (schedule.per_call, config.batch_size)
    )
    spec = None  # the shapes and dtypes of the first call's batches
    try:
      while step < schedule.total:
        batches = self.global_batch(next(train_iter))
        spec = _check_batches(batches, spec, rows, step)
        state, device_metrics = self.run_steps(state, batches)
        drain()  # the previous call's metrics, fetched while this call runs
        if meter is None and step > start:
          one = spec  # one step's batch: without the leading axis of the steps of a call
          if schedule.per_call > 1:
            one = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), spec)
          meter = cost.Meter(task, self.plan, one, jax.device_count(), peak, step, say)
        checkpointer.check()  # a background write that failed stops the run here
        pending = (step + 1, device_metrics)
        step += schedule.per_call
        log.advance(step)

        if preemption.reached(step):
          stop = 'preempted'
        elif config.max_seconds > 0 and _agreed_elapsed(t_start) >= config.max_seconds:
          stop = 'max_seconds'
        last = step >= schedule.total or stop == 'max_seconds'
        logs = last or schedule.due(schedule.log, step)
        evals = last or schedule.due(schedule.eval, step)
        saves = stop is not None or schedule.due(schedule.checkpoint, step)
        if logs or evals or saves:
          drain()
        record = {}
        if logs and window:
          record = {k: float(np.mean(np.concatenate([w[k] for w in window]))) for k in window[0]}
          window.clear()
          record.update(meter.lap(step) if meter else {})
        if evals:
          record.update(self.evaluate(state, eval_hooks, step))
        if logs or evals:
          record['epoch'] = step / schedule.per_epoch
          record['seconds'] = time.perf_counter() - t_start
          history.append({'step': step, **record})
          log.write(step, record)
        if saves:
          save(step)
        if meter and (logs or evals or saves):
          meter.mark(step)  # the next interval starts after this evaluation and saving
        if stop == 'preempted':
          checkpointer.wait()
          log.message(
            f'{preemption.signal_name}: checkpoint saved at step {step}; '
            'run the same command to resume'
          )
          break
        if stop == 'max_seconds':
          checkpointer.wait()
          log.message(
            f'max_seconds={config.max_seconds:g} reached at step {step}: evaluated and saved; '
            'run the same command (with a larger budget) to continue'
          )
          break
      drain()
      checkpointer.wait()
    except WriteFailed:
      # The store failed under orbax's writer threads: closing would wait on them and have them
      # print tracebacks; the error names the file and the last intact checkpoint.
      write_failed = True
      raise
    finally:
      preemption.restore()
      try:
        if not write_failed:
          checkpointer.close()
      finally:
        log.close()
    seconds = time.perf_counter() - t_start
    finished = step >= schedule.total or stop == 'max_seconds'
    if meter:
      say(meter.summary())
    if is_main and finished:
      task.report(self.plan, state, log.records, workdir, self.data)
    final = history[-1] if history and finished else {}
    return {
      'step': step,
      'history': history,
      'final': final,
      'state': state,
      'seconds': seconds,
      'preempted': stop == 'preempted',
      'stopped': stop or 'done',
    }

  def _complete(self, workdir, restored, say, t_start: float) -> dict:
    """A run whose last checkpoint is at or past the last step: nothing is trained or written;
    the result holds its final metrics (the last record of `metrics.jsonl`)."""
    step, state, _ = restored
    metrics = workdir / 'metrics.jsonl'
    records = [r for r in read_metrics(workdir) if r['step'] <= step] if metrics.exists() else []
    say(
      f'{workdir} is complete: its checkpoint is at step {step} of {self.schedule.total} '
      f'(epoch {step / self.schedule.per_epoch:g}); nothing to train. A larger num_epochs or '
      'num_train_steps (--config.num_epochs=N) continues it.'
    )
    return {
      'step': step,
      'history': [],
      'final': records[-1] if records else {},
      'state': state,
      'seconds': time.perf_counter() - t_start,
      'preempted': False,
      'stopped': 'complete',
    }


def _any_process(flag: bool) -> bool:
  """Whether `flag` holds on any process (the same answer everywhere)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils

  return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))


def _agreed_elapsed(t_start: float) -> float:
  """Seconds since `t_start`, the same on every process (process 0's clock), so that all stop
  at the same step."""
  elapsed = time.perf_counter() - t_start
  if jax.process_count() == 1:
    return elapsed
  from jax.experimental import multihost_utils

  return float(multihost_utils.broadcast_one_to_all(np.float64(elapsed)))


class _Preemption:
  """SIGTERM (a TPU VM's preemption notice, a scheduler's stop) or SIGINT (Ctrl-C) asks for a
  checkpoint and exit; a second Ctrl-C interrupts at once.

  With several processes JAX's preemption service agrees on one step for all of them (a notice
  reaches the hosts at different steps, and a checkpoint is a collective); it listens for
  SIGTERM, so Ctrl-C on a host is passed on as SIGTERM. Alone, a signal handler suffices.
  """

  def __init__(self):
    self.multihost = jax.process_count() > 1
    self._signalled = False
    self.signal_name = 'SIGTERM'
    self._previous = {signal.SIGINT: signal.signal(signal.SIGINT, self._interrupt)}
    if not self.multihost:
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._terminate)

  def _terminate(self, signum, frame):
    self._signalled = True

  def _interrupt(self, signum, frame):
    self.signal_name = 'SIGINT'
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the second Ctrl-C interrupts
    if self.multihost:
      os.kill(os.getpid(), signal.SIGTERM)
    else:
      self._signalled = True

  def reached(self, step: int) -> bool:
    if self.multihost:
      from jax.experimental import multihost_utils

      return multihost_utils.reached_preemption_sync_point(step)
    return self._signalled

  def restore(self):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _check_batches(batches, spec, rows: tuple[int, ...], step: int):
  """The shapes and dtypes of a call's batches (`spec`, those of the first call, once known),
  after checking that they lead with `rows` (the steps of a call, then config.batch_size rows)
  and match `spec`: other shapes would compile the steps again, silently, and other rows would
  train on other batches than the config says."""
  try:
    chex.assert_tree_shape_prefix(batches, rows)
    if spec is not None:
      chex.assert_trees_all_equal_shapes_and_dtypes(batches, spec)
  except AssertionError as e:
    raise RuntimeError(
      f'the training batches of step {step + 1} are not those the compiled steps take: {e}'
    ) from None
  if spec is None:
    spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batches)
  return spec


def _all_finite(state: TrainState) -> jax.Array:
  """Whether every floating-point array of the parameters, optimizer and model state is finite."""
  leaves = jax.tree.leaves((state.params, state.opt_state, state.model_state))
  checks = [jnp.isfinite(x).all() for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def _check_finite(metrics: dict[str, np.ndarray], first_step: int) -> None:
  loss = np.asarray(metrics['loss'])
  bad = np.flatnonzero(~np.isfinite(loss))
  if bad.size:
    step = first_step + int(bad[0])
    raise TrainingDiverged(
      f'loss is {loss[bad[0]]} at step {step}: training stopped '
      f'(the last checkpoint is from before it)'
    )


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir, eval_hooks: Sequence[EvalHook] = ()
) -> dict:
  """Trains (or resumes) the experiment described by `config` in `workdir`; returns the final
  metrics and the per-log history."""
  return Trainer(config).fit(workdir, eval_hooks)


def evaluate_checkpoint(
  config: ml_collections.ConfigDict, workdir, step: int | None = None
) -> dict:
  """Restores the newest readable checkpoint of `workdir` (or that of `step`) and evaluates it on
  every eval split."""
  folder = paths.workdir(workdir)
  if not (folder / 'checkpoints').exists():  # before loading data or compiling; nothing is made
    what = 'holds no checkpoints' if folder.exists() else 'does not exist'
    raise FileNotFoundError(
      f'{workdir} {what}: train first with `jdl train --config ... --workdir {workdir}`'
    )
  trainer = Trainer(config)
  restored = trainer.restore(workdir, step=step)
  if restored is None:
    raise FileNotFoundError(
      f'no checkpoint in {paths.workdir(workdir) / "checkpoints"}: train first with '
      f'`jdl train --config ... --workdir {workdir}`'
    )
  step, state, _ = restored
  return {'step': step, **trainer.evaluate(state, step=step)}
