"""The Python API that `import jdl` offers: train, evaluate and read back runs from a script or a
notebook, as `jdl train` and `jdl eval` do from the command line.

  import jdl
  result = jdl.train('experiments/mlp/keras_regression.py', 'runs/mlp', {'num_epochs': 3})
  jdl.evaluate('runs/mlp')             # {'step': 48, 'validation_loss': ..., 'test_loss': ...}
  run = jdl.load_run('runs/mlp')       # run.model, run.config, run.step, run.history()

Thin wrappers over `Trainer.fit`, `evaluate_checkpoint` and the run API (jdl/train/run.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from jdl import config as config_lib
from jdl.train import loop
from jdl.train.run import Run, load_config, load_run, read_metrics

__all__ = ['Run', 'evaluate', 'load_config', 'load_run', 'make_config', 'read_metrics', 'train']

ConfigLike = ml_collections.ConfigDict | str | os.PathLike


def make_config(
  config: ConfigLike, overrides: Mapping[str, Any] | None = None
) -> ml_collections.ConfigDict:
  """A locked config from a ConfigDict (copied: the caller's is not changed) or a path
  `experiments/<arch>/<name>.py[:variant]`, with `overrides` ({'optimizer.learning_rate': 0.1})
  applied as `--config.optimizer.learning_rate=0.1` would be: an unknown key or a value of the
  wrong type is a `ConfigError` that names the field."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.copy_and_resolve_references()
  else:
    config = config_lib.load(os.fspath(config))
  config.lock()
  for key, value in (overrides or {}).items():
    config_lib.apply_override(config, key, repr(value))
  return config


def train(
  config: ConfigLike,
  workdir: str | os.PathLike,
  overrides: Mapping[str, Any] | None = None,
  *,
  fresh: bool = False,
  eval_hooks: Sequence[loop.EvalHook] = (),
) -> dict:
  """Trains (or resumes) `config` in `workdir`, as `jdl train` does; returns the final metrics
  ('final'), the records logged by this call ('history'), the step reached, the state and why
  it stopped ('done'; 'complete': nothing was left to train; 'preempted': Ctrl-C or SIGTERM, with
  a checkpoint to resume from; 'max_seconds')."""
  return loop.Trainer(make_config(config, overrides)).fit(workdir, eval_hooks, fresh=fresh)


def evaluate(
  workdir: str | os.PathLike,
  config: ConfigLike | None = None,
  overrides: Mapping[str, Any] | None = None,
  *,
  step: int | None = None,
) -> dict:
  """The metrics of a run's newest readable checkpoint (or of `step`) on every evaluation split,
  as `jdl eval` prints them; by default with the config the run was trained with."""
  config = make_config(load_config(workdir) if config is None else config, overrides)
  return loop.evaluate_checkpoint(config, workdir, step=step)
