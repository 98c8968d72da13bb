"""Two local processes (jax.distributed over 127.0.0.1, gloo CPU collectives, 2 x 4 devices)
train exactly as one process with 8 devices does; a SIGTERM to one checkpoints both; when one dies,
the other says which."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import portpicker

from jdl.train import errors, supervise
from jdl.train.run import read_metrics
from tests.conftest import MLP, ROOT, run_jdl

ARGS = [
  '--config.num_epochs=3',
  '--config.log_every_steps=1',
  '--config.eval_every_steps=8',
  '--config.checkpoint_every_steps=-1',
]


def losses(workdir):
  lines = read_metrics(workdir)
  return [l['loss'] for l in lines if 'loss' in l], [
    l['validation_loss'] for l in lines if 'validation_loss' in l
  ]


def start_two(workdir, *args) -> list[subprocess.Popen]:
  """`jdl train --multihost` as processes 0 and 1 of a run, 4 CPU devices each."""
  port = portpicker.pick_unused_port()
  procs = []
  for pid in range(2):
    env = dict(
      os.environ,
      JAX_PLATFORMS='cpu',
      JDL_COORDINATOR=f'127.0.0.1:{port}',
      JDL_NUM_PROCESSES='2',
      JDL_PROCESS_ID=str(pid),
      JDL_HEARTBEAT_SECONDS='10',  # a dead peer is declared within seconds, not JAX's 100
    )
    procs.append(
      subprocess.Popen(
        [
          sys.executable,
          '-m',
          'jdl',
          'train',
          '--config',
          MLP,
          '--workdir',
          str(workdir),
          '--devices',
          '4',
          '--multihost',
          *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
      )
    )
  return procs


def wait_for_training(workdir, procs) -> None:
  """Until three log lines are written: both processes are past compiling, in the loop."""
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 120
  while not (metrics.exists() and metrics.read_text().count('\n') >= 3):
    assert time.time() < deadline and all(p.poll() is None for p in procs)
    time.sleep(0.1)


LONG = [
  '--config.num_epochs=2000',
  '--config.eval_every_steps=-1',
  '--config.checkpoint_every_steps=-1',
  '--config.log_every_steps=8',
]


def test_two_processes_equal_one(tmp_path):
  run_jdl(
    'train', '--config', MLP, '--workdir', tmp_path / 'one', '--devices', '8', *ARGS, check=True
  )

  procs = start_two(tmp_path / 'two', *ARGS)
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err
  assert '8 cpu device(s), 2 process(es)' in outs[0][0]
  # Only process 0 reports (gloo itself prints connection lines on every rank).
  assert 'parameters; mesh' not in outs[1][0] and '[step ' not in outs[1][0]
  # A run that ends normally leaves no process records behind.
  assert not list((tmp_path / 'two' / supervise.FOLDER).iterdir())

  train_one, val_one = losses(tmp_path / 'one')
  train_two, val_two = losses(tmp_path / 'two')
  assert len(train_one) == 24 and len(val_one) == 3
  np.testing.assert_allclose(train_two, train_one, rtol=1e-5)
  np.testing.assert_allclose(val_two, val_one, rtol=1e-5)


def test_sigterm_to_one_process_checkpoints_both_at_one_step(tmp_path):
  procs = start_two(tmp_path, *LONG)
  wait_for_training(tmp_path, procs)
  procs[1].send_signal(signal.SIGTERM)  # the notice reaches one host only
  outs = [p.communicate(timeout=120) for p in procs]
  codes = [p.returncode for p in procs]
  assert codes == [errors.RESUMABLE] * 2, outs[0][1][-2000:] + outs[1][1][-2000:]
  assert 'SIGTERM: checkpoint saved at step' in outs[0][0]
  saved = [int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()]
  assert len(saved) == 1 and 0 < saved[0] < 16000


def test_a_dead_peer_is_named(tmp_path):
  procs = start_two(tmp_path, *LONG)
  wait_for_training(tmp_path, procs)
  # The training process of process 1 (not its supervisor) dies as an OOM kill would kill it.
  (record,) = (tmp_path / supervise.FOLDER).glob('*-1.json')
  peer = json.loads(record.read_text())
  os.kill(peer['pid'], signal.SIGKILL)
  # The survivor stops at its next collective (gloo aborts) or when the JAX distributed service
  # misses the dead process's heartbeats (100 s).
  outs = [p.communicate(timeout=240) for p in procs]
  assert [p.returncode for p in procs] == [errors.FAILED] * 2
  who = f'process 1 of 2 (host {socket.gethostname()}, PID {peer["pid"]})'
  last = outs[0][1].rstrip().splitlines()[-1]
  assert last == (
    f'jdl train: {who} died (killed by SIGKILL); '
    'this process (0 of 2) stopped because its collective with it failed'
  ), outs[0][1][-3000:]
  assert outs[1][1].rstrip().splitlines()[-1] == f'jdl train: {who} died (killed by SIGKILL)'
