"""One run per workdir: an exclusive lock, taken before the run writes anything.

A second `jdl train` on a workdir that a live run holds stops with `WorkdirLocked` naming the
holder (host, PID, start time).

A local workdir is locked by the operating system (`flock` on `.jdl.lock`), so the lock goes
when its process ends however it ends; a lock file left by a process that is gone is taken over,
with a message.

A gs:// workdir is locked by a lease: the object `.jdl.lock`, created only if absent (a
generation precondition, so that of two runs starting together exactly one creates it),
rewritten by a heartbeat thread every `LEASE_RENEW_SECONDS` (30 s) and deleted at the end. A
lease that has not been rewritten for `LEASE_VALID_SECONDS` (120 s, four missed renewals) belongs
to a run that is gone and is taken over, with a message; so is, at once, one whose holder was a
process of this machine (same host and PID namespace) that has ended. Taking over is a rewrite
conditional on the generation read, so a holder renewing meanwhile keeps its lease. A lease's age
is this machine's clock against the store's update time: synchronized clocks are far within the
90 s margin. A run whose lease was taken over (its renewals failed for 120 s) says so and goes on.
Other remote stores (s3://, ...) are not locked.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import threading

from etils import epath

from jdl import paths
from jdl.train.errors import WriteFailed

LOCK_FILE = '.jdl.lock'
LEASE_RENEW_SECONDS = 30.0
LEASE_VALID_SECONDS = 120.0


class WorkdirLocked(RuntimeError):
  """Another live run holds the workdir; the message names it."""


class WorkdirLock:
  def __init__(
    self,
    workdir: epath.PathLike,
    log=print,
    renew_every: float = LEASE_RENEW_SECONDS,
    valid_for: float = LEASE_VALID_SECONDS,
  ):
    self.workdir = paths.workdir(workdir)
    self.log = log
    self.renew_every = renew_every
    self.valid_for = valid_for
    self._fd: int | None = None
    self._lease: _Lease | None = None

  def acquire(self) -> None:
    if os.fspath(self.workdir).startswith('gs://'):
      lease = _Lease(self.workdir, self.log, self.renew_every, self.valid_for)
      lease.acquire()
      self._lease = lease  # only a lease taken is ever released (deleted)
      return
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
      raise WorkdirLocked(_in_use(self.workdir, holder)) from None
    previous = os.pread(fd, 4096, 0)
    if previous.strip():
      self.log(f'taking over the lock of {self.workdir} left by {_describe(previous)}, which ended')
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_this_process()).encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._lease is not None:
      self._lease.release()
      self._lease = None
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


class _Lease:
  """The lock of a gs:// workdir (see the module's docstring), through google-cloud-storage: the
  client with generation preconditions on writes and deletes."""

  # Each round of `acquire` follows another run's change (a release, a renewal, a takeover).
  ROUNDS = 5

  def __init__(self, workdir: epath.Path, log, renew_every: float, valid_for: float):
    from google.cloud import storage

    bucket, _, name = os.fspath(workdir / LOCK_FILE).removeprefix('gs://').partition('/')
    self.blob = storage.Client().bucket(bucket).blob(name)
    self.workdir = workdir
    self.log = log
    self.renew_every = renew_every
    self.valid_for = valid_for
    self.me = _this_process()
    self.generation: int | None = None
    self._stop = threading.Event()
    self._heartbeat: threading.Thread | None = None

  def acquire(self) -> None:
    from google.api_core import exceptions

    for _ in range(self.ROUNDS):
      try:
        self._write(if_generation_match=0)
        break
      except exceptions.PreconditionFailed:
        pass
      try:
        self.blob.reload()
        seen = self.blob.generation
        content = self.blob.download_as_bytes(if_generation_match=seen)
      except (exceptions.NotFound, exceptions.PreconditionFailed):
        continue  # released or rewritten since the create failed: look again
      if _holder(content) == self.me:  # our own create, retried after a lost answer
        self.generation = seen
        break
      age = (datetime.datetime.now(datetime.UTC) - self.blob.updated).total_seconds()
      ended = _ended(_holder(content))
      if not ended and age < self.valid_for:
        raise WorkdirLocked(
          _in_use(self.workdir, _describe(content))
          + f' (its lease was renewed {age:.0f} s ago; one not renewed for {self.valid_for:g} s '
          'is taken over)'
        )
      try:
        self._write(if_generation_match=seen)
      except exceptions.PreconditionFailed:
        continue  # renewed or taken by another run meanwhile: look again
      why = 'ended' if ended else f'has not renewed it for {age:.0f} s'
      self.log(f'taking over the lock of {self.workdir} left by {_describe(content)}, which {why}')
      break
    else:
      raise WorkdirLocked(
        f'the lock of {self.workdir} changed hands {self.ROUNDS} times while this run tried to '
        'take it; another run is starting there: wait for it or give this run another --workdir'
      )
    self._heartbeat = threading.Thread(target=self._renew, name='jdl-lease', daemon=True)
    self._heartbeat.start()

  def _write(self, if_generation_match: int) -> None:
    from google.api_core import exceptions

    try:
      self.blob.upload_from_string(
        json.dumps(self.me),
        content_type='application/json',
        if_generation_match=if_generation_match,
      )
    except exceptions.PreconditionFailed:
      raise  # another run's lease: the caller decides
    except exceptions.GoogleAPICallError as e:  # no permission, no such bucket, ...
      raise WriteFailed(f'writing the lock {self.workdir / LOCK_FILE} failed: {e}') from e
    self.generation = self.blob.generation

  def _renew(self) -> None:
    from google.api_core import exceptions

    while not self._stop.wait(self.renew_every):
      try:
        self._write(if_generation_match=self.generation)
      except exceptions.PreconditionFailed:
        self.log(
          f'lost the lock of {self.workdir}: it was not renewed for {self.valid_for:g} s and '
          'another run has taken it over; both runs may now write there'
        )
        return
      except Exception as e:  # the store is unreachable for now: the lease lasts, try again
        self.log(f'could not renew the lock of {self.workdir} ({type(e).__name__}: {e}); retrying')

  def release(self) -> None:
    from google.api_core import exceptions

    self._stop.set()
    if self._heartbeat is not None:
      self._heartbeat.join()
    try:
      self.blob.delete(if_generation_match=self.generation)
    except (exceptions.NotFound, exceptions.PreconditionFailed):
      pass  # taken over meanwhile: the lease is the other run's now
    except exceptions.GoogleAPIError as e:  # the store refuses: the run's own error comes first
      self.log(
        f'could not release the lock of {self.workdir} ({type(e).__name__}: {e}); the next run '
        'takes it over once its lease has run out'
      )


def _this_process() -> dict:
  me = {
    'host': socket.gethostname(),
    'pid': os.getpid(),
    'started': datetime.datetime.now().isoformat(timespec='seconds'),
  }
  try:  # a PID means this process only within its PID namespace (containers have their own)
    me['pidns'] = os.stat('/proc/self/ns/pid').st_ino
  except OSError:
    pass
  return me


def _holder(content: bytes) -> dict:
  try:
    holder = json.loads(content.decode())
  except (ValueError, UnicodeDecodeError):
    return {}
  return holder if isinstance(holder, dict) else {}


def _ended(holder: dict) -> bool:
  """Whether the holder was a process of this machine, in this PID namespace, that is gone."""
  me = _this_process()
  if 'pidns' not in me or (holder.get('host'), holder.get('pidns')) != (me['host'], me['pidns']):
    return False
  try:
    os.kill(int(holder['pid']), 0)
  except ProcessLookupError:
    return True
  except (PermissionError, KeyError, TypeError, ValueError):  # alive (another user's), or unknown
    return False
  return False


def _in_use(workdir: epath.Path, holder: str) -> str:
  return (
    f'{workdir} is in use by another jdl run ({holder}); wait for it to end, stop it, '
    'or give this run another --workdir'
  )


def _describe(content: bytes) -> str:
  try:
    holder = json.loads(content.decode())
    return f'host {holder["host"]}, PID {holder["pid"]}, started {holder["started"]}'
  except (ValueError, KeyError, TypeError, UnicodeDecodeError):
    return 'a process that left no description'
