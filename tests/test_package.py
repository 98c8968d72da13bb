"""jdl as a package: a wheel built from the sdist installs into a fresh environment and runs its
experiments from any directory; every dependency is bounded; `make data` for `make run` needs
only the MLP's data; `experiments/...` names the installed copy where no such file is here."""

import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement

from jdl import paths
from jdl.data import install
from tests.conftest import ROOT

SMOKE = 'experiments/mlp/keras_regression.py:smoke'


def run(*args, cwd, check=True, timeout=300) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
  env['JAX_PLATFORMS'] = 'cpu'
  proc = subprocess.run(
    [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
  )
  if check and proc.returncode:
    raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
  return proc


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> str:
  """The wheel, built as `python -m build` does: an sdist, then a wheel from its unpacked tree
  (no network: the build backend is the installed setuptools)."""
  out = tmp_path_factory.mktemp('dist')
  name = run(
    sys.executable,
    '-c',
    f'from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))',
    cwd=ROOT,
  ).stdout.split()[-1]
  with tarfile.open(out / name) as sdist:
    sdist.extractall(out, filter='data')
  tree = out / name.removesuffix('.tar.gz')
  run(sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
      '--no-index', '-w', out, tree, cwd=out)  # fmt: skip
  (built,) = out.glob('jdl-*.whl')
  return built


def test_the_wheel_carries_experiments_data_and_licences(wheel):
  names = set(zipfile.ZipFile(wheel).namelist())
  experiments = {n for n in names if n.startswith('jdl/experiments/')}
  assert len(experiments) == len(list(paths.EXPERIMENTS.glob('*/*.py'))) >= 15
  assert 'jdl/experiments/mlp/keras_regression.py' in experiments
  assert 'jdl/binpack/data/or1_binpack1.json' in names
  assert 'jdl/binpack/data/README.md' in names
  assert not [n for n in names if '__pycache__' in n]
  dist_info = 'jdl-0.1.0.dist-info'
  assert {f'{dist_info}/licenses/LICENSE', f'{dist_info}/licenses/NOTICE'} <= names
  metadata = zipfile.ZipFile(wheel).read(f'{dist_info}/METADATA').decode()
  assert 'License-Expression: Apache-2.0' in metadata


def test_an_installed_wheel_lists_and_trains_from_any_directory(wheel, tmp_path):
  """A fresh environment with the wheel, and the dependencies of this one (a path to its
  site-packages: no network). The editable jdl there is not on the path: its finder is started
  by a .pth file, which only a site directory runs."""
  env = tmp_path / 'venv'
  run(sys.executable, '-m', 'venv', '--without-pip', env, cwd=tmp_path)
  site = run(env / 'bin/python', '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))',
             cwd=tmp_path).stdout.strip()  # fmt: skip
  (tmp_path / site / 'dependencies.pth').write_text(sysconfig.get_path('purelib') + '\n')
  run(sys.executable, '-m', 'pip', '--python', env / 'bin/python', 'install', '-q', '--no-deps',
      '--no-index', wheel, cwd=tmp_path)  # fmt: skip

  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  where = run(env / 'bin/python', '-c', 'import jdl; print(jdl.__file__)', cwd=elsewhere)
  assert where.stdout.startswith(str(env)), where.stdout  # the wheel's jdl, not the checkout's

  listed = run(env / 'bin/jdl', 'list', cwd=elsewhere).stdout
  assert f'Experiments in {env}' in listed and '/jdl/experiments' in listed
  assert '  experiments/mlp/keras_regression.py\n' in listed
  assert '  experiments/gpt/gpt3_175b.py\n' in listed

  trained = run(env / 'bin/jdl', 'train', '--config', SMOKE, '--workdir', 'run', cwd=elsewhere)
  assert 'done: step' in trained.stdout, trained.stdout
  assert (elsewhere / 'run/config.json').is_file()
  assert (elsewhere / 'run/history.png').is_file()
  assert [p.name for p in (elsewhere / 'run/checkpoints').iterdir() if p.name.isdigit()]


def test_config_paths_resolve_here_first_then_in_the_installed_experiments(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  name = 'experiments/mlp/keras_regression.py'
  assert paths.config_file(name) == paths.EXPERIMENTS / 'mlp/keras_regression.py'
  (tmp_path / 'experiments/mlp').mkdir(parents=True)
  (tmp_path / name).write_text('def get_config(arg=None): ...\n')
  assert paths.config_file(name).resolve() == tmp_path / name  # a file here comes first
  assert str(paths.config_file('experiments/mlp/nosuch.py')) == 'experiments/mlp/nosuch.py'
  assert str(paths.config_file('mine/keras_regression.py')) == 'mine/keras_regression.py'


def test_every_dependency_is_bounded():
  project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
  requirements = [*project['dependencies']]
  for extra in project['optional-dependencies'].values():
    requirements += extra
  unbounded = []
  for text in requirements:
    specs = Requirement(text).specifier
    operators = {s.operator for s in specs}
    if '==' in operators or not operators & {'>=', '~='} or not operators & {'<', '~='}:
      unbounded.append(text)
  assert len(requirements) > 20 and not unbounded, unbounded
  assert any(r.startswith('tensorboard>=') for r in project['optional-dependencies']['dev'])


def test_make_run_needs_only_the_mlp_data(monkeypatch, capsys):
  absent = lambda: False
  monkeypatch.setattr(
    install,
    'DATASETS',
    [
      install.Dataset('diabetes', 'experiments/mlp', lambda: True, []),
      install.Dataset('Fashion-MNIST', 'experiments/cnn, experiments/rnn', absent, []),
      install.Dataset('KJV', 'experiments/gpt', absent, []),
    ],
  )
  assert install.main(['--need', 'experiments/mlp']) == 0
  out = capsys.readouterr().out
  assert 'ok       diabetes' in out
  assert 'WARNING  Fashion-MNIST is not installed (used by experiments/cnn' in out
  assert 'WARNING  KJV is not installed' in out and 'MISSING' not in out

  assert install.main([]) == 1  # `make data` itself requires every data set
  out = capsys.readouterr().out
  assert 'MISSING  Fashion-MNIST' in out and 'MISSING  KJV' in out

  monkeypatch.setattr(install.DATASETS[0], 'present', absent)
  assert install.main(['--need', 'experiments/mlp']) == 1  # the MLP's own data is required
  assert 'MISSING  diabetes' in capsys.readouterr().out
