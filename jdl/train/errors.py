"""How a run ends, as an exit code that launchers and schedulers can rely on.

0   FINISHED    every step trained (or the command did what it was asked)
1   FAILED      a write failed (disk full, ...), a process died, or an unexpected error:
                see the message; the last checkpoint is intact
2   USAGE       a config, flag, data or checkpoint problem found before anything changed
                (unknown key, missing or corrupt data, a workdir another run holds, a
                checkpoint of another config, none restorable)
3   DIVERGED    the loss or the state became NaN or infinite; nothing non-finite was saved
75  RESUMABLE   stopped early (SIGTERM, SIGINT, the `max_seconds` budget) after saving a
                checkpoint: the same command continues the run
"""

from __future__ import annotations

FINISHED, FAILED, USAGE, DIVERGED, RESUMABLE = 0, 1, 2, 3, 75


class UsageError(ValueError):
  """A flag, file or run that the command cannot use (a missing program, a run of another task,
  a negative temperature); the message names it. Found before anything is written: exit 2."""


class WriteFailed(OSError):
  """Writing a run's files failed; the message names the path. Earlier files are intact."""


def store_errors() -> tuple[type[BaseException], ...]:
  """What a failed write raises: OSError (local files, and gcsfs for most HTTP errors); for gs://
  also gcsfs's HttpError and the Google API errors of google-cloud-storage (TensorBoard's writer,
  the workdir lease). The gs:// clients are imported only where installed (the tpu extra)."""
  kinds: list[type[BaseException]] = [OSError]
  try:
    from gcsfs.retry import HttpError

    kinds.append(HttpError)
  except ImportError:
    pass
  try:
    from google.api_core.exceptions import GoogleAPIError

    kinds.append(GoogleAPIError)
  except ImportError:
    pass
  return tuple(kinds)
