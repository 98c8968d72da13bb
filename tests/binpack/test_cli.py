"""`binpack table --json` output, and the figure function."""

import json

from jdl.binpack import cli, data, figures


def test_table_json_keys_and_values(capsys):
  assert cli.main(['table', '--json']) == 0
  rows = json.loads(capsys.readouterr().out)
  assert list(rows) == ['First Fit', 'Best Fit', 'FunSearch', 'jdl search']
  for row in rows.values():
    assert list(row) == list(data.DATASET_NAMES)
    assert all(isinstance(v, float) and 0 <= v < 100 for v in row.values())
  # computed values (First Fit reproduces the paper on OR1 to 2 decimals)
  assert abs(rows['First Fit']['OR1'] - 6.42) < 0.01
  assert rows['FunSearch']['Weibull 5k'] < rows['Best Fit']['Weibull 5k']
  # the stored search result beats Best Fit on every OR set
  for name in ('OR1', 'OR2', 'OR3', 'OR4'):
    assert rows['jdl search'][name] < rows['Best Fit'][name], name


def test_figures_render_pngs(tmp_path):
  rows = {'First Fit': {'OR1': 6.4}, 'Best Fit': {'OR1': 5.8}}
  paths = figures.funsearch(tmp_path, rows=rows)
  assert [p.name for p in paths] == ['binpack_table.png', 'binpack_search.png']
  for p in paths:
    assert p.read_bytes()[:4] == b'\x89PNG'
