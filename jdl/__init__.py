"""jdl: the classic systems of deep learning in JAX/Flax, trained by one sharded loop.

  import jdl
  result = jdl.train('experiments/mlp/keras_regression.py', 'runs/mlp', {'num_epochs': 3})
  jdl.evaluate('runs/mlp')             # the newest checkpoint on every evaluation split
  run = jdl.load_run('runs/mlp')       # run.model, run.config, run.step, run.history()

`import jdl` imports neither JAX nor matplotlib: each name below loads on first use (from
jdl/train/api.py), so that the caller (and `jdl --devices`) can configure JAX first.
"""

import importlib

__version__ = '0.1.0'

# name -> the module that defines it. `train` is the package jdl.train, which is callable.
_API = {
  'train': None,
  'evaluate': 'jdl.train.api',
  'load_run': 'jdl.train.api',
  'load_config': 'jdl.train.api',
  'make_config': 'jdl.train.api',
  'read_metrics': 'jdl.train.api',
  'Run': 'jdl.train.api',
}
__all__ = ['__version__', *_API]


def __getattr__(name: str):
  if name not in _API:
    raise AttributeError(f"module 'jdl' has no attribute '{name}'")
  if name == 'train':
    return importlib.import_module('jdl.train')  # which binds jdl.train itself
  value = getattr(importlib.import_module(_API[name]), name)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_API))
