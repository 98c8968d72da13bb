"""Resume after SIGKILL is bitwise exact; SIGTERM checkpoints and exits; a corrupt checkpoint
falls back to the previous one; another config's checkpoint stops with an error and is kept."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import chex
import jax
import orbax.checkpoint as ocp
import pytest

from jdl.tasks import regression
from jdl.train import errors, loop
from jdl.train.run import read_metrics
from tests.conftest import MLP, ROOT, run_jdl

# 8 steps per epoch; a checkpoint every 40 steps, no per-epoch evaluation to slow it down.
LONG = [
  '--config.num_epochs=150',
  '--config.checkpoint_every_steps=40',
  '--config.eval_every_steps=-1',
  '--config.log_every_steps=40',
  '--config.keep_checkpoints=50',
]


def start_jdl(workdir, *extra) -> subprocess.Popen:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.Popen(
    [
      sys.executable,
      '-m',
      'jdl',
      'train',
      '--config',
      MLP,
      '--workdir',
      str(workdir),
      *LONG,
      *extra,
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=env,
    cwd=ROOT,
  )


def steps_saved(workdir: pathlib.Path) -> list[int]:
  ckpt = workdir / 'checkpoints'
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.exists() else []


def wait_for_checkpoints(workdir, proc, count: int, timeout=120) -> None:
  deadline = time.time() + timeout
  while len(steps_saved(workdir)) < count:
    assert proc.poll() is None, proc.communicate()
    assert time.time() < deadline, 'no checkpoint appeared'
    time.sleep(0.05)


def final_params(workdir: pathlib.Path):
  step = steps_saved(workdir)[-1]
  state = ocp.StandardCheckpointer().restore(
    (workdir / 'checkpoints' / str(step) / 'state').absolute()
  )
  return step, state['params']


def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
  run_jdl('train', '--config', MLP, '--workdir', tmp_path / 'straight', *LONG, check=True)

  proc = start_jdl(tmp_path / 'killed')
  wait_for_checkpoints(tmp_path / 'killed', proc, 3)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = steps_saved(tmp_path / 'killed')
  assert saved and saved[-1] < 1200, 'the run was not interrupted mid-way'
  resumed = run_jdl('train', '--config', MLP, '--workdir', tmp_path / 'killed', *LONG, check=True)
  assert 'resumed at step' in resumed.stdout
  # Records written after the last checkpoint were trained again: none appears twice.
  logged = [r['step'] for r in read_metrics(tmp_path / 'killed')]
  assert logged == sorted(set(logged)) and logged[-1] == 1200

  step_a, params_a = final_params(tmp_path / 'straight')
  step_b, params_b = final_params(tmp_path / 'killed')
  assert step_a == step_b == 1200
  assert len(jax.tree.leaves(params_a)) == 6
  chex.assert_trees_all_equal(params_a, params_b)  # the same tree, bitwise (not approximately)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_a_stop_signal_checkpoints_and_exits_resumable(tmp_path, signum):
  proc = start_jdl(tmp_path, '--config.checkpoint_every_steps=400')
  wait_for_checkpoints(tmp_path, proc, 1)
  proc.send_signal(signum)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == errors.RESUMABLE, err
  assert 'Traceback' not in err
  name = signal.Signals(signum).name
  assert f'{name}: checkpoint saved at step' in out
  stopped_at = int(out.split(f'{name}: checkpoint saved at step ')[1].split(';')[0])
  assert steps_saved(tmp_path)[-1] == stopped_at
  assert stopped_at < 1200


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
  run_jdl(
    'train', '--config', MLP, '--workdir', tmp_path, '--config.keep_checkpoints=5', check=True
  )
  assert steps_saved(tmp_path) == [48, 56, 64, 72, 80]
  # Garble every data file of the newest checkpoint, as a crash mid-write or a bad disk would.
  for f in (tmp_path / 'checkpoints' / '80').rglob('*'):
    if f.is_file() and f.stat().st_size > 0 and f.suffix != '.json':
      f.write_bytes(b'\0garbage' * 4)
  for f in (tmp_path / 'checkpoints' / '80').rglob('*.json'):
    f.write_text('{not json')
  proc = run_jdl('eval', '--config', MLP, '--workdir', tmp_path, check=True)
  assert 'checkpoint at step 80 is unreadable' in proc.stdout
  # One line for the fallback: neither orbax's logged tracebacks nor ours.
  assert 'Traceback' not in proc.stderr and 'ERROR:absl' not in proc.stderr
  metrics = json.loads(proc.stdout[proc.stdout.index('{') :])
  assert metrics['step'] == 72
  assert (tmp_path / 'checkpoints.corrupt' / '80').is_dir()  # kept, not deleted
  assert steps_saved(tmp_path) == [48, 56, 64, 72]


def test_checkpoint_of_another_config_is_an_error_and_is_kept(tmp_path):
  run_jdl(
    'train', '--config', MLP, '--workdir', tmp_path, '--config.keep_checkpoints=2', check=True
  )
  assert steps_saved(tmp_path) == [72, 80]
  proc = run_jdl(
    'eval', '--config', MLP, '--workdir', tmp_path, '--config.model.features=(16, 2, 1)'
  )
  assert proc.returncode == 2
  assert 'does not fit this config' in proc.stderr
  assert 'is (10, 10) in the checkpoint, (10, 16) in the config' in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert steps_saved(tmp_path) == [72, 80]  # nothing moved: it is not corrupt
  assert not (tmp_path / 'checkpoints.corrupt').exists()


class NaNAtStep5(regression.Task):
  """Reports a NaN loss at step 5, as a diverging run would."""

  def train_step(self, plan, state, batch, key):
    new_state, metrics = super().train_step(plan, state, batch, key)
    metrics['loss'] = jax.numpy.where(new_state.step == 5, jax.numpy.nan, metrics['loss'])
    return new_state, metrics


def test_nan_loss_stops_the_run_naming_the_step(mlp_config, tmp_path, monkeypatch):
  monkeypatch.setattr(regression, 'Task', NaNAtStep5)
  with pytest.raises(loop.TrainingDiverged, match='loss is nan at step 5'):
    loop.train_and_evaluate(mlp_config, tmp_path)


def test_diverging_run_exits_nonzero_naming_the_step(tmp_path):
  proc = run_jdl(
    'train', '--config', MLP, '--workdir', tmp_path, '--config.optimizer.learning_rate=1e30'
  )
  assert proc.returncode == 3
  assert 'at step ' in proc.stderr and 'training stopped' in proc.stderr
