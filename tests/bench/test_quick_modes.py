"""Every registered benchmark's quick mode runs (second tier: the peers are heavy), and
`--profile` writes both traces and the table. Nothing here is timed against a target."""

import json

import pytest

from jdl.registry import BENCHMARKS
from tests.conftest import run_jdl

pytestmark = pytest.mark.integration


@pytest.mark.parametrize('name', sorted(BENCHMARKS))
def test_quick_mode_runs(name, tmp_path):
  proc = run_jdl(
    'bench', name, '--quick', '--json', tmp_path / 'out.json', timeout=3600, check=True
  )
  result = json.loads((tmp_path / 'out.json').read_text())['benchmarks'][name]
  assert result['status'] == 0, proc.stdout[-2000:]
  assert result['tables'] or result['targets'], f'{name} printed no result'


def test_profile_writes_traces_and_the_op_class_table(tmp_path):
  run_jdl('bench', 'lstm', '--quick', '--profile', tmp_path, timeout=3600, check=True)
  summary = json.loads((tmp_path / 'summary.json').read_text())
  assert list(tmp_path.glob('jax/plugins/profile/*/*.xplane.pb'))
  assert (tmp_path / 'torch_trace.json').stat().st_size > 1000
  jdl, peer = summary['jdl']['rows'], summary['peer']['rows']
  # the products of the LSTM step, 59.7 GFLOP by the benchmark's own count, are all found: as
  # dots (the scan) or inside oneDNN's calls (lstm_kernel 'auto' on this CPU)
  lstm = next(v for k, v in jdl.items() if k.startswith('LSTM'))
  assert jdl['large products (dense dot)']['gflop'] + lstm['gflop'] > 50
  for rows in (jdl, peer):
    assert sum(r['share'] for r in rows.values()) == pytest.approx(1.0, abs=0.02)
  assert '| **step (wall)** |' in (tmp_path / 'summary.md').read_text()
