"""The sandbox: the static check, the driver's packing, the confinement, the pool."""

import json
import subprocess
import sys
import textwrap

import pytest

from jdl.binpack import data, evaluate, heuristics, sandbox

TRAIN = data.uniform_training(lengths=(100,))


def program(body: str, imports: str = '') -> str:
  return imports + 'def priority(item, bins):\n' + textwrap.indent(textwrap.dedent(body), '    ')


@pytest.fixture(scope='module')
def pool():
  with sandbox.SandboxPool(TRAIN, workers=2, timeout=3, memory_mb=512) as p:
    yield p


def run(pool, source, **kw):
  pool.submit(source, **kw)
  (outcome,) = pool.drain(60)
  return outcome


def test_good_program_is_scored(pool):
  outcome = run(pool, heuristics.BEST_FIT)
  assert outcome.ok and len(outcome.bins) == 1 and outcome.bins[0] > 0


@pytest.mark.parametrize('empties', [None, 1, 2])
def test_driver_packs_like_the_reference_evaluator(empties):
  # The driver runs the instances in lockstep, one batch of decisions per exchange; the
  # bins it counts are those of the NumPy reference run in this process (trusted code).
  train = data.uniform_training(lengths=(30, 120, 250))
  with sandbox.SandboxPool(train, workers=2, timeout=20) as p:
    for name, source in heuristics.SOURCES.items():
      if empties is not None and empties < heuristics.EMPTIES[name]:
        continue
      p.submit(source, tag=name, empties=empties)
    outcomes = p.drain(120)
  assert outcomes
  for outcome in outcomes:
    priority = evaluate.compile_priority(heuristics.SOURCES[outcome.tag])
    expected = evaluate.evaluate(train, priority, empties=empties)
    assert outcome.ok and outcome.bins == list(expected.bins.values()), outcome.tag


def test_truncated_pool_is_exact_for_the_found_program():
  # The stored program is elementwise: one untouched bin shown gives the full pool's choice.
  source = data.FOUND_PROGRAM.read_text()
  assert sandbox.is_elementwise(source)
  full = sandbox.run_candidate(source, data.load('OR1'), timeout=60)
  short = sandbox.run_candidate(source, data.load('OR1'), timeout=60, empties=1)
  assert full.ok and short.ok and full.bins == short.bins


def test_infinite_loop_is_killed(pool):
  outcome = run(pool, program('while True:\n    pass\n'))
  assert outcome.status == 'timeout' and 'killed' in outcome.reason
  assert run(pool, heuristics.FIRST_FIT).ok  # the pool carries on


def test_huge_allocation_hits_the_memory_limit(pool):
  outcome = run(pool, program('x = np.ones(10 * 2**30 // 8)\nreturn bins\n'))
  assert outcome.status == 'memory', outcome


def test_file_write_is_rejected_and_nothing_is_written(pool, tmp_path):
  target = tmp_path / 'pwned.txt'
  outcome = run(pool, program(f"open({str(target)!r}, 'w').write('x')\nreturn bins\n"))
  assert outcome.status == 'rejected' and 'open' in outcome.reason
  # Past the static check, the restricted builtins have no `open` at all.
  outcome = run(pool, program(f"open({str(target)!r}, 'w').write('x')\nreturn bins\n"), check=False)
  assert outcome.status == 'error' and 'open' in outcome.reason
  # numpy's own file writers are refused statically too.
  outcome = run(pool, program(f'np.save({str(target)!r}, bins)\nreturn bins\n'))
  assert outcome.status == 'rejected'
  # and at run time the seccomp filter refuses the open
  outcome = run(pool, program(f'np.save({str(target)!r}, bins)\nreturn bins\n'), check=False)
  assert outcome.status == 'error' and 'PermissionError' in outcome.reason
  assert not target.exists() and list(tmp_path.iterdir()) == []


def test_file_read_is_rejected(pool):
  outcome = run(pool, program("data = open('/etc/passwd').read()\nreturn bins\n"))
  assert outcome.status == 'rejected'
  outcome = run(pool, program("return np.loadtxt('/etc/hostname') + bins\n"))
  assert outcome.status == 'rejected' and 'loadtxt' in outcome.reason
  outcome = run(pool, program("return np.loadtxt('/etc/hostname') + bins\n"), check=False)
  assert outcome.status == 'error' and 'PermissionError' in outcome.reason


@pytest.mark.parametrize('module', ['os', 'subprocess', 'socket'])
def test_imports_other_than_numpy_and_math_are_rejected(pool, module):
  outcome = run(pool, program(f'{module}.getpid()\nreturn bins\n', f'import {module}\n'))
  assert outcome.status == 'rejected' and module in outcome.reason
  # and at run time, the import hook refuses them as well
  outcome = run(pool, program('return bins\n', f'import {module}\n'), check=False)
  assert outcome.status == 'error' and 'not allowed' in outcome.reason


@pytest.mark.parametrize(
  'body',
  [
    "return getattr(np, 'sa' + 've')\n",
    'return bins.__class__\n',
    "return eval('bins')\n",
    "exec('x = 1')\nreturn bins\n",
    "return __import__('os')\n",
    'return np.ctypeslib\n',
    # attribute traversal inside a format string
    "return '{0.f_back}'.format(bins)\n",
    "return '{0[0]}'.format_map(bins)\n",
    "s = '{x.gi_frame}'\nreturn bins\n",
    # frame, traceback and generator internals
    'g = (x for x in bins)\nreturn g.gi_frame.f_back\n',
    'try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    return e.with_traceback(None).tb_frame\n',
    # match patterns on private attributes or frame internals
    'match bins:\n    case np.ndarray(_data=d):\n        return d\n',
    'match bins:\n    case int(f_globals=g):\n        return g\n',
    # object arrays over raw memory
    'return np.frombuffer(bins, dtype=float)\n',
    "return np.zeros(1, dtype='O')\n",
    'return np.ndarray((2,), buffer=bins)\n',
    'return np.ndarray((2,))\n',
    'return bins.view(float)\n',
  ],
)
def test_escape_hatches_are_rejected(body):
  with pytest.raises(sandbox.Rejected):
    sandbox.check_source(program(body))


def test_published_heuristics_pass_the_static_check():
  # The notebook's programs carry type annotations (np.ndarray) and a nested function.
  for source in heuristics.SOURCES.values():
    sandbox.check_source(source)
  sandbox.check_source(data.FOUND_PROGRAM.read_text())


def test_raising_candidate_is_recorded(pool):
  outcome = run(pool, program("raise ValueError('nope')\n"))
  assert outcome.status == 'error' and 'ValueError: nope' in outcome.reason


def test_wrong_shape_is_recorded(pool):
  outcome = run(pool, program('return bins[:1]\n'))
  assert outcome.status == 'error' and 'shape' in outcome.reason
  outcome = run(pool, program('return 1.0\n'))
  assert outcome.status == 'error' and 'not an ndarray' in outcome.reason


@pytest.mark.parametrize('value', ['np.nan', 'np.inf', '-np.inf'])
def test_non_finite_scores_are_an_error(pool, value):
  outcome = run(pool, program(f'return np.where(bins == bins.max(), {value}, 0.0)\n'))
  assert outcome.status == 'error' and 'non-finite' in outcome.reason


def test_syntax_error_is_rejected(pool):
  outcome = run(pool, 'def priority(item, bins):\n    return (\n')
  assert outcome.status == 'rejected' and 'syntax' in outcome.reason


def test_pool_runs_candidates_concurrently_and_keeps_order_free():
  good = [heuristics.BEST_FIT, heuristics.FIRST_FIT]
  with sandbox.SandboxPool(TRAIN, workers=2, timeout=5) as p:
    p.submit(program('while True:\n    pass\n'), tag='loop')
    for i, source in enumerate(good * 3):
      p.submit(source, tag=i)
    outcomes = p.drain(60)
  by_tag = {o.tag: o for o in outcomes}
  assert len(outcomes) == 7 and by_tag['loop'].status == 'timeout'
  assert all(by_tag[i].ok for i in range(6))
  # the good ones did not wait for the slow one: they finished before its deadline
  assert outcomes[-1].tag == 'loop'


def test_is_elementwise():
  assert sandbox.is_elementwise(heuristics.BEST_FIT)
  assert sandbox.is_elementwise(heuristics.FIRST_FIT)
  assert not sandbox.is_elementwise(heuristics.FUNSEARCH_OR)
  assert not sandbox.is_elementwise(heuristics.FUNSEARCH_WEIBULL)
  assert not sandbox.is_elementwise(program('return bins - np.mean(bins)\n'))


def test_workers_start_with_only_the_allowed_environment(pool, monkeypatch):
  monkeypatch.setenv('JDL_BINPACK_TEST_TOKEN', 'not-for-candidates')
  with sandbox.SandboxPool(TRAIN, workers=1) as p:
    (worker,) = p._workers
    with open(f'/proc/{worker.proc.pid}/environ', 'rb') as f:
      variables = dict(v.split(b'=', 1) for v in f.read().split(b'\0') if v)
  assert variables == {k.encode(): v.encode() for k, v in sandbox.ALLOWED_ENV.items()}


CONFINED = """
import errno, json, os, socket, sys, threading
from jdl.binpack import sandbox
sandbox.confine(256 * 2**20, 5)
def attempt(fn):
  try:
    fn()
  except OSError as e:
    return errno.errorcode[e.errno]
  return 'allowed'
worked = []
thread = threading.Thread(target=lambda: worked.append(1))
results = {
  'open': attempt(lambda: open('/etc/hostname')),
  'fork': attempt(os.fork),
  'socket': attempt(socket.socket),
  'kill parent': attempt(lambda: os.kill(os.getppid(), 0)),
  'thread': attempt(thread.start),
}
thread.join()
results['thread ran'] = bool(worked)
os.write(1, (json.dumps(results) + '\\n').encode())
os.read(0, 1)  # wait while the test reads /proc/<pid>/status
"""


def test_confine_denies_processes_files_sockets_and_signals():
  proc = subprocess.Popen(
    [sys.executable, '-c', CONFINED], stdin=subprocess.PIPE, stdout=subprocess.PIPE
  )
  try:
    results = json.loads(proc.stdout.readline())
    with open(f'/proc/{proc.pid}/status') as f:
      status = dict(line.split(':', 1) for line in f if ':' in line)
  finally:
    proc.stdin.close()
    proc.wait(10)
  assert results == {
    'open': 'EPERM',
    'fork': 'EPERM',
    'socket': 'EPERM',
    'kill parent': 'EPERM',
    'thread': 'allowed',  # clone with CLONE_THREAD (glibc's clone3 got ENOSYS first)
    'thread ran': True,
  }
  assert status['NoNewPrivs'].strip() == '1'
  assert status['Seccomp'].strip() == '2'  # a filter is installed


def test_scribbling_on_shared_memory_changes_nothing_but_its_own_scores(pool):
  # A candidate that finds the driver's shared memory (through the frames) and zeroes
  # the items and bins it was sent: the driver keeps its own state, so the packing, and
  # the bins counted, are those of the scores it returned (Best Fit's here).
  source = program("""
        try:
            raise ValueError
        except ValueError as e:
            frame = e.__traceback__.tb_frame.f_back
        frame.f_locals['words'][:] = 0
        return -(bins - item)
        """)
  outcome = run(pool, source, check=False)
  best_fit = evaluate.evaluate(TRAIN, evaluate.compile_priority(heuristics.BEST_FIT))
  assert outcome.ok and outcome.bins == list(best_fit.bins.values())
