"""The run API: what a figure, a sampler, a scorer or a benchmark needs of a trained run.

  run = load_run('runs/gpt_char')          # config.json + newest readable checkpoint
  run.model, run.task, run.config, run.step
  history = read_metrics('runs/gpt_char')  # the records of metrics.jsonl

No other module reads checkpoints or `metrics.jsonl` itself.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import ml_collections
from etils import epath

from jdl import config as config_lib
from jdl import paths
from jdl.train.checkpoint import Checkpointer
from jdl.train.logs import read_metrics
from jdl.train.loop import Trainer
from jdl.train.task import Plan, Task, TrainState

__all__ = ['Run', 'checkpoint_steps', 'load_config', 'load_run', 'read_metrics']


@dataclasses.dataclass
class Run:
  workdir: epath.Path
  config: ml_collections.ConfigDict
  trainer: Trainer
  step: int
  state: TrainState

  @property
  def task(self) -> Task:
    return self.trainer.task

  @property
  def plan(self) -> Plan:
    return self.trainer.plan

  @functools.cached_property
  def model(self) -> Any:
    """The trained `nnx` module."""
    return self.plan.merge(self.state.params, self.state.model_state)

  def history(self) -> list[dict]:
    return read_metrics(self.workdir)


def checkpoint_steps(workdir: epath.PathLike) -> list[int]:
  """The steps of a run's checkpoints, oldest first (readable or not: `load_run` tells)."""
  workdir = paths.workdir(workdir)
  if not (workdir / 'checkpoints').exists():
    return []
  checkpointer = Checkpointer(workdir, keep=None, async_save=False)  # None: deletes nothing
  try:
    return checkpointer.steps()
  finally:
    checkpointer.close()


def load_config(workdir: epath.PathLike) -> ml_collections.ConfigDict:
  """The config a run was trained with (its `config.json`), over the loop's current defaults so
  that a run saved before a key was added still loads; locked, as a loaded config file is."""
  workdir = paths.workdir(workdir)
  path = workdir / 'config.json'
  if not path.exists():
    raise FileNotFoundError(
      f'{workdir} is not a run folder (no config.json): train one with '
      f'`jdl train --config ... --workdir {workdir}`'
    )

  def merge(into: ml_collections.ConfigDict, saved: dict) -> None:
    for key, value in saved.items():
      if isinstance(value, dict) and isinstance(into.get(key), ml_collections.ConfigDict):
        merge(into[key], value)
      else:
        into[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value

  config = config_lib.base_config()
  merge(config, json.loads(path.read_text()))
  # JSON turned tuples into lists; the rules must be hashable again (they are static model state).
  config.sharding_rules = tuple(
    (name, tuple(t) if isinstance(t, list) else t) for name, t in config.sharding_rules
  )
  config.lock()
  return config


def load_run(
  workdir: epath.PathLike,
  step: int | None = None,
  *,
  config: ml_collections.ConfigDict | None = None,
  one_device: bool = True,
) -> Run:
  """A trained run: its config (or `config`), task, and the state of its newest readable
  checkpoint (or of `step`), by default on one device (sampling, figures)."""
  workdir = paths.workdir(workdir)
  config = load_config(workdir) if config is None else config
  if one_device:
    with config.unlocked():
      config.mesh.update(data=1, fsdp=1, tensor=1)
  trainer = Trainer(config, total_steps=max(config.num_train_steps, 1))
  restored = trainer.restore(workdir, step=step, log=lambda _: None)
  if restored is None:
    raise FileNotFoundError(
      f'no checkpoint in {workdir / "checkpoints"}: train first with '
      f'`jdl train --config ... --workdir {workdir}`'
    )
  found_step, state, _ = restored
  return Run(workdir, config, trainer, found_step, state)
