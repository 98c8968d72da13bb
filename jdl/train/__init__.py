"""The training layer: Trainer and the loop, tasks' contract, checkpoints, logs, the run API.

The package is also the function `jdl.train(config, workdir, overrides=None, *, fresh=False,
eval_hooks=())` of the Python API (jdl.train.api.train): Python binds the name `jdl.train` to
this package as soon as any of its modules is imported, so the package itself answers the call.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
  def __call__(self, *args, **kwargs):
    """Trains (or resumes) a config in a workdir: jdl.train.api.train."""
    from jdl.train import api

    return api.train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
