"""`jdl train --multihost` names the process that died when a peer of a multi-process run dies.

A dead peer makes the survivors' next collective fail inside C++: gloo (CPU collectives) aborts
with "Received data size doesn't match expected size. Is there a distributed collective mismatch
in your code?", the JAX distributed service ends a process with "detected fatal errors". Neither
leaves Python an exception to catch, and neither names the process that died. Their parent can:
with --multihost, `jdl train` starts itself again as a child and supervises it.

- The child, once it has joined the run, records itself in the workdir (shared by every host):
  `.jdl-processes/<run>-<i>.json` holds process i of n, host, PID and start time; `<run>` is drawn
  by process 0 at each start, so that records of earlier runs are never read as this one's.
- When the child ends otherwise than finished or resumable, its supervisor records how in
  `<run>-<i>.exit.json`: killed by a signal, an exit code, or aborted in a collective (what the
  child's stderr, passed through, ends with).
- A supervisor whose child aborted in a collective waits up to `PEER_WAIT` seconds for the other
  processes' records, prints one line naming the processes that died, or those that left no record
  (their host went down), and exits FAILED.

SIGTERM, SIGINT and SIGHUP to the supervisor are passed on to the child (SIGTERM checkpoints); the
child runs in a process group of its own, so that Ctrl-C reaches it once, and dies with its
supervisor. A run that ends normally removes its records.
"""

from __future__ import annotations

import ctypes
import datetime
import fcntl
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import termios
import time

from etils import epath

from jdl import paths
from jdl.train import errors

CHILD = 'JDL_SUPERVISOR'  # set in the child: its supervisor's token
FOLDER = '.jdl-processes'
PEER_WAIT = 10.0  # seconds a survivor waits for the other processes to record how they ended
COLLECTIVE = 'aborted in a collective'
# What the last lines of a process whose collective failed hold: gloo's C++ exception, or the
# JAX distributed service terminating the process (it found a peer gone).
_PEER_FAILED = re.compile(rb'gloo::|JAX distributed service detected fatal errors')
_TAIL = 16384  # bytes of the child's stderr kept to look for it
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def needed(multihost: bool) -> bool:
  """Whether this `jdl train` supervises a training process: a multi-process run's, not yet."""
  return (multihost or os.environ.get('JDL_DISTRIBUTED') == '1') and CHILD not in os.environ


def supervise(argv: list[str], workdir: epath.PathLike) -> int:
  """Runs `jdl *argv` as a child, passes its output and signals through; returns its exit code,
  or FAILED, with one line saying what happened, when it died."""
  token = os.urandom(8).hex()
  reader, writer = _stderr_pair()
  child = subprocess.Popen(
    [sys.executable, '-m', 'jdl', *argv],
    env=dict(os.environ, **{CHILD: token}),
    stderr=writer,
    process_group=0,  # a terminal's Ctrl-C reaches this process only, which passes it on once
    preexec_fn=_die_with_parent if sys.platform == 'linux' else None,
  )
  os.close(writer)
  previous = {s: signal.signal(s, lambda signum, _: child.send_signal(signum)) for s in _FORWARDED}
  try:
    tail = _pass_through(reader)
    code = child.wait()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  folder = paths.workdir(workdir) / FOLDER
  me = _own_record(folder, token)
  if code in (errors.FINISHED, errors.RESUMABLE):
    if me is not None:
      _path(folder, me).unlink(missing_ok=True)
    return code
  if _PEER_FAILED.search(tail):
    how = COLLECTIVE
  elif code < 0:
    how = f'killed by {signal.Signals(-code).name}'
  else:
    how = f'exit code {code}'
  if me is None:  # it never joined the run: there are no peers to ask
    if code < 0 or how == COLLECTIVE:
      print(f'jdl train: the training process (PID {child.pid}) died ({how})', file=sys.stderr)
      return errors.FAILED
    return code
  ended = datetime.datetime.now().isoformat(timespec='seconds')
  _write(_path(folder, me, '.exit'), dict(me, how=how, ended=ended))
  if how == COLLECTIVE:
    print(f'jdl train: {_blame(folder, me)}', file=sys.stderr)
    return errors.FAILED
  if code < 0:
    print(f'jdl train: {_who(me)} died ({how})', file=sys.stderr)
    return errors.FAILED
  return code  # the child said why


def register(workdir: epath.PathLike) -> None:
  """In a supervised training process, once it has joined the run: records which process it is."""
  token = os.environ.get(CHILD)
  if token is None:
    return
  import jax
  import numpy as np
  from jax.experimental import multihost_utils

  run = multihost_utils.broadcast_one_to_all(np.frombuffer(os.urandom(8), np.uint8))
  me = {
    'run': bytes(np.asarray(run, np.uint8)).hex(),
    'process': jax.process_index(),
    'processes': jax.process_count(),
    'host': socket.gethostname(),
    'pid': os.getpid(),
    'started': datetime.datetime.now().isoformat(timespec='seconds'),
    'supervisor': token,
  }
  folder = paths.workdir(workdir) / FOLDER
  folder.mkdir(parents=True, exist_ok=True)
  _write(_path(folder, me), me)


def _stderr_pair() -> tuple[int, int]:
  """(read end, write end) for the child's stderr: a terminal of its own when ours is one, so that
  it draws its progress bar as it would without a supervisor."""
  if not sys.stderr.isatty():
    return os.pipe()
  reader, writer = pty.openpty()
  size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, bytes(8))
  fcntl.ioctl(writer, termios.TIOCSWINSZ, size)
  return reader, writer


def _die_with_parent() -> None:
  """In the child, before it starts: a supervisor killed outright (SIGKILL) takes it along."""
  ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _pass_through(reader: int) -> bytes:
  """Copies the child's stderr to ours until it closes; returns the last `_TAIL` bytes."""
  tail = b''
  while True:
    try:
      chunk = os.read(reader, 65536)
    except OSError:  # a terminal's read end fails (EIO) once the child has closed the other
      chunk = b''
    if not chunk:
      os.close(reader)
      return tail
    sys.stderr.buffer.write(chunk)
    sys.stderr.buffer.flush()
    tail = (tail + chunk)[-_TAIL:]


def _blame(folder: epath.Path, me: dict) -> str:
  """The line a process whose collective failed prints: which of its peers died, or left no
  record within `PEER_WAIT` seconds."""
  peers = [j for j in range(me['processes']) if j != me['process']]
  deadline = time.monotonic() + PEER_WAIT
  while True:
    ends = {j: _read(_path(folder, dict(me, process=j), '.exit')) for j in peers}
    if all(ends.values()) or time.monotonic() > deadline:
      break
    time.sleep(0.25)
  causes = [f'{_who(e)} died ({e["how"]})' for e in ends.values() if e and e['how'] != COLLECTIVE]
  for j in (j for j, e in ends.items() if e is None):
    start = _read(_path(folder, dict(me, process=j)))
    who = _who(start) if start else f'process {j} of {me["processes"]}'
    causes.append(f'{who} left no record of its end within {PEER_WAIT:g} s (its host may be down)')
  this = f'this process ({me["process"]} of {me["processes"]})'
  if not causes:
    return f'{this} aborted in a collective, as did every other process: none recorded a cause'
  them = 'it' if len(causes) == 1 else 'them'
  return f'{", ".join(causes)}; {this} stopped because its collective with {them} failed'


def _who(record: dict) -> str:
  return (
    f'process {record["process"]} of {record["processes"]} '
    f'(host {record["host"]}, PID {record["pid"]})'
  )


def _path(folder: epath.Path, record: dict, kind: str = '') -> epath.Path:
  """Where the start (or, with kind '.exit', the end) of a record's process is written."""
  return folder / f'{record["run"]}-{record["process"]}{kind}.json'


def _own_record(folder: epath.Path, token: str) -> dict | None:
  """The record of the child of the supervisor `token`; None when it never joined the run."""
  if not folder.exists():
    return None
  for path in folder.glob('*.json'):
    record = None if path.name.endswith('.exit.json') else _read(path)
    if record and record.get('supervisor') == token:
      return record
  return None


def _read(path: epath.Path) -> dict | None:
  """A record; None when it is missing or partly written."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def _write(path: epath.Path, record: dict) -> None:
  try:
    path.write_text(json.dumps(record))
  except OSError:
    pass  # a workdir that takes no writes: the peers say that this process left no record
