"""Where jdl finds things: the repository, its experiments, data and caches. Imports no JAX.

Local folders are `pathlib.Path`s; a run's workdir may be remote (`gs://...`), so code that
reads or writes a workdir takes an `etils.epath.Path` from `workdir()`.
"""

from __future__ import annotations

import os
import pathlib

from etils import epath

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository (an editable install)
EXPERIMENTS = ROOT / 'experiments'
# Derived data (tokenizers, token arrays, splits) written once and reused: $JDL_CACHE.
CACHE = pathlib.Path(os.environ.get('JDL_CACHE', pathlib.Path.home() / '.cache' / 'jdl'))


def workdir(path: str | os.PathLike) -> epath.Path:
  """A run folder, local or remote."""
  return epath.Path(path)


def is_local(path: epath.PathLike) -> bool:
  """Whether a path is on this machine's file system (not gs://, s3://, ...)."""
  return '://' not in os.fspath(path)
