"""Where jdl finds things: the repository, its experiments, data and caches. Imports no JAX.

Local folders are `pathlib.Path`s; a run's workdir may be remote (`gs://...`), so code that
reads or writes a workdir takes an `etils.epath.Path` from `workdir()`.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

from etils import epath

PACKAGE = pathlib.Path(__file__).resolve().parent
ROOT = PACKAGE.parent  # the repository (an editable install); site-packages for an installed wheel
# The experiment configs: a wheel carries them inside the package (setup.py copies them there), a
# checkout has them beside it.
EXPERIMENTS = next(
  (p for p in (PACKAGE / 'experiments', ROOT / 'experiments') if p.is_dir()), ROOT / 'experiments'
)
# Derived data (tokenizers, token arrays, splits) written once and reused: $JDL_CACHE.
CACHE = pathlib.Path(os.environ.get('JDL_CACHE', pathlib.Path.home() / '.cache' / 'jdl'))

# The clients a gs:// workdir needs: epath's backend (gcsfs) for files, google-cloud-storage for
# TensorBoard's writer and the workdir's lease (orbax's tensorstore speaks gs:// itself).
GCS_MODULES = {'gcsfs': 'gcsfs', 'google.cloud.storage': 'google-cloud-storage'}


def workdir(path: str | os.PathLike) -> epath.Path:
  """A run folder, local (made absolute) or remote. A gs:// one without its clients installed is
  a usage error here, before anything is written (etils would otherwise fail deep inside the
  first write)."""
  if os.fspath(path).startswith('gs://'):
    missing = [pip for module, pip in GCS_MODULES.items() if not _installed(module)]
    if missing:
      from jdl.config import ConfigError

      raise ConfigError(
        f'a gs:// workdir needs {" and ".join(missing)}: pip install "jdl[tpu]" '
        f'(or pip install {" ".join(missing)})'
      )
    import fsspec

    # Several clients (tensorstore, TensorBoard's writer, the lease) and processes write a
    # workdir: gcsfs would answer listings from a cache that only its own writes update.
    fsspec.config.conf.setdefault('gcs', {}).setdefault('use_listings_cache', False)
    return epath.Path(path)
  # Absolute, so that orbax (which requires it) and a later change of directory see one folder.
  return epath.Path(os.path.abspath(path))


def config_file(path: str | os.PathLike) -> pathlib.Path:
  """The file of a `--config` path: as given (relative to the current directory), else, for a
  path `experiments/...`, the same file among the experiments installed with jdl, so that
  `experiments/mlp/keras_regression.py` names it from any directory and from an installed wheel.
  The path as given when neither exists."""
  given = pathlib.Path(path)
  if given.is_file() or given.is_absolute() or given.parts[:1] != ('experiments',):
    return given
  installed = EXPERIMENTS.joinpath(*given.parts[1:])
  return installed if installed.is_file() else given


def is_local(path: epath.PathLike) -> bool:
  """Whether a path is on this machine's file system (not gs://, s3://, ...)."""
  return '://' not in os.fspath(path)


def _installed(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except ModuleNotFoundError:  # a parent package (google.cloud) is missing
    return False
