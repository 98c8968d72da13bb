"""Hostile candidates are rejected or killed with a recorded reason; nothing leaks."""

import pathlib
import textwrap

import pytest

from jdl.binpack import data, heuristics, sandbox

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
  assert not target.exists() and list(tmp_path.iterdir()) == []


def test_file_read_is_rejected(pool):
  outcome = run(pool, program("data = open('/etc/passwd').read()\nreturn bins\n"))
  assert outcome.status == 'rejected'
  outcome = run(pool, program("return np.loadtxt('/etc/hostname') + bins\n"))
  assert outcome.status == 'rejected' and 'loadtxt' in outcome.reason


@pytest.mark.parametrize('module', ['os', 'subprocess', 'socket'])
def test_imports_other_than_numpy_and_math_are_rejected(pool, module):
  outcome = run(pool, program(f'{module}.getpid()\nreturn bins\n', f'import {module}\n'))
  assert outcome.status == 'rejected' and module in outcome.reason
  # and at run time, the import hook refuses them as well
  outcome = run(pool, program('return bins\n', f'import {module}\n'), check=False)
  assert outcome.status == 'error' and 'not allowed' in outcome.reason


def test_socket_is_blocked_at_run_time(pool):
  # Even if socket could be imported, its constructors are disabled in the child.
  with sandbox.SandboxPool(TRAIN, workers=1, timeout=3, extra_modules=('socket',)) as p:
    p.submit(
      program("socket.create_connection(('127.0.0.1', 9))\nreturn bins\n", 'import socket\n'),
      check=False,
    )
    (outcome,) = p.drain(60)
  assert outcome.status == 'error' and 'disabled in the sandbox' in outcome.reason


@pytest.mark.parametrize(
  'body',
  [
    "return getattr(np, 'sa' + 've')\n",
    'return bins.__class__\n',
    "return eval('bins')\n",
    "exec('x = 1')\nreturn bins\n",
    "return __import__('os')\n",
    'return np.ctypeslib\n',
  ],
)
def test_escape_hatches_are_rejected(body):
  with pytest.raises(sandbox.Rejected):
    sandbox.check_source(program(body))


def test_raising_candidate_is_recorded(pool):
  outcome = run(pool, program("raise ValueError('nope')\n"))
  assert outcome.status == 'error' and 'ValueError: nope' in outcome.reason


def test_wrong_shape_is_recorded(pool):
  outcome = run(pool, program('return bins[:1]\n'))
  assert outcome.status == 'error' and 'shape' in outcome.reason
  outcome = run(pool, program('return 1.0\n'))
  assert outcome.status == 'error' and 'not an ndarray' in outcome.reason


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


def test_nothing_outside_changed(tmp_path):
  # A candidate that tries every side effect at once, with the static check off.
  marker = pathlib.Path(tmp_path) / 'marker'
  src = program(f"""
        try:
            open({str(marker)!r}, 'w')
        except Exception:
            pass
        return bins
        """)
  outcome = sandbox.run_candidate(src, TRAIN, timeout=5, check=False)
  assert outcome.ok  # it ran, but could not create the file
  assert not marker.exists()
