"""Run untrusted candidate priority functions: static checks, then a locked-down child.

Layers, each enough on its own for the cases the tests throw at it:

1. `check_source`: the AST may only import numpy and math, define `priority`, and must
   not name dangerous builtins (open, exec, eval, __import__, getattr, ...), dunder or
   private attributes, or NumPy's file / ctypes / submodule escape hatches.
2. The child process (forked per candidate from a worker process that imported numpy):
   RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_FSIZE=0 (no file bytes written), socket
   constructors and file openers replaced by functions that raise, std streams
   swallowed, and the candidate exec'd with a whitelist of builtins whose
   `__import__` only admits numpy and math.
3. The worker: a wall-clock deadline after which the child is killed, and a reason
   recorded for every failure (rejected / timeout / memory / error / crashed).

`SandboxPool` is the process pool: `workers` long-lived worker processes (started with
subprocess, so multiprocessing never re-imports the caller's __main__ in them), each
running one candidate at a time; the search submits and polls asynchronously and never
waits on one slow candidate.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import io
import math
import os
import pathlib
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import time

import numpy as np

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
}
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
        if alias.name == '*' or alias.name.startswith('_') or alias.name in FORBIDDEN_ATTRIBUTES:
          raise Rejected(f'import of {node.module}.{alias.name} not allowed')
    elif isinstance(node, ast.Name):
      if node.id in FORBIDDEN_NAMES or node.id.startswith('__'):
        raise Rejected(f'name {node.id!r} not allowed')
    elif isinstance(node, ast.Attribute):
      if node.attr.startswith('_') or node.attr in FORBIDDEN_ATTRIBUTES:
        raise Rejected(f'attribute {node.attr!r} not allowed')
    elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
      args = node.args
      for a in args.args + args.kwonlyargs + args.posonlyargs:
        if a.arg.startswith('__'):
          raise Rejected(f'argument {a.arg!r} not allowed')
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
      if '__' in node.value and not _is_docstring(node, tree):
        raise Rejected("string constants with '__' not allowed")
  return tree


def _is_docstring(node, tree) -> bool:
  for scope in ast.walk(tree):
    if isinstance(scope, (ast.Module, ast.FunctionDef)) and scope.body:
      first = scope.body[0]
      if isinstance(first, ast.Expr) and first.value is node:
        return True
  return False


# --- elementwise programs (can be run by the JAX evaluator) -------------------------

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
  evaluators' truncated pool is exact for it, and it runs unchanged under jnp. We
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


# --- the child process ---------------------------------------------------------------


def _refuse(*args, **kwargs):
  raise PermissionError('disabled in the sandbox')


def _lock_down(memory_bytes: int, cpu_seconds: int) -> None:
  import socket

  vm = _virtual_memory_bytes()
  limit = vm + memory_bytes  # headroom above what the interpreter + numpy already map
  resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
  resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
  for attr in (
    'socket',
    'create_connection',
    'create_server',
    'socketpair',
    'fromfd',
    'getaddrinfo',
    'gethostbyname',
  ):
    if hasattr(socket, attr):
      setattr(socket, attr, _refuse)
  builtins.open = _refuse
  io.open = _refuse
  for attr in (
    'open',
    'system',
    'popen',
    'remove',
    'unlink',
    'rename',
    'mkdir',
    'rmdir',
    'fork',
    'execv',
    'execve',
    'kill',
    'chdir',
  ):
    if hasattr(os, attr):
      setattr(os, attr, _refuse)


def _virtual_memory_bytes() -> int:
  try:
    with builtins.open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmSize:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


def _restricted_import(extra_modules):
  allowed = set(ALLOWED_MODULES) | set(extra_modules)
  real_import = builtins.__import__

  def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name.split('.')[0] not in allowed:
      raise ImportError(f'import of {name!r} is not allowed in the sandbox')
    return real_import(name, globals, locals, fromlist, level)

  return guarded


def compile_restricted(source: str, extra_modules=()):
  """Exec `source` with whitelisted builtins; returns its `priority` function."""
  safe = {k: getattr(builtins, k) for k in SAFE_BUILTINS if hasattr(builtins, k)}
  safe['__import__'] = _restricted_import(extra_modules)
  namespace = {'__builtins__': safe, 'np': np, 'numpy': np, 'math': math, '__name__': 'candidate'}
  exec(compile(source, '<candidate>', 'exec'), namespace)  # noqa: S102 - sandboxed
  return namespace['priority']


def _run_in_child(request: dict) -> tuple:
  """In the forked child: lock down, evaluate, return (status, bins, reason)."""
  from jdl.binpack import evaluate

  try:
    _lock_down(request['memory_bytes'], request['cpu_seconds'])
    priority = compile_restricted(request['source'], request['extra_modules'])
    bins = [
      evaluate.pack(items, request['capacity'], priority, validate=True)
      for items in request['instances']
    ]
    return ('ok', bins, '')
  except MemoryError:
    return ('memory', None, 'MemoryError: over the memory limit')
  except BaseException as e:  # anything the candidate raises is its failure
    return ('error', None, f'{type(e).__name__}: {str(e)[:300]}')


def _evaluate_forked(request: dict) -> tuple:
  """In a worker: fork one child per candidate, enforce the wall-clock deadline."""
  read_fd, write_fd = os.pipe()
  start = time.monotonic()
  pid = os.fork()
  if pid == 0:  # the child: never returns, never runs the worker's cleanup
    code = 0
    try:
      os.close(read_fd)
      devnull = os.open(os.devnull, os.O_RDWR)
      for fd in (0, 1, 2):  # keep off the worker's request/answer pipes
        os.dup2(devnull, fd)
      sys.stdout = sys.stderr = io.StringIO()
      answer = os.fdopen(write_fd, 'wb')  # before the lock-down disables io.open
      answer.write(pickle.dumps(_run_in_child(request)))
      answer.close()
    except BaseException:
      code = 1
    os._exit(code)
  os.close(write_fd)
  chunks, deadline, timed_out = [], start + request['timeout'], False
  with os.fdopen(read_fd, 'rb') as f:
    while True:
      left = deadline - time.monotonic()
      if left <= 0 or not select.select([f], [], [], left)[0]:
        timed_out = True
        break
      chunk = os.read(f.fileno(), 1 << 16)
      if not chunk:
        break
      chunks.append(chunk)
  if timed_out:
    os.kill(pid, signal.SIGKILL)
  _, status = os.waitpid(pid, 0)
  seconds = time.monotonic() - start
  if timed_out:
    return ('timeout', None, f'killed after {request["timeout"]:.0f} s', seconds)
  if chunks:
    try:
      return (*pickle.loads(b''.join(chunks)), seconds)
    except Exception:  # noqa: BLE001 - a truncated answer means the child died
      pass
  if os.WIFSIGNALED(status):
    sig = signal.Signals(os.WTERMSIG(status))
    kind = 'timeout' if sig in (signal.SIGXCPU, signal.SIGKILL) else 'crashed'
    return (kind, None, f'child killed by {sig.name}', seconds)
  return ('crashed', None, f'child exited with {os.WEXITSTATUS(status)}', seconds)


def _send(stream, obj) -> None:
  data = pickle.dumps(obj)
  stream.write(struct.pack('<Q', len(data)) + data)
  stream.flush()


def _receive(stream):
  header = stream.read(8)
  if len(header) < 8:
    return None
  (size,) = struct.unpack('<Q', header)
  return pickle.loads(stream.read(size))


def serve() -> None:
  """Worker main loop (`python -c 'from jdl.binpack.sandbox import serve; serve()'`).

  A worker is a small single-threaded process that imported numpy once; forking it
  per candidate costs milliseconds and never exposes the search process itself.
  """
  stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
  sys.stdout = sys.stderr  # stray prints must not corrupt the answer stream
  while (request := _receive(stdin)) is not None:
    _send(stdout, _evaluate_forked(request))


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
  def __init__(self):
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env = dict(
      os.environ,
      PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
      ),
    )
    self.proc = subprocess.Popen(
      [sys.executable, '-c', 'from jdl.binpack.sandbox import serve; serve()'],
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      env=env,
      cwd=root,
    )
    self.job = None  # (tag, source, started_at) while busy

  def kill(self) -> None:
    self.proc.kill()
    self.proc.wait()


class SandboxPool:
  """Evaluates candidates on `dataset` with `workers` worker processes, asynchronously.

  submit() queues a candidate (static check first: a rejected one becomes an outcome
  at once); poll() returns the outcomes finished so far. Each worker forks a fresh
  locked-down child per candidate and kills it at the deadline; if a worker itself
  stops answering (it should not), it is killed and replaced.
  """

  def __init__(
    self, dataset, workers: int = 2, timeout: float = 20.0, memory_mb: int = 1024, extra_modules=()
  ):
    self.instances = [np.asarray(v) for v in dataset.instances.values()]
    self.capacity = int(dataset.capacity)
    self.timeout = float(timeout)
    self.memory_bytes = memory_mb * 2**20
    self.extra_modules = tuple(extra_modules)
    self._workers = [_Worker() for _ in range(workers)]
    self._queue = []  # (tag, source) waiting for a free worker
    self._done = []

  def submit(self, source: str, tag=None, check: bool = True) -> None:
    if check:
      try:
        check_source(source)
      except Rejected as e:
        self._done.append(Outcome(tag, source, 'rejected', reason=str(e)))
        return
    self._queue.append((tag, source))
    self._dispatch()

  @property
  def busy(self) -> int:
    return len(self._queue) + sum(w.job is not None for w in self._workers)

  def _dispatch(self) -> None:
    for worker in self._workers:
      if worker.job is None and self._queue:
        tag, source = self._queue.pop(0)
        _send(
          worker.proc.stdin,
          dict(
            source=source,
            instances=self.instances,
            capacity=self.capacity,
            memory_bytes=self.memory_bytes,
            timeout=self.timeout,
            cpu_seconds=max(1, int(math.ceil(self.timeout))) + 1,
            extra_modules=self.extra_modules,
          ),
        )
        worker.job = (tag, source, time.monotonic())

  def poll(self, timeout: float = 0.0) -> list[Outcome]:
    """Outcomes finished so far (waits up to `timeout` s for at least one)."""
    busy = {w.proc.stdout: w for w in self._workers if w.job is not None}
    if busy and not self._done:
      ready = select.select(list(busy), [], [], timeout)[0]
    else:
      ready = select.select(list(busy), [], [], 0)[0] if busy else []
    for stream in ready:
      worker = busy[stream]
      tag, source, started = worker.job
      answer = _receive(stream)
      worker.job = None
      if answer is None:  # the worker died: record it, replace the worker
        self._done.append(Outcome(tag, source, 'crashed', reason='worker died'))
        self._replace(worker)
        continue
      status, bins, reason, seconds = answer
      self._done.append(Outcome(tag, source, status, bins, reason, seconds))
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
    self._workers[self._workers.index(worker)] = _Worker()

  def drain(self, timeout: float = 120.0) -> list[Outcome]:
    """Wait for everything submitted (used at shutdown and by tests)."""
    out, end = [], time.monotonic() + timeout
    while self.busy and time.monotonic() < end:
      out += self.poll(timeout=0.5)
    return out + self.poll()

  def close(self) -> None:
    for worker in self._workers:
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
  extra_modules=(),
) -> Outcome:
  """Evaluate one candidate synchronously (a pool of one)."""
  with SandboxPool(
    dataset, workers=1, timeout=timeout, memory_mb=memory_mb, extra_modules=extra_modules
  ) as pool:
    pool.submit(source, check=check)
    return pool.drain(timeout + 60)[0]
