"""Hostile candidates, run with the static check on and off: each ends rejected, killed or
in error with a recorded reason, and none reads the environment, touches a file, starts
a process or scores better than the packing it made.

With the check off, the candidates reach the real builtins (and so `os`, `subprocess`,
`socket`, `ctypes`, `sys`: the worker imported them) through an exception's traceback:
what is left between them and the machine is the confinement of their process.
"""

import os
import pathlib
import pickle
import secrets
import subprocess
import textwrap
import time

import pytest

from jdl.binpack import data, evaluate, heuristics, sandbox

TRAIN = data.uniform_training(lengths=(40, 60))
SECRET_NAME = 'JDL_BINPACK_HOSTILE_SECRET'
SECRET = secrets.token_hex(8)
# A command line no other process has: a process started by a candidate would show it.
SLEEP = '86399.123'

# The real builtins, from the frame of the code that called priority.
REACH = """\
try:
    raise ValueError
except ValueError as e:
    frame = e.__traceback__.tb_frame
real = frame.f_back.f_globals['__builtins__']
real = real if isinstance(real, dict) else real.__dict__
imp, next, repr = real['__import__'], real['next'], real['repr']
os = imp('os')
"""


class _Touch:
  """Unpickling this runs a shell command that creates `path`."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (subprocess.call, (['/bin/sh', '-c', f'touch {self.path}'],))


def candidates(marker: pathlib.Path) -> dict:
  """name -> source; `marker` must never exist afterwards."""
  payload = pickle.dumps(_Touch(marker))
  bodies = {
    'env var in the scores': f'return bins * 0 + len(os.environ[{SECRET_NAME!r}])\n',
    'env var in the reason': 'raise ValueError(repr(dict(os.environ)))\n',
    'environ file': "real['open']('/proc/self/environ').read()\nreturn bins\n",
    'read a file': "real['open']('/etc/hostname').read()\nreturn bins\n",
    'write a file': f"real['open']({str(marker)!r}, 'w').write('x')\nreturn bins\n",
    'numpy writes a file': f'np.save({str(marker)!r}, bins)\nreturn bins\n',
    'os.system': f"assert os.system('touch {marker}') == 0\nreturn bins\n",
    'subprocess': f"imp('subprocess').run(['touch', {str(marker)!r}])\nreturn bins\n",
    'os.fork': 'os.fork()\nreturn bins\n',
    'ctypes system': f"assert imp('ctypes').CDLL(None).system(b'touch {marker}') == 0\n",
    'ctypes fork': "assert imp('ctypes').CDLL(None).fork() >= 0\n",
    'process outliving it': (
      f"imp('subprocess').Popen(['sleep', {SLEEP!r}], start_new_session=True)\nreturn bins\n"
    ),
    'socket': "imp('socket').socket().connect(('127.0.0.1', 9))\nreturn bins\n",
    'signal the parent': "os.kill(os.getppid(), imp('signal').SIGKILL)\nreturn bins\n",
    'frames: sys._getframe': (
      "f = imp('sys')._getframe()\n"
      "while 'packings' not in f.f_locals:\n"
      '    f = f.f_back\n'
      "f.f_locals['packings'][0].used_dead = -10**6\n"
      'return bins\n'
    ),
    'frames: traceback': (
      'f = frame\n'
      "while 'caps' not in f.f_locals:\n"
      '    f = f.f_back\n'
      "f.f_locals['caps'][:] = 0\n"
      'return bins\n'
    ),
    'frames: generator': (
      'held = []\n'
      'gen = (held[0].gi_frame.f_back for _ in [0])\n'
      'held.append(gen)\n'
      'f = next(gen)\n'
      "while 'packings' not in f.f_globals:\n"
      '    f = f.f_back\n'
      'return bins\n'
    ),
    'format string traversal': (
      "text = '{0.f_back.f_globals[os].environ}'.format(frame)\n"
      f'assert {SECRET_NAME!r} in text\n'
      'return bins\n'
    ),
    'pickle on every channel': (
      f'payload = {payload!r}\n'
      'for fd in range(64):\n'
      '    try:\n'
      '        os.write(fd, payload)\n'
      '    except Exception:\n'
      '        pass\n'
      'return -(bins - item)\n'
    ),
    'forged answer': (
      "reply = frame.f_back.f_locals['reply']\n"
      "os.write(reply, imp('struct').pack('<4q', 0, 0, 0, 0))\n"
      'return -(bins - item)\n'
    ),
    'sleep forever': "imp('time').sleep(1000)\n",
  }
  sources = {name: program(REACH + body) for name, body in bodies.items()}
  # These need nothing but numpy: the static check lets them through.
  plain = {
    'huge memory': 'x = np.ones(10 * 2**30 // 8)\nreturn bins\n',
    'infinite loop': 'while True:\n    pass\n',
    'nan scores': 'return bins * np.nan\n',
    'inf scores': 'return np.where(bins > item, np.inf, 0.0)\n',
    'wrong shape': 'return bins[:1]\n',
    'object scores': 'return np.array([None] * len(bins))\n',
  }
  sources.update({name: program(body) for name, body in plain.items()})
  return sources


def program(body: str) -> str:
  return 'def priority(item, bins):\n' + textwrap.indent(body, '    ')


@pytest.fixture(scope='module')
def pool():
  os.environ[SECRET_NAME] = SECRET  # in the search process when the pool starts
  try:
    with sandbox.SandboxPool(TRAIN, workers=2, timeout=2, memory_mb=256) as p:
      yield p
  finally:
    del os.environ[SECRET_NAME]


def processes_with(token: str) -> list[str]:
  found = []
  for entry in pathlib.Path('/proc').iterdir():
    try:
      cmdline = (entry / 'cmdline').read_bytes()
    except OSError:  # not a process, or it ended while we looked
      continue
    if token.encode() in cmdline:
      found.append(entry.name)
  return found


@pytest.mark.parametrize('check', [True, False], ids=['static check on', 'static check off'])
def test_hostile_candidates_fail_and_leave_nothing(pool, tmp_path, check):
  marker = tmp_path / 'pwned'
  sources = candidates(marker)
  for name, source in sources.items():
    pool.submit(source, tag=name, check=check)
  outcomes = {o.tag: o for o in pool.drain(120)}
  assert sorted(outcomes) == sorted(sources)
  for name, outcome in outcomes.items():
    assert outcome.status in ('rejected', 'timeout', 'memory', 'error', 'crashed'), (name, outcome)
    assert outcome.reason and outcome.bins is None, name
    assert SECRET not in outcome.reason, name
  time.sleep(0.2)  # a process that escaped would have had time to act
  assert list(tmp_path.iterdir()) == []  # no file written, no command run
  assert processes_with(SLEEP) == []
  if check:  # everything that reaches for the runtime's internals is refused up front
    assert {n for n, o in outcomes.items() if o.status != 'rejected'} == {
      'huge memory',
      'infinite loop',
      'nan scores',
      'inf scores',
      'wrong shape',
      'object scores',
    }
  else:  # the confinement refused what the static check would have
    reasons = {n: o.reason for n, o in outcomes.items()}
    for name in ('environ file', 'read a file', 'write a file', 'numpy writes a file'):
      assert 'PermissionError' in reasons[name], name
    for name in ('subprocess', 'os.fork', 'process outliving it', 'socket', 'signal the parent'):
      assert 'PermissionError' in reasons[name], name
    assert 'KeyError' in reasons['env var in the scores']
    assert 'OMP_NUM_THREADS' in reasons['env var in the reason']  # it read the environ
    assert SECRET_NAME not in reasons['env var in the reason']
    assert 'broke the protocol' in reasons['pickle on every channel']
    assert 'broke the protocol' in reasons['forged answer']
    assert outcomes['sleep forever'].status == 'timeout'
  assert {outcomes[n].status for n in ('huge memory', 'infinite loop')} == {'memory', 'timeout'}
  # the pool is intact: an honest program still gets its honest count
  pool.submit(heuristics.BEST_FIT)
  (honest,) = pool.drain(60)
  best_fit = evaluate.evaluate(TRAIN, evaluate.compile_priority(heuristics.BEST_FIT))
  assert honest.ok and honest.bins == list(best_fit.bins.values())
