"""Every wrong input gets a message that names the problem and exit code 2, and nothing is lost:
no folder is created, no config.json or metrics.jsonl is overwritten (issue 18, section 2).

The commands run in this process (`jdl.cli.main`); one small MLP run, trained once, serves the
tests that need a run, each on its own copy.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from jdl import __version__, cli
from jdl import config as config_lib
from jdl.binpack import cli as binpack_cli
from jdl.data import text
from jdl.models import sampling
from jdl.train import loop

ROOT = pathlib.Path(__file__).resolve().parent.parent
MLP = str(ROOT / 'experiments/mlp/keras_regression.py')
GPT = str(ROOT / 'experiments/gpt/char_bible.py')


def jdl(capsys, *args) -> tuple[int, str, str]:
  """(exit code, stdout, stderr) of `jdl ARGS`; argparse's own errors exit with SystemExit."""
  try:
    code = cli.main([str(a) for a in args])
  except SystemExit as e:
    code = e.code
  out = capsys.readouterr()
  return code, out.out, out.err


def contents(folder: pathlib.Path) -> dict[str, bytes]:
  """Every file under `folder` and its bytes: what a failed command must leave as it was."""
  return {
    str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()
  }


@pytest.fixture(scope='module')
def mlp_run(tmp_path_factory) -> pathlib.Path:
  """A finished MLP smoke run: 10 epochs of 8 steps."""
  workdir = tmp_path_factory.mktemp('mlp') / 'run'
  assert cli.main(['train', '--config', MLP + ':smoke', '--workdir', str(workdir)]) == 0
  return workdir


@pytest.fixture
def mlp_copy(mlp_run, tmp_path) -> pathlib.Path:
  return pathlib.Path(shutil.copytree(mlp_run, tmp_path / 'run'))


@pytest.fixture(scope='module')
def gpt_run(tmp_path_factory) -> pathlib.Path:
  """A character GPT of context 32 with its initial weights saved as a run (`jdl sample` needs a
  checkpoint, not a trained one)."""
  assert text.kjv_present(), text.INSTALL_KJV  # the alphabet of the character tokenizer
  workdir = tmp_path_factory.mktemp('gpt') / 'run'
  config = config_lib.load(GPT + ':smoke')
  with config.unlocked():
    config.mesh.data = 1
  trainer = loop.Trainer(config, total_steps=1)
  checkpointer = trainer.checkpointer(workdir, async_save=False)
  checkpointer.save(1, trainer.init_state(), {})
  checkpointer.close()
  config_lib.write(config, workdir)
  return workdir


# ---- runs that are not what the command reads --------------------------------------------------


def test_sample_and_translate_refuse_a_run_of_another_task(capsys, mlp_run):
  before = contents(mlp_run)
  code, _, err = jdl(capsys, 'sample', '--workdir', mlp_run)
  assert code == 2 and 'is a regression run, not a language model' in err
  code, _, err = jdl(capsys, 'translate', '--workdir', mlp_run, 'ein Haus')
  assert code == 2 and 'is a regression run, not a translation model' in err
  assert 'Traceback' not in err and contents(mlp_run) == before


@pytest.mark.parametrize('command', ['sample', 'translate'])
def test_sample_and_translate_on_an_empty_or_missing_workdir(capsys, tmp_path, command):
  empty, missing = tmp_path / 'empty', tmp_path / 'missing'
  empty.mkdir()
  for workdir in (empty, missing):
    code, _, err = jdl(capsys, command, '--workdir', workdir, *(['hallo'] * (command != 'sample')))
    assert code == 2 and f'{workdir} is not a run folder (no config.json)' in err
  assert list(empty.iterdir()) == [] and not missing.exists()


def test_a_run_folder_without_checkpoints_stays_without(capsys, tmp_path, mlp_run):
  shutil.copy(mlp_run / 'config.json', tmp_path / 'config.json')
  code, _, err = jdl(capsys, 'sample', '--workdir', tmp_path)
  assert code == 2 and 'no checkpoint in' in err
  assert [p.name for p in tmp_path.iterdir()] == ['config.json']  # no checkpoints/ made


def test_eval_of_a_missing_or_empty_workdir_creates_nothing(capsys, tmp_path):
  missing, empty = tmp_path / 'missing', tmp_path / 'empty'
  empty.mkdir()
  code, _, err = jdl(capsys, 'eval', '--config', MLP + ':smoke', '--workdir', missing)
  assert code == 2 and f'{missing} does not exist: train first' in err
  code, _, err = jdl(capsys, 'eval', '--config', MLP + ':smoke', '--workdir', empty)
  assert code == 2 and f'{empty} holds no checkpoints' in err
  assert not missing.exists() and list(empty.iterdir()) == []


# ---- configs ----------------------------------------------------------------------------------


def test_a_config_file_with_a_syntax_error_names_the_line(capsys, tmp_path):
  broken = tmp_path / 'broken.py'
  broken.write_text('def get_config(arg=None):\n  return base_config(\n')
  workdir = tmp_path / 'run'
  code, _, err = jdl(capsys, 'train', '--config', broken, '--workdir', workdir)
  assert code == 2 and f'{broken}, line 2: syntax error' in err and 'Traceback' not in err
  failing = tmp_path / 'failing.py'
  failing.write_text('import os\n\n\ndef get_config(arg=None):\n  return os.nosuch\n')
  code, _, err = jdl(capsys, 'params', '--config', failing)
  assert code == 2 and 'get_config failed (line 5): AttributeError' in err
  assert not workdir.exists()


def test_an_unknown_variant_lists_the_variants(capsys, tmp_path):
  code, _, err = jdl(capsys, 'train', '--config', MLP + ':nosuch', '--workdir', tmp_path / 'run')
  assert code == 2 and "unknown variant 'nosuch' (sklearn, smoke)" in err
  assert not (tmp_path / 'run').exists()


def test_a_mesh_larger_than_the_devices_names_the_field_and_the_count(capsys, tmp_path):
  workdir = tmp_path / 'run'
  code, _, err = jdl(
    capsys, 'train', '--config', MLP + ':smoke', '--workdir', workdir, '--config.mesh.data=16'
  )
  assert code == 2 and 'config.mesh.data=16 does not fit the 8 device(s) of this run' in err
  assert not workdir.exists()
  config = config_lib.load(MLP + ':smoke')
  config_lib.apply_overrides(config, ['--config.mesh.data=3'])
  with pytest.raises(config_lib.ConfigError, match=r'mesh.data=3 does not fit the 1 device\(s\)'):
    loop.mesh_for(config, jax.devices()[:1])


# ---- jdl compute and jdl params ---------------------------------------------------------------


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--tokens', '0'], 'argument --tokens: must be positive, got 0'),
    (['--tokens=-5B'], 'argument --tokens: must be positive, got -5B'),
    (['--tokens', 'many'], "argument --tokens: not a number of tokens: 'many'"),
    (['--tokens', '1B', '--chips', '0'], 'argument --chips: must be a positive whole number'),
    (['--tokens', '1B', '--chips=-8'], 'argument --chips: must be a positive whole number'),
    (['--tokens', '1B', '--mfu', '0'], 'argument --mfu: must be a fraction in (0, 1], got 0'),
    (['--tokens', '1B', '--mfu=-0.4'], 'argument --mfu: must be a fraction in (0, 1], got -0.4'),
    (['--tokens', '1B', '--mfu', '40'], 'argument --mfu: must be a fraction in (0, 1], got 40'),
  ],
)
def test_compute_refuses_counts_that_are_not_positive(capsys, flags, message):
  code, out, err = jdl(capsys, 'compute', '--config', 'experiments/gpt/gpt2_small.py', *flags)
  assert code == 2 and message in err and out == ''


def test_compute_refuses_a_config_that_is_not_a_gpt(capsys):
  code, out, err = jdl(capsys, 'compute', '--config', MLP, '--tokens', '1B')
  assert code == 2 and 'is a regression config of model mlp; jdl compute counts GPT' in err
  assert out == ''


@pytest.mark.parametrize(
  'mesh, message',
  [
    ('data=x', "data must be a positive whole number, got 'x'"),
    ('tensor=0', "tensor must be a positive whole number, got '0'"),
    ('data=-1', "data must be a positive whole number, got '-1'"),
    ('pipeline=2', "'pipeline' is not an axis (data, fsdp, tensor)"),
    ('data=2,data=4', 'data is given twice'),
  ],
)
def test_params_refuses_a_mesh_that_is_not_positive_sizes(capsys, mesh, message):
  code, out, err = jdl(capsys, 'params', '--config', MLP, '--mesh', mesh)
  assert code == 2 and f'jdl params: --mesh {mesh}: {message}' in err and out == ''


def test_params_on_a_good_mesh_still_prints_bytes_per_device(capsys):
  code, out, _ = jdl(capsys, 'params', '--config', MLP, '--mesh', 'data=2,tensor=1', '--json')
  assert code == 0 and json.loads(out)['mesh'] == {'data': 2, 'fsdp': 1, 'tensor': 1}


# ---- a run and its checkpoints ----------------------------------------------------------------


def test_a_config_that_does_not_fit_the_checkpoint_overwrites_nothing(capsys, mlp_copy):
  before = contents(mlp_copy)
  code, _, err = jdl(
    capsys,
    'train',
    '--config',
    MLP + ':smoke',
    '--workdir',
    mlp_copy,
    '--config.model.features=(20, 2, 1)',
  )
  assert code == 2 and 'does not fit this config' in err
  assert 'params/layers/0/kernel is (10, 10) in the checkpoint, (10, 20) in the config' in err
  assert contents(mlp_copy) == before  # config.json, metrics.jsonl, checkpoints: as they were


def test_rerunning_a_finished_run_says_it_is_complete(capsys, mlp_copy):
  before = contents(mlp_copy)
  last = json.loads((mlp_copy / 'metrics.jsonl').read_text().splitlines()[-1])
  code, out, _ = jdl(capsys, 'train', '--config', MLP + ':smoke', '--workdir', mlp_copy)
  assert code == 0
  assert f'{mlp_copy} is complete: its checkpoint is at step 80 of 80 (epoch 10)' in out
  assert 'complete at step 80; its final metrics: ' in out
  assert f'validation_loss {last["validation_loss"]:.4g}' in out
  assert contents(mlp_copy) == before  # nothing trained, nothing written


def test_resuming_with_more_epochs_numbers_them_on(capsys, mlp_copy):
  code, out, _ = jdl(
    capsys,
    'train',
    '--config',
    MLP + ':smoke',
    '--workdir',
    mlp_copy,
    '--config.num_epochs=12',
  )
  assert code == 0 and 'resumed at step 80' in out
  records = [json.loads(line) for line in (mlp_copy / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == list(range(8, 97, 8))
  assert [r['epoch'] for r in records] == list(range(1, 13))
  # The config it trained the first 80 steps with is kept beside the new one.
  assert 'the config changed at step 80 (num_epochs 10 -> 12)' in out
  kept = json.loads((mlp_copy / 'config.until_step_80.json').read_text())
  assert kept['num_epochs'] == 10
  assert json.loads((mlp_copy / 'config.json').read_text())['num_epochs'] == 12


# ---- jdl sample ---------------------------------------------------------------------------------


def test_sample_past_the_context_slides_the_window(capsys, gpt_run):
  # context 32: a prompt of 4 characters and 40 new ones, greedy
  code, out, err = jdl(
    capsys,
    'sample',
    '--workdir',
    gpt_run,
    '--prompt',
    'And ',
    '--max-new-tokens',
    '40',
    '--temperature',
    '0',
  )
  assert code == 0 and 'past the context of 32 tokens the window slides' in err
  text = out.removesuffix('\n')
  assert text.startswith('And ') and len(text) == 4 + 40  # one character per token
  # The first 32 positions are one pass, as without the window; the 12 after them are what the
  # model continues from the last 16 of those 32, read again from position 0.
  from jdl.train.run import load_run

  run = load_run(gpt_run)
  tokenizer = run.task.tokenizer()
  first = sampling.sample_text(run.model, tokenizer, 'And ', max_new_tokens=28, temperature=0)
  assert text[:32] == first
  window = tokenizer.encode(text[16:32])[None]
  rest = sampling.generate(run.model, window, 12, temperature=0)
  assert tokenizer.decode(np.asarray(rest[0, 16:])) == text[32:]


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--temperature', '-0.5'], 'temperature must be >= 0 (0: greedy), got -0.5'),
    (['--top-p', '0'], 'top-p must be in (0, 1]'),
    (['--top-k', '-1'], 'top-k must be >= 0'),
    (['--max-new-tokens', '0'], 'max-new-tokens must be at least 1'),
    (['--num-samples', '0'], 'num-samples must be at least 1'),
  ],
)
def test_sample_refuses_options_it_cannot_honour(capsys, tmp_path, flags, message):
  # Refused before the run is read: the workdir does not even need to exist.
  code, out, err = jdl(capsys, 'sample', '--workdir', tmp_path / 'none', *flags)
  assert code == 2 and message in err and out == ''
  with pytest.raises(ValueError, match='temperature must be >= 0'):
    sampling.check_options(8, -1.0, 0, 1.0)


# ---- tools and the command line itself --------------------------------------------------------


def test_binpack_table_names_a_missing_program(capsys, tmp_path):
  missing = tmp_path / 'MISSING.py'
  code, out, err = jdl(capsys, 'binpack', 'table', '--program', missing)
  assert code == 2 and f'--program {missing}: no such file' in err and out == ''


def test_jdl_list_into_a_closed_pipe_ends_quietly():
  read, write = os.pipe()
  os.close(read)  # the reader is gone before the first line, as `jdl list | head -0`
  proc = subprocess.run(
    [sys.executable, '-m', 'jdl', 'list'], stdout=write, stderr=subprocess.PIPE, cwd=ROOT
  )
  os.close(write)
  assert proc.stderr == b'' and proc.returncode == 1


def test_help_lists_every_command_and_the_version(capsys):
  code, out, _ = jdl(capsys, '--help')
  assert code == 0
  listed = re.findall(r'^    (\w+)\s', out, re.M)
  assert sorted(listed) == sorted([*cli.COMMANDS, *cli.TOOLS])
  code, out, _ = jdl(capsys, '--version')
  assert code == 0 and out.strip() == f'jdl {__version__}'


def test_train_help_explains_overrides_and_lists_the_config(capsys):
  code, out, _ = jdl(capsys, 'train', '--help')
  assert code == 0 and '--config.FIELD=VALUE' in out and 'FILE:VARIANT' in out
  code, out, _ = jdl(capsys, 'train', '--config', MLP + ':smoke', '--help')
  assert code == 0 and f'Fields of {MLP}:smoke' in out
  assert '  optimizer.learning_rate = 0.01\n' in out and '  model.features = (10, 2, 1)\n' in out
  assert f'Variants ({MLP}:VARIANT): sklearn, smoke' in out


def test_output_folders_are_spelled_outdir_everywhere(capsys):
  for command in (['figures'], ['binpack', 'figures'], ['binpack', 'search']):
    code, out, _ = jdl(capsys, *command, '--help')
    assert code == 0 and '--outdir' in out and '--out ' not in out and '--out-dir' not in out
  # docs/binpack.md's spelling still works, unlisted
  args = binpack_cli._parser().parse_args(['figures', '--out', 'somewhere'])
  assert args.outdir == pathlib.Path('somewhere')
