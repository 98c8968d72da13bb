"""Run untrusted candidate priority functions: a candidate can influence nothing but the
priority scores it returns.

Layers, each meant to hold on its own:

1. `check_source`, a cheap first filter: the AST may only import numpy and math, define
   `priority`, and must not name dangerous builtins, dunder or private attributes,
   frame / traceback / generator internals (f_back, tb_frame, gi_frame, ...), NumPy's
   file, raw-buffer and ctypes escape hatches, or format strings that traverse attributes.
2. The trusted driver (a worker process, `serve`) runs the online packing itself
   (`evaluate.OnlinePacking`). A candidate process only ever receives the current item of
   each unfinished instance with its feasible bins, and answers with one float64 array
   of scores; the driver checks their number and finiteness and takes the argmax. The
   bins used are what the driver counted. Nothing a candidate can write is unpickled or
   otherwise deserialised: a fixed header of four int64 and raw arrays (in shared memory)
   are the whole protocol.
3. The candidate process is confined by the OS before the candidate's code runs: it is
   forked from a zygote that never saw the instances or the search's environment (the
   workers start with only ALLOWED_ENV), keeps no file descriptor but its two pipes,
   /dev/null and the shared memory, and gets CPU, address-space, file-size and core
   limits, PR_SET_NO_NEW_PRIVS and a seccomp filter (`confine`): an allow-list of
   syscalls for computing and talking on the fds it has; starting processes (execve,
   fork, clone without CLONE_THREAD; clone3 answers ENOSYS), opening files, sockets and
   signals are refused with EPERM, as is everything not listed.
4. A wall-clock deadline in the driver; at the end of every candidate the zygote kills
   the candidate's whole process group before reaping it, and a reason is recorded for
   every failure (rejected / timeout / memory / error / crashed).

`SandboxPool` is the process pool: `workers` worker processes (each with its zygote),
each evaluating one candidate at a time; the search submits and polls asynchronously
and never waits on one slow candidate. JSON lines between the pool and its workers
(trusted processes both) carry requests and outcomes.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import dataclasses
import errno
import fcntl
import json
import math
import mmap
import os
import pathlib
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np

from jdl.binpack import evaluate

ALLOWED_MODULES = ('numpy', 'math')

FORBIDDEN_NAMES = {
  'open',
  'exec',
  'eval',
  'compile',
  '__import__',
  'globals',
  'locals',
  'vars',
  'getattr',
  'setattr',
  'delattr',
  'hasattr',
  'input',
  'breakpoint',
  'help',
  'exit',
  'quit',
  'dir',
  'type',
  'object',
  'super',
  'memoryview',
  'print',
  'classmethod',
  'staticmethod',
  'property',
  '__builtins__',
  'os',
  'sys',
  'subprocess',
  'socket',
}
# Attribute names that reach files, processes, foreign code or interpreter internals.
FORBIDDEN_ATTRIBUTES = {
  'save',
  'savez',
  'savez_compressed',
  'savetxt',
  'load',
  'loadtxt',
  'genfromtxt',
  'fromfile',
  'tofile',
  'fromregex',
  'memmap',
  'DataSource',
  'dump',
  'dumps',
  'ctypes',
  'ctypeslib',
  'lib',
  'testing',
  'f2py',
  'distutils',
  'core',
  'os',
  'sys',
  'system',
  'popen',
  'show_config',
  'get_include',
  'typing',
  'rec',
  'char',
  'strings',
  'ma',
  # reinterpreting raw memory (an object-dtype view of integers is a forged pointer)
  'frombuffer',
  'fromstring',
  'from_dlpack',
  'view',
  'setflags',
  'getfield',
  'setfield',
  'as_strided',
  'data',
  # str.format reaches attributes through its replacement fields
  'format',
  'format_map',
}
# Frame, traceback, generator, coroutine and code-object internals: the way from a
# function to its caller's globals and locals.
FORBIDDEN_ATTRIBUTE_PREFIX = re.compile(r'^(f|tb|gi|cr|ag|co)_')
# A replacement field with attribute or index access, like '{0.f_back}' or '{0[x]}'.
FORMAT_TRAVERSAL = re.compile(r'\{[^{}!:]*[.\[]')
# Object dtype codes: arrays of object pointers.
OBJECT_DTYPE = re.compile(r'^[|<>=]?O\d*$')
FORBIDDEN_NODES = (
  ast.Global,
  ast.Nonlocal,
  ast.ClassDef,
  ast.AsyncFunctionDef,
  ast.Await,
  ast.AsyncWith,
  ast.AsyncFor,
  ast.Yield,
  ast.YieldFrom,
  ast.With,
)

SAFE_BUILTINS = (
  'abs',
  'all',
  'any',
  'bool',
  'dict',
  'divmod',
  'enumerate',
  'filter',
  'float',
  'int',
  'isinstance',
  'len',
  'list',
  'map',
  'max',
  'min',
  'pow',
  'range',
  'reversed',
  'round',
  'set',
  'slice',
  'sorted',
  'sum',
  'tuple',
  'zip',
  'complex',
  'str',
  'Exception',
  'ValueError',
  'ArithmeticError',
  'ZeroDivisionError',
  'IndexError',
  'TypeError',
  'FloatingPointError',
  'OverflowError',
  'RuntimeError',
  'True',
  'False',
  'None',
  'NotImplemented',
  'KeyError',
  'StopIteration',
)


class Rejected(ValueError):
  """The source failed the static check; the message is the recorded reason."""


def check_source(source: str, name: str = 'priority') -> ast.Module:
  """Static check of a candidate; returns the parsed module or raises Rejected."""
  try:
    tree = ast.parse(source)
  except SyntaxError as e:
    raise Rejected(f'syntax error: {e.msg} (line {e.lineno})') from None
  for node in tree.body:
    ok = isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom, ast.Assign))
    ok = ok or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    if not ok:
      raise Rejected(f'top-level {type(node).__name__} not allowed')
  if not any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body):
    raise Rejected(f'no function named {name!r}')
  annotations = _annotation_nodes(tree)
  for node in ast.walk(tree):
    if isinstance(node, FORBIDDEN_NODES):
      raise Rejected(f'{type(node).__name__} not allowed')
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name not in ALLOWED_MODULES:
          raise Rejected(f'import of {alias.name!r} not allowed')
    elif isinstance(node, ast.ImportFrom):
      if node.module not in ALLOWED_MODULES or node.level:
        raise Rejected(f'import from {node.module!r} not allowed')
      for alias in node.names:
        if alias.name in ('*', 'ndarray') or alias.name.startswith('_'):
          raise Rejected(f'import of {node.module}.{alias.name} not allowed')
        if alias.name in FORBIDDEN_ATTRIBUTES or FORBIDDEN_ATTRIBUTE_PREFIX.match(alias.name):
          raise Rejected(f'import of {node.module}.{alias.name} not allowed')
    elif isinstance(node, ast.Name):
      if node.id in FORBIDDEN_NAMES or node.id.startswith('__'):
        raise Rejected(f'name {node.id!r} not allowed')
    elif isinstance(node, ast.Attribute):
      # np.ndarray is a type annotation in FunSearch's skeleton; called, it builds an
      # array over any buffer.
      if node.attr != 'ndarray':
        _check_attribute(node.attr)
      elif id(node) not in annotations:
        raise Rejected('np.ndarray outside a type annotation not allowed')
    elif isinstance(node, ast.MatchClass):  # `case x(f_back=f)` reads an attribute
      for attr in node.kwd_attrs:
        _check_attribute(attr)
    elif isinstance(node, ast.keyword) and node.arg == 'buffer':
      raise Rejected("keyword 'buffer' not allowed")
    elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
      args = node.args
      for a in args.args + args.kwonlyargs + args.posonlyargs:
        if a.arg.startswith('__'):
          raise Rejected(f'argument {a.arg!r} not allowed')
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
      if not _is_docstring(node, tree):
        if '__' in node.value:
          raise Rejected("string constants with '__' not allowed")
        if FORMAT_TRAVERSAL.search(node.value):
          raise Rejected('format fields with attribute or index access not allowed')
        if OBJECT_DTYPE.match(node.value):
          raise Rejected('object dtype not allowed')
  return tree


def _check_attribute(attr: str) -> None:
  if attr.startswith('_') or attr in FORBIDDEN_ATTRIBUTES or FORBIDDEN_ATTRIBUTE_PREFIX.match(attr):
    raise Rejected(f'attribute {attr!r} not allowed')


def _annotation_nodes(tree) -> set[int]:
  """ids of the nodes inside type annotations (parameters, returns, annotated names)."""
  roots = []
  for node in ast.walk(tree):
    if isinstance(node, ast.arg) and node.annotation is not None:
      roots.append(node.annotation)
    elif isinstance(node, ast.FunctionDef) and node.returns is not None:
      roots.append(node.returns)
    elif isinstance(node, ast.AnnAssign):
      roots.append(node.annotation)
  return {id(n) for root in roots for n in ast.walk(root)}


def _is_docstring(node, tree) -> bool:
  for scope in ast.walk(tree):
    if isinstance(scope, (ast.Module, ast.FunctionDef)) and scope.body:
      first = scope.body[0]
      if isinstance(first, ast.Expr) and first.value is node:
        return True
  return False


# --- elementwise programs (one untouched bin shown is exact for them) --------------

ELEMENTWISE_NP = {
  'abs',
  'absolute',
  'exp',
  'expm1',
  'log',
  'log1p',
  'log2',
  'log10',
  'sqrt',
  'square',
  'sin',
  'cos',
  'tanh',
  'arctan',
  'maximum',
  'minimum',
  'where',
  'clip',
  'sign',
  'floor',
  'ceil',
  'round',
  'power',
  'reciprocal',
  'zeros_like',
  'ones_like',
  'full_like',
  'logical_and',
  'logical_or',
  'logical_not',
  'isclose',
  'pi',
  'e',
  'sinh',
  'cosh',
  'arctan2',
  'fmax',
  'fmin',
  'negative',
}


def is_elementwise(source: str, name: str = 'priority') -> bool:
  """True if `priority` computes each bin's score from (item, that bin) alone.

  Such a program gives the same choice whatever else is in `bins`, so the fast
  evaluators' truncated pool is exact for it. We
  accept only straight-line code over item/bins/locals with elementwise np calls,
  arithmetic and comparisons (no subscripts, loops, reductions, len or methods).
  """
  try:
    tree = check_source(source, name)
  except Rejected:
    return False
  fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
  params = [a.arg for a in fn.args.args]
  if len(params) != 2 or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs:
    return False
  allowed_nodes = (
    ast.Assign,
    ast.AugAssign,
    ast.Return,
    ast.Expr,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Call,
    ast.Attribute,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.IfExp,
    ast.keyword,
  )
  for stmt in fn.body:
    for node in ast.walk(stmt):
      if not isinstance(node, allowed_nodes):
        return False
      if isinstance(node, ast.Attribute):
        if not (
          isinstance(node.value, ast.Name)
          and node.value.id in ('np', 'numpy')
          and node.attr in ELEMENTWISE_NP
        ):
          return False
      if isinstance(node, ast.Call) and not isinstance(node.func, ast.Attribute):
        return False
      if isinstance(node, ast.IfExp):  # a Python `if` on arrays is not elementwise
        return False
  return isinstance(fn.body[-1], ast.Return)


# --- the candidate process -------------------------------------------------------------

# Environment of the workers (and so of every zygote and candidate): an allow-list of
# thread counts, nothing inherited from the search process.
ALLOWED_ENV = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

# What a candidate process may call once confined: compute, use memory, read and write
# the fds it already has, run threads, read clocks and exit. `clone` only with
# CLONE_THREAD; everything else (execve, fork, vfork, open*, socket*, kill, ptrace,
# io_uring, bpf, mount, ...) fails with EPERM.
SYSCALLS_ALLOWED = (
  'read',
  'write',
  'readv',
  'writev',
  'close',
  'brk',
  'mmap',
  'munmap',
  'mremap',
  'mprotect',
  'madvise',
  'futex',
  'set_robust_list',
  'set_tid_address',
  'rseq',
  'sched_yield',
  'rt_sigaction',
  'rt_sigprocmask',
  'rt_sigreturn',
  'sigaltstack',
  'restart_syscall',
  'getpid',
  'gettid',
  'clock_gettime',
  'clock_getres',
  'gettimeofday',
  'time',
  'nanosleep',
  'clock_nanosleep',
  'getrandom',
  'getrusage',
  'times',
  'exit',
  'exit_group',
)
_CLONE_THREAD = 0x00010000
_PR_SET_NO_NEW_PRIVS = 38

# Header of every message between driver and candidate: four little-endian int64.
_HEADER = struct.Struct('<4q')
_PROGRAM, _DECIDE = 1, 2  # driver -> candidate kinds
_SCORES, _FAILED = 0, 1  # candidate -> driver kinds
_MAX_REASON = 4096


class InvalidPriority(ValueError):
  """The priority function returned something the driver cannot use."""


def confine(memory_bytes: int, cpu_seconds: int) -> None:
  """Confine the calling process for good (the candidate process calls it on itself).

  Limits first (address space above what is mapped now, CPU, no file bytes, no core
  dumps), then no new privileges, then the seccomp allow-list. Irreversible.
  """
  import pyseccomp

  limit = _virtual_memory_bytes() + memory_bytes
  resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
  resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
  resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
  libc = ctypes.CDLL(None, use_errno=True)
  if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), 'prctl(PR_SET_NO_NEW_PRIVS) failed')
  rules = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
  for name in SYSCALLS_ALLOWED:
    rules.add_rule(pyseccomp.ALLOW, name)
  thread = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_THREAD, _CLONE_THREAD)
  rules.add_rule(pyseccomp.ALLOW, 'clone', thread)
  # ENOSYS, not EPERM: glibc then falls back to clone, whose flags the filter can read.
  rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), 'clone3')
  rules.load()


def _virtual_memory_bytes() -> int:
  with builtins.open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmSize:'):
        return int(line.split()[1]) * 1024
  raise RuntimeError('no VmSize in /proc/self/status')


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
  if level or name.split('.')[0] not in ALLOWED_MODULES:
    raise ImportError(f'import of {name!r} is not allowed in the sandbox')
  return builtins.__import__(name, globals, locals, fromlist, level)


def compile_restricted(source: str):
  """Exec `source` with whitelisted builtins; returns its `priority` function."""
  safe = {k: getattr(builtins, k) for k in SAFE_BUILTINS if hasattr(builtins, k)}
  safe['__import__'] = _restricted_import
  namespace = {'__builtins__': safe, 'np': np, 'numpy': np, 'math': math, '__name__': 'candidate'}
  exec(compile(source, '<candidate>', 'exec'), namespace)  # noqa: S102 - in the candidate process
  return namespace['priority']


def _candidate_process(fds, size: int, memory_bytes: int, cpu_seconds: int):
  """In the forked candidate process: isolate, confine, answer the driver; never returns."""
  request, reply, memfd = fds
  code = 1
  try:
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
      os.dup2(devnull, fd)
    for name in os.listdir('/proc/self/fd'):  # the zygote's socket, anything inherited
      if int(name) not in (0, 1, 2, request, reply, memfd):
        try:
          os.close(int(name))
        except OSError:  # the listing's own descriptor, already closed
          pass
    shared = mmap.mmap(memfd, size)
    os.close(memfd)
    os.environ.clear()  # Python added LC_CTYPE to the worker's: leave exactly the allow-list
    os.environ.update(ALLOWED_ENV)
    np.seterr(all='ignore')  # non-finite scores are the driver's to judge
    try:
      confine(memory_bytes, cpu_seconds)
    except Exception as e:  # fail closed: the candidate's code is never read
      _fail(reply, RuntimeError(f'confinement failed, nothing was run: {e}'))
      return
    _answer(request, reply, shared)
    code = 0
  finally:
    os._exit(code)


def _answer(request: int, reply: int, shared) -> None:
  """The candidate's side of the protocol: read the program, then answer decisions."""
  _, capacity, reply_offset, size = _HEADER.unpack(_read_exact(request, _HEADER.size))
  try:
    priority = compile_restricted(_read_exact(request, size).decode())
  except BaseException as e:  # the candidate's failure, reported as such
    _fail(reply, e)
    return
  os.write(reply, _HEADER.pack(_SCORES, 0, 0, 0))
  words = np.frombuffer(shared, np.int64, reply_offset // 8)
  scores = np.frombuffer(shared, np.float64, offset=reply_offset)
  while header := _read_exact(request, _HEADER.size, eof_ok=True):
    _, k, live_total, _ = _HEADER.unpack(header)
    items, counts, untouched = words[:k], words[k : 2 * k], words[2 * k : 3 * k]
    live = words[3 * k : 3 * k + live_total]
    start, out = 0, 0
    try:
      for i in range(k):
        bins = np.concatenate([live[start : start + counts[i]], np.full(untouched[i], capacity)])
        start += counts[i]
        scores[out : out + len(bins)] = _checked(priority(int(items[i]), bins), len(bins))
        out += len(bins)
    except BaseException as e:
      _fail(reply, e)
      return
    os.write(reply, _HEADER.pack(_SCORES, out, 0, 0))


def _checked(scores, size: int) -> np.ndarray:
  if not isinstance(scores, np.ndarray):
    raise InvalidPriority(f'priority returned {type(scores).__name__}, not an ndarray')
  if scores.shape != (size,):
    raise InvalidPriority(f'priority returned shape {scores.shape}, expected ({size},)')
  if scores.dtype.kind not in 'biuf':
    raise InvalidPriority(f'priority returned dtype {scores.dtype}, not numeric')
  return scores


def _fail(reply: int, error: BaseException) -> None:
  if isinstance(error, MemoryError):
    text, memory = 'MemoryError: over the memory limit', 1
  else:
    text, memory = f'{type(error).__name__}: {str(error)[:300]}', 0
  data = text.encode('utf-8', 'replace')[:_MAX_REASON]
  os.write(reply, _HEADER.pack(_FAILED, memory, len(data), 0) + data)


def _read_exact(fd: int, size: int, deadline: float | None = None, eof_ok: bool = False) -> bytes:
  """Exactly `size` bytes from `fd` (b'' at a clean EOF if eof_ok); waits until `deadline`."""
  chunks, got = [], 0
  while got < size:
    if deadline is not None:
      left = deadline - time.monotonic()
      if left <= 0 or not select.select([fd], [], [], left)[0]:
        raise _Deadline
    chunk = os.read(fd, size - got)
    if not chunk:
      if eof_ok and not got:
        return b''
      raise _Gone
    chunks.append(chunk)
    got += len(chunk)
  return b''.join(chunks)


def _write_all(fd: int, data: bytes, deadline: float) -> None:
  """Write to a non-blocking fd; a reader that stops reading runs into the deadline."""
  view = memoryview(data)
  while view:
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([], [fd], [], left)[1]:
      raise _Deadline
    try:
      view = view[os.write(fd, view) :]
    except BlockingIOError:
      continue
    except BrokenPipeError:
      raise _Gone from None


class _Deadline(Exception):
  """The candidate's wall-clock time is up."""


class _Gone(Exception):
  """The candidate process closed its end (it exited or was killed)."""


class _Malformed(Exception):
  """The candidate process broke the protocol."""


# --- the zygote ------------------------------------------------------------------------


def _zygote(control: socket.socket):
  """Fork candidate processes on request; kill each one's process group, reap it and
  report its wait status. Started by the worker before the worker reads anything, so
  that nothing the worker is sent later is in a candidate's memory. Never returns."""
  code = 1
  try:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # the worker's request and answer pipes stay the worker's
      os.dup2(devnull, fd)
    while True:
      message, fds, _, _ = socket.recv_fds(control, 64, 3)
      if not message:
        code = 0
        return
      if message == b'K':  # a kill for a candidate that already ended
        continue
      size, memory_bytes, cpu_seconds = struct.unpack('<3q', message)
      pid = os.fork()
      if pid == 0:
        control.close()
        _candidate_process(fds, size, memory_bytes, cpu_seconds)
      for fd in fds:
        os.close(fd)
      try:
        os.setpgid(pid, pid)  # also done by the child: whichever runs first
      except OSError:
        pass
      control.send(struct.pack('<cq', b'P', pid))
      if not _watch(control, pid):
        return
  finally:
    os._exit(code)


def _watch(control: socket.socket, pid: int) -> bool:
  """Until the candidate `pid` ends (or the worker asks to kill it); False if the worker
  is gone. The group is killed before the candidate is reaped, so its id is still ours."""
  pidfd = os.pidfd_open(pid)
  alive = True
  try:
    while True:
      ready = select.select([control, pidfd], [], [])[0]
      if control in ready:
        message = control.recv(64)
        if message == b'K' or not message:
          _kill_group(pid)
        if not message:
          alive = False
      if pidfd in ready:
        break
    _kill_group(pid)
    _, status = os.waitpid(pid, 0)
    if alive:
      control.send(struct.pack('<cq', b'X', status))
    return alive
  finally:
    os.close(pidfd)


def _kill_group(pid: int) -> None:
  try:
    os.killpg(pid, signal.SIGKILL)
  except ProcessLookupError:
    pass


# --- the worker: the trusted driver ---------------------------------------------------


class _Driver:
  """The worker's state: the instances, the zygote, and one candidate at a time."""

  def __init__(self, config: dict, zygote: socket.socket):
    self.instances = [np.asarray(v, dtype=np.int64) for v in config['instances']]
    self.capacity = int(config['capacity'])
    self.timeout = float(config['timeout'])
    self.memory_bytes = int(config['memory_bytes'])
    self.cpu_seconds = int(config['cpu_seconds'])
    self.zygote = zygote
    # Shared memory: the request (items, feasible-bin counts, untouched counts, then the
    # feasible bins of every unfinished instance) and the reply (their scores). A
    # decision's bins number at most its instance's length.
    total = sum(len(v) for v in self.instances)
    self.reply_offset = 8 * (3 * len(self.instances) + total)
    self.size = self.reply_offset + 8 * total

  def evaluate(self, source: str, empties: int | None) -> dict:
    start = time.monotonic()
    deadline = start + self.timeout
    memfd = os.memfd_create('jdl-binpack-candidate', os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    try:
      os.ftruncate(memfd, self.size)
      # The candidate may hold the memory but can never resize it under the driver.
      seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
      fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, seals)
      shared = mmap.mmap(memfd, self.size)
      limits = struct.pack('<3q', self.size, self.memory_bytes, self.cpu_seconds)
      socket.send_fds(self.zygote, [limits], [request_r, reply_w, memfd])
    finally:
      for fd in (memfd, request_r, reply_w):
        os.close(fd)
    os.set_blocking(request_w, False)
    self.zygote.recv(64)  # the candidate's pid: the zygote, not the driver, signals it
    try:
      status, bins, reason = self._drive(source, empties, request_w, reply_r, shared, deadline)
    finally:
      os.close(request_w)
      os.close(reply_r)
      self.zygote.send(b'K')
      message = self.zygote.recv(64)
    shared.close()  # (after an unexpected error the traceback's views keep it to the GC)
    _, wait_status = struct.unpack('<cq', message)
    if status == 'gone':  # the candidate died without answering: say how
      status, reason = _death(wait_status)
    return {
      'status': status,
      'bins': bins,
      'reason': reason,
      'seconds': time.monotonic() - start,
    }

  def _drive(self, source, empties, request_w, reply_r, shared, deadline):
    words = np.frombuffer(shared, np.int64, self.reply_offset // 8)
    scores = np.frombuffer(shared, np.float64, offset=self.reply_offset)

    def exchange(header: bytes, payload: bytes = b'') -> int:
      _write_all(request_w, header + payload, deadline)
      kind, a, b, _ = _HEADER.unpack(_read_exact(reply_r, _HEADER.size, deadline))
      if kind == _SCORES:
        return a
      if kind == _FAILED and 0 <= b <= _MAX_REASON:
        reason = _read_exact(reply_r, b, deadline).decode('utf-8', 'replace')
        raise _Failed('memory' if a == 1 else 'error', reason)
      raise _Malformed(f'answer header kind {kind}')

    try:
      code = source.encode()
      exchange(_HEADER.pack(_PROGRAM, self.capacity, self.reply_offset, len(code)), code)
      packings = [evaluate.OnlinePacking(v, self.capacity, empties) for v in self.instances]
      while active := [p for p in packings if not p.done]:
        k = len(active)
        offers = [p.offer() for p in active]
        live = [bins for _, bins, _ in offers]
        counts = [len(bins) for bins in live]
        untouched = [u for _, _, u in offers]
        words[:k] = [item for item, _, _ in offers]
        words[k : 2 * k] = counts
        words[2 * k : 3 * k] = untouched
        live_total = sum(counts)
        words[3 * k : 3 * k + live_total] = np.concatenate(live)
        expected = live_total + sum(untouched)
        answered = exchange(_HEADER.pack(_DECIDE, k, live_total, 0))
        if answered != expected:
          raise _Malformed(f'{answered} scores for {expected} bins')
        # A copy first: the candidate can still write to the shared memory.
        values = scores[:expected].copy()
        if not np.isfinite(values).all():
          raise _Failed('error', 'priority returned a non-finite score (nan or inf)')
        start = 0
        for packing, size in zip(active, np.add(counts, untouched)):
          packing.place(int(np.argmax(values[start : start + size])))
          start += size
      return 'ok', [p.bins_used for p in packings], ''
    except _Failed as e:
      return e.status, None, e.reason
    except _Deadline:
      return 'timeout', None, f'killed after {self.timeout:.0f} s'
    except _Gone:
      return 'gone', None, ''
    except _Malformed as e:
      return 'error', None, f'broke the protocol: {e}'


class _Failed(Exception):
  def __init__(self, status: str, reason: str):
    super().__init__(reason)
    self.status, self.reason = status, reason


def _death(wait_status: int) -> tuple[str, str]:
  if os.WIFSIGNALED(wait_status):
    sig = signal.Signals(os.WTERMSIG(wait_status))
    kind = 'timeout' if sig == signal.SIGXCPU else 'crashed'
    return kind, f'candidate process killed by {sig.name}'
  return 'crashed', f'candidate process exited with {os.WEXITSTATUS(wait_status)}'


def serve() -> None:
  """Worker main loop (`python -I -c '...serve()'`, started by `SandboxPool`).

  Forks the zygote before reading anything, then reads a JSON config line (instances,
  capacity, limits) and one JSON request line per candidate, and answers each with a
  JSON outcome line.
  """
  answers = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)  # stray prints must not corrupt the answer stream
  try:
    import pyseccomp  # noqa: F401 - loaded here so that the zygote's children have it
  except (ImportError, RuntimeError) as e:
    reason = f'seccomp unavailable ({e}): install Debian libseccomp2 and pyseccomp'
    answers.write(json.dumps({'fatal': reason}) + '\n')
    answers.flush()
    return
  worker_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
  zygote = os.fork()
  if zygote == 0:
    worker_end.close()
    _zygote(zygote_end)
  zygote_end.close()
  answers.write(json.dumps({'ready': True}) + '\n')
  answers.flush()
  driver = _Driver(json.loads(sys.stdin.readline()), worker_end)
  for line in sys.stdin:
    request = json.loads(line)
    answers.write(json.dumps(driver.evaluate(request['source'], request['empties'])) + '\n')
    answers.flush()
  worker_end.close()  # the zygote sees the end of its requests and exits
  os.waitpid(zygote, 0)


# --- the pool, in the search process --------------------------------------------------


@dataclasses.dataclass
class Outcome:
  tag: object
  source: str
  status: str  # ok | rejected | timeout | memory | error | crashed
  bins: list | None = None
  reason: str = ''
  seconds: float = 0.0

  @property
  def ok(self) -> bool:
    return self.status == 'ok'


class _Worker:
  def __init__(self, config: dict):
    root = str(pathlib.Path(__file__).resolve().parents[2])
    code = 'import sys; sys.path.insert(0, sys.argv[1]); import jdl.binpack.sandbox as s; s.serve()'
    self.proc = subprocess.Popen(
      [sys.executable, '-I', '-c', code, root],
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      env=dict(ALLOWED_ENV),
      cwd=root,
      text=True,
    )
    self.config = config
    self.job = None  # (tag, source, started_at) while busy

  def start(self) -> None:
    """Wait for the worker's start-up line, then send it the instances."""
    first = json.loads(self.proc.stdout.readline() or '{"fatal": "worker did not start"}')
    if 'fatal' in first:
      self.kill()
      raise RuntimeError(f'sandbox worker: {first["fatal"]}')
    self.send(self.config)

  def send(self, message: dict) -> None:
    self.proc.stdin.write(json.dumps(message) + '\n')
    self.proc.stdin.flush()

  def kill(self) -> None:
    self.proc.kill()
    self.proc.wait()


class SandboxPool:
  """Evaluates candidates on `dataset` with `workers` worker processes, asynchronously.

  submit() queues a candidate (static check first: a rejected one becomes an outcome
  at once); poll() returns the outcomes finished so far. Each worker runs a fresh
  confined candidate process per program and kills it at the deadline; if a worker
  itself stops answering (it should not), it is killed and replaced.
  """

  def __init__(self, dataset, workers: int = 2, timeout: float = 20.0, memory_mb: int = 1024):
    self.timeout = float(timeout)
    self.config = {
      'instances': [np.asarray(v).tolist() for v in dataset.instances.values()],
      'capacity': int(dataset.capacity),
      'timeout': self.timeout,
      'memory_bytes': memory_mb * 2**20,
      'cpu_seconds': max(1, int(math.ceil(self.timeout))) + 1,
    }
    self._workers = [_Worker(self.config) for _ in range(workers)]  # start in parallel
    for worker in self._workers:
      worker.start()
    self._queue = []  # (tag, source, empties) waiting for a free worker
    self._done = []

  def submit(self, source: str, tag=None, check: bool = True, empties: int | None = None) -> None:
    """Queue `source`; `empties` as in `evaluate.pack` (None: the paper's full pool)."""
    if check:
      try:
        check_source(source)
      except Rejected as e:
        self._done.append(Outcome(tag, source, 'rejected', reason=str(e)))
        return
    self._queue.append((tag, source, empties))
    self._dispatch()

  @property
  def busy(self) -> int:
    return len(self._queue) + sum(w.job is not None for w in self._workers)

  def _dispatch(self) -> None:
    for worker in self._workers:
      if worker.job is None and self._queue:
        tag, source, empties = self._queue.pop(0)
        worker.send({'source': source, 'empties': empties})
        worker.job = (tag, source, time.monotonic())

  def poll(self, timeout: float = 0.0) -> list[Outcome]:
    """Outcomes finished so far (waits up to `timeout` s for at least one)."""
    busy = {w.proc.stdout: w for w in self._workers if w.job is not None}
    wait = timeout if busy and not self._done else 0
    ready = select.select(list(busy), [], [], wait)[0] if busy else []
    for stream in ready:
      worker = busy[stream]
      tag, source, _ = worker.job
      line = stream.readline()
      worker.job = None
      if not line:  # the worker died: record it, replace the worker
        self._done.append(Outcome(tag, source, 'crashed', reason='worker died'))
        self._replace(worker)
        continue
      answer = json.loads(line)
      self._done.append(
        Outcome(tag, source, answer['status'], answer['bins'], answer['reason'], answer['seconds'])
      )
    for worker in self._workers:  # backstop for a hung worker
      if worker.job and time.monotonic() - worker.job[2] > self.timeout + 30:
        tag, source, _ = worker.job
        self._done.append(Outcome(tag, source, 'timeout', reason='worker hung'))
        self._replace(worker)
    self._dispatch()
    done, self._done = self._done, []
    return done

  def _replace(self, worker: _Worker) -> None:
    worker.kill()
    fresh = _Worker(self.config)
    fresh.start()
    self._workers[self._workers.index(worker)] = fresh

  def drain(self, timeout: float = 120.0) -> list[Outcome]:
    """Wait for everything submitted (used at shutdown and by tests)."""
    out, end = [], time.monotonic() + timeout
    while self.busy and time.monotonic() < end:
      out += self.poll(timeout=0.5)
    return out + self.poll()

  def close(self) -> None:
    """Idle workers see the end of their requests and exit (reaping their zygotes); busy
    ones are killed, and their zygotes then kill the candidate's process group."""
    for worker in self._workers:
      if worker.job is None:
        worker.proc.stdin.close()
      else:
        worker.proc.kill()
    for worker in self._workers:
      try:
        worker.proc.wait(timeout=5)
      except subprocess.TimeoutExpired:
        worker.kill()
    self._workers, self._queue = [], []

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def run_candidate(
  source: str,
  dataset,
  timeout: float = 20.0,
  memory_mb: int = 1024,
  check: bool = True,
  empties: int | None = None,
) -> Outcome:
  """Evaluate one candidate synchronously (a pool of one)."""
  with SandboxPool(dataset, workers=1, timeout=timeout, memory_mb=memory_mb) as pool:
    pool.submit(source, check=check, empties=empties)
    return pool.drain(timeout + 60)[0]
