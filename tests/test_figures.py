"""`jdl figures`: every figure it can, the missing runs named with their commands, a summary, the
gallery; a figure read from a gs:// run; and what the fixed figures draw."""

import html
import json
import os
import subprocess
import sys

import matplotlib.text
import pytest

from jdl import cli, plots
from jdl import config as config_lib
from jdl.train import loop
from jdl.train.run import read_metrics
from tests.conftest import MLP, ROOT
from tests.gcs_emulator import BUCKET


@pytest.fixture
def drawn(monkeypatch):
  """The figures saved through jdl.plots.save, by file name, still open for inspection."""
  figures = {}
  save = plots.save

  def keep(fig, path, *args, **kwargs):
    figures[str(path).rsplit('/', 1)[-1]] = fig
    fig.canvas.draw()  # lays the figure out as in the file
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    figures[str(path).rsplit('/', 1)[-1] + ':texts'] = texts
    return save(fig, path, *args, **kwargs)

  monkeypatch.setattr(plots, 'save', keep)
  return figures


def broken(outdir, **_):
  raise RuntimeError('a bug in a figure')


def test_renders_what_it_can_skips_missing_runs_with_their_command(tmp_path, capsys):
  out = tmp_path / 'figures'
  argv = ['figures', 'gpt3_data_mix', 'cnn', 'mlp', '--outdir', str(out)]
  argv += ['--run', f'simple_fmnist={tmp_path / "none"}', '--run', f'mlp={tmp_path / "nomlp"}']
  assert cli.main(argv) == 0
  text = capsys.readouterr().out
  summary = text[text.index('figure ') :].splitlines()
  row = {line.split()[0]: line.split()[1:] for line in summary[1:4]}
  assert row['gpt3_data_mix'][:2] == ['rendered', '2']
  assert row['cnn'][:2] == ['skipped', '0']
  assert 'jdl train --config experiments/cnn/simple_fmnist.py' in ' '.join(row['cnn'])
  assert 'jdl train --config experiments/mlp/keras_regression.py' in ' '.join(row['mlp'])
  assert '1 rendered, 2 skipped' in text and '0 failed' in text

  page = (out / 'index.html').read_text()
  assert '<img src="gpt3_data_mix.png"' in page
  for name in cli.FIGURES:  # every figure listed: its caption, section and command
    figure = cli.FIGURES[name]
    assert f'id="{name}"' in page and f'jdl figures {name}' in page
    assert html.escape(figure.caption) in page and html.escape(figure.section) in page
  record = json.loads((out / 'gallery.json').read_text())
  assert record['cnn']['status'] == 'skipped' and record['gpt3_data_mix']['status'] == 'rendered'

  # A later run of another figure keeps what the first one drew in the gallery.
  assert cli.main(['figures', 'gpt_family', '--outdir', str(out)]) == 0
  page = (out / 'index.html').read_text()
  assert '<img src="gpt3_data_mix.png"' in page and '<img src="gpt_family.png"' in page


def test_a_failing_figure_is_an_error_and_the_others_still_render(tmp_path, capsys, monkeypatch):
  monkeypatch.setitem(
    cli.FIGURES, 'broken', cli.Figure('tests.test_figures', 'broken', 'caption', 'section')
  )
  assert cli.main(['figures', 'broken', 'gpt3_compute', '--outdir', str(tmp_path)]) == 1
  captured = capsys.readouterr()
  assert 'RuntimeError: a bug in a figure' in captured.err  # the traceback
  assert 'gpt3_compute: wrote' in captured.out and '1 failed' in captured.out


@pytest.mark.parametrize(
  'argv, message',
  [
    (['nosuch'], 'unknown figure(s) nosuch'),
    (['cnn', 'mlp', '--workdir', 'x'], '--workdir needs one figure that reads one run'),
    (['generative', '--workdir', 'x'], 'use --run NAME=DIR'),
    (['mlp', '--run', 'nosuch=x'], '--run nosuch=x: expected NAME=DIR'),
  ],
)
def test_usage_errors_exit_2(argv, message, tmp_path, capsys):
  assert cli.main(['figures', *argv, '--outdir', str(tmp_path)]) == 2
  assert message in capsys.readouterr().err


def test_history_after_a_resume_is_the_whole_run_with_its_epoch_numbers(tmp_path, drawn, capsys):
  config = config_lib.load(MLP + ':smoke')
  config.num_epochs = 3
  loop.train_and_evaluate(config, tmp_path)
  with config.unlocked():
    config.num_epochs = 5
  loop.train_and_evaluate(config, tmp_path)  # resumes at step 24, trains epochs 4 and 5
  assert 'Epoch 4/5 - loss' in capsys.readouterr().out
  records = [r for r in read_metrics(tmp_path) if 'validation_loss' in r]
  (x, loss), (_, val) = [line.get_data() for line in drawn['history.png'].axes[0].lines]
  assert list(x) == [1, 2, 3, 4, 5]
  assert list(loss) == [r['loss'] for r in records]
  assert list(val) == [r['validation_loss'] for r in records]

  assert cli.main(['figures', 'mlp', '--workdir', str(tmp_path), '--outdir', str(tmp_path)]) == 0
  (x, _), _ = [line.get_data() for line in drawn['mlp_history.png'].axes[0].lines]
  assert list(x) == [1, 2, 3, 4, 5]


def test_mlp_figure_from_a_gs_run_equals_the_local_run(gcs, tmp_path, capsys):
  from etils import epath

  from jdl.mlp import figures

  local, remote = tmp_path / 'local', f'gs://{BUCKET}/figures_mlp'
  # Trained in processes of their own, side by side: TensorBoard's gs:// writer uploads its file
  # once more when the process ends, which must happen while the emulator runs.
  runs = [
    subprocess.Popen(
      [sys.executable, '-m', 'jdl', 'train', '--config', MLP + ':smoke', '--workdir', workdir],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=dict(os.environ, JAX_PLATFORMS='cpu', **env),
      cwd=ROOT,
    )
    for workdir, env in ((str(local), {}), (remote, gcs))
  ]
  for run in runs:
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
  inputs = figures.history_inputs(remote)
  assert inputs == figures.history_inputs(local)
  assert inputs['epoch'] == list(range(1, 11)) and inputs['step'] == list(range(8, 81, 8))

  for name, workdir in (('gs', remote), ('local', local)):
    argv = ['figures', 'mlp', '--run', f'mlp={workdir}', '--outdir', str(tmp_path / name)]
    assert cli.main(argv) == 0
  assert 'mlp            rendered' in capsys.readouterr().out
  png = (tmp_path / 'gs/mlp_history.png').read_bytes()
  assert png[:4] == b'\x89PNG' and png == (tmp_path / 'local/mlp_history.png').read_bytes()
  # The run's own plot, written there by the task's report, too.
  assert (epath.Path(remote) / 'history.png').read_bytes() == (local / 'history.png').read_bytes()


def test_funsearch_table_reads_like_the_lecture(tmp_path, drawn):
  from jdl.binpack import figures, table

  rows = {row: dict(values) for row, values in table.PUBLISHED.items()}
  rows['jdl search'] = {column: 5.5 for column in rows['First Fit']}
  figures.funsearch(tmp_path, rows=rows)
  ax = drawn['binpack_table.png'].axes[0]
  (drawn_table,) = ax.tables
  cells = {key: cell.get_text().get_text() for key, cell in drawn_table.get_celld().items()}
  assert 'lower is better' in ax.get_title()
  assert [cells[0, c] for c in range(7)] == [
    'OR1',
    'OR2',
    'OR3',
    'OR4',
    'Weibull 5k',
    'Weibull 10k*',
    'Weibull 100k*',
  ]
  assert [cells[r, -1].split('\n')[0] for r in range(1, 5)] == [
    'First Fit',
    'Best Fit',
    'FunSearch',
    'jdl search',
  ]
  assert cells[1, 0] == '6.42%\n(paper 6.42%)' and cells[4, 0] == '5.50%'
  # The lowest of each column is marked (FunSearch's everywhere here).
  best = drawn_table.get_celld()[3, 0]
  assert best.get_text().get_weight() == 'bold' and best.get_facecolor() != (1, 1, 1, 1)
  assert drawn_table.get_celld()[1, 0].get_text().get_weight() == 'normal'

  # The search runs had different training sets: one panel each, each naming its own.
  panels = drawn['binpack_search.png'].axes
  assert len(panels) == 2
  assert all('training set: 16 instances' in ax.get_title() for ax in panels)
  assert panels[0].get_title() != panels[1].get_title()
  assert 'not on one scale' in drawn['binpack_search.png']._suptitle.get_text()


def test_gpt3_data_mix_marks_published_and_recomputed_epochs(tmp_path, drawn):
  from jdl.gpt import figures

  figures.render_gpt3_data_mix(tmp_path)
  (drawn_table,) = drawn['gpt3_data_mix.png'].axes[0].tables
  cells = drawn_table.get_celld()
  header = [cells[0, c].get_text().get_text() for c in range(6)]
  assert header[3].startswith('published epochs') and header[4].startswith('recomputed epochs')
  published, recomputed = cells[1, 3].get_facecolor(), cells[1, 4].get_facecolor()
  assert published != recomputed and cells[5, 4].get_facecolor() == recomputed
  assert any('recomputed by jdl' in t for t in drawn['gpt3_data_mix.png:texts'])
  assert any('published' in t for t in drawn['gpt3_data_mix.png:texts'])


def test_generative_draws_the_panels_of_the_runs_it_has(tmp_path, capsys):
  vae2d = tmp_path / 'vae2d'
  config = config_lib.load(str(ROOT / 'experiments/generative/vae_fmnist.py:2d:smoke'))
  loop.train_and_evaluate(config, vae2d)
  missing = ['vae', 'gan', 'cyclegan_sneaker_boot', 'cyclegan_tshirt_shirt', 'simple_fmnist']
  argv = ['figures', 'generative', '--outdir', str(tmp_path / 'out'), '--run', f'vae2d={vae2d}']
  argv += [arg for name in missing for arg in ('--run', f'{name}={tmp_path / "none" / name}')]
  assert cli.main(argv) == 0
  out = capsys.readouterr().out
  assert 'generative     rendered' in out and 'without gan (no run in ' in out
  drawn = sorted(p.name for p in (tmp_path / 'out').glob('generative_*'))
  assert drawn == [
    'generative_losses.png',
    'generative_scores.json',
    'generative_scores.md',
    'generative_vae2d_manifold.png',
    'generative_vae2d_samples.png',
    'generative_vae2d_scatter.png',
  ]
  scores = json.loads((tmp_path / 'out/generative_scores.json').read_text())
  assert list(scores) == ['vae2d'] and scores['vae2d']['latent_dim'] == 2
  assert 'No classifier run' in (tmp_path / 'out/generative_scores.md').read_text()
