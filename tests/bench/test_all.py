"""`jdl bench all --json` and the bench dispatch (fast: toy benchmarks, no timing)."""

import json
import os
import pathlib

import pytest

from jdl import cli
from jdl.bench import all as bench_all
from jdl.bench import common

HERE = pathlib.Path(__file__).parent
FAKES = {
  'comparison': ('fake_benches', 'comparison', ''),
  'own': ('fake_benches', 'own_table', ''),
  'broken': ('fake_benches', 'broken', ''),
}


def test_print_comparison_returns_the_ratio_and_records_it(monkeypatch, capsys):
  monkeypatch.setattr(common, 'RESULTS', [])
  ratio = common.print_comparison(
    'peer',
    [2.0, 1.0, 3.0],
    [4.0, 4.0],
    units_per_step=8,
    unit='tokens',
    flops_per_step=10.0,
    peak=20.0,
    flops_label='MFU',
    stretch=1.3,
  )
  assert ratio == pytest.approx(2.0)  # medians 2.0 s against 4.0 s
  (rec,) = common.RESULTS
  assert rec['ratio'] == pytest.approx(2.0)
  assert rec['jdl_units_per_second'] == pytest.approx(4.0)
  assert rec['peer_units_per_second'] == pytest.approx(2.0)
  assert rec['jdl_mfu'] == pytest.approx(10.0 / 2.0 / 20.0)
  assert rec['peer_mfu'] == pytest.approx(10.0 / 4.0 / 20.0)
  assert len(rec['load']) == 3 and rec['date'] == common.today()
  assert '2.00x (target >= 1.0x: met' in capsys.readouterr().out


def test_parse_output_reads_ratio_lines_tables_and_peak_shares():
  text = (
    'round 1\n| implementation | tokens/s |\n|---|---|\n| jdl | 10 |\n'
    'jdl / PyTorch tokens/s: 0.78x (target >= 1.0x: NOT met; stretch 1.3x: not met)\n'
    'jdl achieves 40.0 GFLOP/s (47.5% of peak)\n'
  )
  out = bench_all.parse_output(text)
  assert out['ratios'] == [0.78]
  assert out['mfu'] == [pytest.approx(0.475)]
  assert out['tables'][0] == '| implementation | tokens/s |' and len(out['tables']) == 3
  assert out['targets'] == [
    'jdl / PyTorch tokens/s: 0.78x (target >= 1.0x: NOT met; stretch 1.3x: not met)'
  ]
  assert bench_all.parse_output('| mlp | 1.0 | 3.5 | 3.5x |\n')['ratios'] == [3.5]


def test_run_all_writes_one_json_with_every_benchmark(tmp_path, capsys):
  path = tmp_path / 'out' / 'bench.json'
  env = {'PYTHONPATH': os.pathsep.join([str(HERE), os.environ.get('PYTHONPATH', '')])}
  report = bench_all.run_all(FAKES, str(path), quick=True, env=env)
  saved = json.loads(path.read_text())
  assert saved == json.loads(json.dumps(report))
  assert saved['machine'] == common.machine() and saved['quick'] is True
  assert 'jax' in saved['versions'] and 'python' in saved['versions']
  assert len(saved['load_before']) == 3 and len(saved['load_after']) == 3
  cmp, own, broken = (saved['benchmarks'][k] for k in FAKES)
  # print_comparison's record: medians 0.5 s and 1.0 s -> 2.0x, 100 / 0.5 / 400 = 50% MFU
  assert cmp['status'] == 0 and cmp['ratios'] == [2.0] and cmp['mfu'] == [0.5]
  assert cmp['records'][0]['jdl_units_per_second'] == 20.0
  # a table of its own: read from its output (and it ran in quick mode)
  assert own['status'] == 0 and own['ratios'] == [1.25] and own['mfu'] == [0.125]
  assert '| toy, quick=True | 5.0 | 4.0 | 1.25x |' in own['tables']
  assert broken['status'] != 0 and 'this benchmark fails' in broken['error']
  out = capsys.readouterr().out
  assert '=== jdl bench own --quick' in out and '| broken | FAILED' in out


def test_dispatch_runs_one_benchmark_in_process_and_writes_its_json(tmp_path, monkeypatch):
  monkeypatch.syspath_prepend(str(HERE))
  monkeypatch.setattr(common, 'RESULTS', [])
  path = tmp_path / 'one.json'
  assert bench_all.dispatch(FAKES, 'comparison', quick=True, json=str(path)) == 0
  (result,) = json.loads(path.read_text())['benchmarks'].values()
  assert result['ratios'] == [2.0] and result['records'][0]['peer'] == 'peer'


def test_cli_bench_refuses_profile_with_all_and_unknown_names(capsys):
  assert cli.main(['bench', 'all', '--profile', 'somewhere']) == 2
  assert '--profile profiles one benchmark' in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    cli.main(['bench', 'nonesuch'])
  assert e.value.code == 2
