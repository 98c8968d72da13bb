"""One run per workdir: an exclusive lock, taken before the run writes anything.

A second `jdl train` on a workdir that a live run holds stops with `WorkdirLocked` naming the
holder (host, PID, start time). The lock is the operating system's (`flock`), so it is released
when its process ends however it ends; a lock file left behind by a process that is gone is taken
over, with a message. Only local workdirs are locked here; a remote store (gs://) needs a lease
object instead.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket

from etils import epath

from jdl import paths

LOCK_FILE = '.jdl.lock'


class WorkdirLocked(RuntimeError):
  """Another live run holds the workdir; the message names it."""


class WorkdirLock:
  def __init__(self, workdir: epath.PathLike, log=print):
    self.workdir = paths.workdir(workdir)
    self.log = log
    self._fd: int | None = None

  def acquire(self) -> None:
    if not paths.is_local(self.workdir):
      self.log(f'note: {self.workdir} is not a local folder; it is not locked against a second run')
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    path = os.fspath(self.workdir / LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _describe(os.pread(fd, 4096, 0))
      os.close(fd)
      raise WorkdirLocked(
        f'{self.workdir} is in use by another jdl run ({holder}); wait for it to end, stop it, '
        'or give this run another --workdir'
      ) from None
    previous = os.pread(fd, 4096, 0)
    if previous.strip():
      self.log(f'taking over the lock of {self.workdir} left by {_describe(previous)}, which ended')
    me = {
      'host': socket.gethostname(),
      'pid': os.getpid(),
      'started': datetime.datetime.now().isoformat(timespec='seconds'),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      os.ftruncate(self._fd, 0)  # an empty file: nothing left behind to take over
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def _describe(content: bytes) -> str:
  try:
    holder = json.loads(content.decode())
    return f'host {holder["host"]}, PID {holder["pid"]}, started {holder["started"]}'
  except (ValueError, KeyError, UnicodeDecodeError):
    return 'a process that left no description'
