"""Runs never lose or fake their state: unreadable checkpoints stop the run (or, asked, start it
afresh) and are never deleted; a non-finite state is never saved; one run per workdir; a full
disk stops the run naming the file and keeps the last checkpoint; exit codes say how it ended."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from jdl.tasks import regression
from jdl.train import errors, loop
from jdl.train.lock import LOCK_FILE, WorkdirLock, WorkdirLocked
from jdl.train.run import read_metrics
from tests.conftest import MLP, ROOT, run_jdl


def garble(checkpoint) -> None:
  """Every file of a checkpoint overwritten, as a bad disk would leave it."""
  for f in checkpoint.rglob('*'):
    if f.is_file():
      f.write_bytes(b'{not json\0garbage')


def steps_in(folder) -> list[str]:
  return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_no_restorable_checkpoint_stops_the_run_and_fresh_starts_over(tmp_path):
  run_jdl('train', '--config', MLP + ':smoke', '--workdir', tmp_path, check=True)
  saved = steps_in(tmp_path / 'checkpoints')
  assert len(saved) >= 2
  for step in saved:
    garble(tmp_path / 'checkpoints' / step)

  proc = run_jdl('train', '--config', MLP + ':smoke', '--workdir', tmp_path)
  assert proc.returncode == errors.USAGE, proc.stderr
  assert f'none of the {len(saved)} checkpoints' in proc.stderr and '--fresh' in proc.stderr
  assert all(f'step {s}:' in proc.stderr for s in saved) and 'Traceback' not in proc.stderr
  assert steps_in(tmp_path / 'checkpoints') == saved  # nothing moved
  assert not (tmp_path / 'checkpoints.corrupt').exists()

  proc = run_jdl('train', '--config', MLP + ':smoke', '--workdir', tmp_path, '--fresh', check=True)
  assert 'resumed' not in proc.stdout
  assert steps_in(tmp_path / 'checkpoints.corrupt') == saved
  # The same steps go bad again: the second copies are kept beside the first.
  for step in steps_in(tmp_path / 'checkpoints'):
    garble(tmp_path / 'checkpoints' / step)
  run_jdl('train', '--config', MLP + ':smoke', '--workdir', tmp_path, '--fresh', check=True)
  kept = steps_in(tmp_path / 'checkpoints.corrupt')
  assert kept == sorted(saved + [f'{s}.1' for s in saved])
  logged = [r['step'] for r in read_metrics(tmp_path)]
  assert logged == sorted(set(logged))  # each fresh start rewrote the history it replaced


class BlowsUpInStep8(regression.Task):
  """The parameters become NaN in step 8 while its loss (computed before the update) is finite:
  a guard on the loss alone would save them at the checkpoint of step 8."""

  def train_step(self, plan, state, batch, key):
    new_state, metrics = super().train_step(plan, state, batch, key)
    poison = jax.numpy.where(new_state.step >= 8, jax.numpy.nan, 0.0)
    params = jax.tree.map(lambda p: p + poison, new_state.params)
    return new_state.replace(params=params), metrics


def test_a_non_finite_state_is_never_checkpointed(mlp_config, tmp_path, monkeypatch):
  monkeypatch.setattr(regression, 'Task', BlowsUpInStep8)
  mlp_config.checkpoint_every_steps = 4
  mlp_config.log_every_steps = 4
  with pytest.raises(loop.TrainingDiverged, match='NaN or infinite values at step 8'):
    loop.train_and_evaluate(mlp_config, tmp_path)
  assert steps_in(tmp_path / 'checkpoints') == ['4']
  # What was saved is whole and finite: every array of the state, in its own shape and dtype.
  trainer = loop.Trainer(mlp_config)
  step, saved, _ = trainer.restore(tmp_path)
  assert step == 4
  chex.assert_tree_all_finite((saved.params, saved.opt_state))
  chex.assert_trees_all_equal_shapes_and_dtypes(saved, trainer.abstract_state)


class ChangesShapeAtStep3(regression.Task):
  """A loader whose third batch has an extra feature column: the loop stops there, naming the
  step and the field, before the steps compile again for it."""

  def load_data(self):
    data = super().load_data()
    rows = data.train

    class Source:
      calls = 0

      def __len__(self):
        return len(rows['x'])

      def batch(self, indices, rng):
        Source.calls += 1
        x = rows['x'][indices]
        return {
          'x': np.pad(x, ((0, 0), (0, 1))) if Source.calls >= 3 else x,
          'y': rows['y'][indices],
        }

    return dataclasses.replace(data, train=Source())


def test_a_batch_of_other_shapes_stops_the_run_naming_the_step(mlp_config, tmp_path, monkeypatch):
  monkeypatch.setattr(regression, 'Task', ChangesShapeAtStep3)
  with pytest.raises(
    RuntimeError, match=r"batches of step 3 are not .*'x'.*\(32, 11\) != \(32, 10\)"
  ):
    loop.train_and_evaluate(mlp_config, tmp_path)


def test_one_run_per_workdir(tmp_path):
  holder = subprocess.Popen(
    [sys.executable, '-m', 'jdl', 'train', '--config', MLP, '--workdir', str(tmp_path),
     '--config.num_epochs=100000', '--config.checkpoint_every_steps=-1'],
    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    env=dict(os.environ, JAX_PLATFORMS='cpu'),
  )  # fmt: skip
  try:
    deadline = time.time() + 120
    while not (tmp_path / 'metrics.jsonl').exists():
      assert holder.poll() is None and time.time() < deadline, holder.communicate()
      time.sleep(0.1)
    proc = run_jdl('train', '--config', MLP, '--workdir', tmp_path, '--config.seed=1')
    assert proc.returncode == errors.USAGE
    assert 'in use by another jdl run (host ' in proc.stderr
    assert f'PID {holder.pid}' in proc.stderr and 'Traceback' not in proc.stderr
  finally:
    holder.send_signal(signal.SIGTERM)
    holder.communicate(timeout=60)
  assert json.loads((tmp_path / 'config.json').read_text())['seed'] == 0  # not overwritten


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True).stdout.strip()  # fmt: skip
  (tmp_path / LOCK_FILE).write_text(json.dumps({'host': 'h', 'pid': int(dead), 'started': 'x'}))
  said = []
  with WorkdirLock(tmp_path, log=said.append):
    assert said == [f'taking over the lock of {tmp_path} left by host h, PID {dead}, started x, '
                    'which ended']  # fmt: skip
    with pytest.raises(WorkdirLocked, match=f'PID {os.getpid()}'):
      subprocess_lock = WorkdirLock(tmp_path)
      # flock locks belong to open file descriptions: a second one in this process conflicts too.
      subprocess_lock.acquire()
  assert (tmp_path / LOCK_FILE).read_text() == ''  # released


def test_a_full_disk_stops_the_run_naming_the_file_and_keeps_the_last_checkpoint(tmp_path):
  disk = tmp_path / 'disk'
  disk.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', str(disk)])
  assert mounted.returncode == 0, 'the test mounts a small tmpfs (it runs as root here and in CI)'
  try:
    workdir = disk / 'run'
    proc = subprocess.Popen(
      [sys.executable, '-m', 'jdl', 'train', '--config', MLP, '--workdir', str(workdir),
       '--config.num_epochs=100000', '--config.checkpoint_every_steps=4000',
       '--config.log_every_steps=4000', '--config.eval_every_steps=-1'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
    )  # fmt: skip
    deadline = time.time() + 120
    while not [s for s in steps_in(workdir / 'checkpoints') if s.isdigit()]:
      assert proc.poll() is None and time.time() < deadline, proc.communicate()
      time.sleep(0.01)
    # Paused just after a checkpoint was finalised, long before the next is due, the disk is
    # filled to the last byte: the next write of the run finds it full.
    proc.send_signal(signal.SIGSTOP)
    with open(disk / 'filler', 'wb') as f:
      try:
        while True:
          f.write(b'\0' * (1 << 16))
          f.flush()
      except OSError:
        pass
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == errors.FAILED, err
    assert 'Traceback' not in err and 'failed' in err
    assert str(workdir) in err and ('No space left' in err or 'RESOURCE_EXHAUSTED' in err)
    (disk / 'filler').unlink()
    # Nothing was half-written: the newest checkpoint is the one before the disk filled.
    last = max(int(s) for s in steps_in(workdir / 'checkpoints') if s.isdigit())
    evaluated = run_jdl('eval', '--config', MLP, '--workdir', workdir, check=True)
    assert json.loads(evaluated.stdout[evaluated.stdout.index('{') :])['step'] == last
  finally:
    subprocess.run(['umount', str(disk)])
