"""The smoke config through the loop, its report (zero-shot, chance, linear probe), the search
tool's PNG grid, the evaluation and summary commands, and the tools' errors."""

import contextlib
import io
import json

import numpy as np
import pytest

from jdl import config as config_lib
from jdl.cli import _main as jdl_main
from jdl.train import loop
from tests.multimodal import CONFIG


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  config = config_lib.load(CONFIG + ':smoke')
  with config.unlocked():
    config.mesh.update(data=1, fsdp=1, tensor=1)
  workdir = tmp_path_factory.mktemp('clip')
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    result = loop.train_and_evaluate(config, workdir)
  return workdir, result, printed.getvalue()


def test_smoke_run_trains_and_reports_zero_shot_and_probe(trained):
  workdir, result, printed = trained
  history = [h for h in result['history'] if 'loss' in h]
  assert result['step'] == 12 and history[-1]['loss'] < history[0]['loss']
  assert np.isfinite(result['final']['validation_loss'])
  r = json.loads((workdir / 'results.json').read_text())
  assert r['held_out'] == [1, 7] and r['held_out_names'] == ['Trouser', 'Sneaker']
  assert (r['chance_held_out'], r['chance_seen'], r['chance_all']) == (0.5, 0.125, 0.1)
  for key in ('zero_shot_held_out', 'zero_shot_seen', 'zero_shot_all', 'probe_all'):
    assert 0 <= r[key] <= 1
  assert r['probe_all'] > 0.5  # a linear probe on 500 images of even a barely trained encoder
  assert r['test_images'] == 500 and len(r['descriptions_per_class']) == 10
  assert 'held out Trouser+Sneaker' in printed and 'linear probe' in printed


def test_search_writes_a_png_grid_and_evaluate_and_summary_agree(trained, capsys, tmp_path):
  workdir, _, _ = trained
  first = json.loads((workdir / 'results.json').read_text())
  png = tmp_path / 'shoe.png'
  argv = ['multimodal', 'search', '--workdir', str(workdir), 'a shoe for running']
  assert jdl_main([*argv, '--top', '8', '--images', '500', '--out', str(png)]) == 0
  assert png.read_bytes()[:4] == b'\x89PNG' and 'top 8 classes' in capsys.readouterr().out
  assert jdl_main(['multimodal', 'evaluate', '--workdir', str(workdir), '--test-rows', '500']) == 0
  assert 'all 10 classes' in capsys.readouterr().out
  again = json.loads((workdir / 'results.json').read_text())
  assert again['zero_shot_all'] == pytest.approx(first['zero_shot_all'], abs=1e-6)  # the report's
  assert jdl_main(['multimodal', 'summary', str(workdir), str(workdir)]) == 0
  out = capsys.readouterr().out
  assert out.startswith('2 runs') and '+-  0.00' in out  # the same run twice: no spread


def test_tools_name_what_is_wrong(trained, tmp_path, capsys):
  workdir, _, _ = trained
  bad = [
    (['search', '--workdir', str(workdir), '   '], 'the query is empty'),
    (['search', '--workdir', str(workdir), 'a bag', '--top', '0'], '--top 0'),
    (['search', '--workdir', str(tmp_path), 'a bag'], 'not a run folder'),
    (['summary', str(tmp_path)], 'results.json: missing'),
  ]
  for argv, message in bad:
    assert jdl_main(['multimodal', *argv]) == 2, argv
    assert message in capsys.readouterr().err, argv


def test_figures_draw_the_similarity_matrix_zero_shot_examples_and_projection(trained, tmp_path):
  from jdl.multimodal import figures

  workdir, _, _ = trained
  paths = figures.render(tmp_path, workdir)
  assert [p.name for p in paths] == [
    'multimodal_similarity.png',
    'multimodal_zero_shot.png',
    'multimodal_projection.png',
  ]
  assert all(p.read_bytes()[:4] == b'\x89PNG' and len(p.read_bytes()) > 10_000 for p in paths)
