"""A gs:// workdir, on a Cloud Storage emulator on 127.0.0.1: a run trained there, killed with
SIGKILL and resumed is bitwise the same run as a local one (checkpoint, metrics, TensorBoard,
plot, evaluation); a second run there is refused by the lease of the first; a stale lease is
taken over."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from etils import epath
from google.cloud import storage
from tensorboardX.proto import event_pb2

from jdl import cli
from jdl.train.lock import LOCK_FILE, WorkdirLock, WorkdirLocked
from jdl.train.run import checkpoint_steps, load_run, read_metrics
from tests.conftest import MLP, ROOT, run_jdl
from tests.gcs_emulator import BUCKET

# 10 epochs of 8 steps, each checkpointed, evaluated and logged.
TRAIN = ['--config', MLP]
STEPS = 80
TIMING = ('seconds', 'steps_per_sec', 'examples_per_sec_per_device', 'mfu')  # the wall clock


def start_jdl(workdir, env: dict) -> subprocess.Popen:
  return subprocess.Popen(
    [sys.executable, '-m', 'jdl', 'train', *TRAIN, '--workdir', str(workdir)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=dict(os.environ, JAX_PLATFORMS='cpu', **env),
    cwd=ROOT,
  )


def untimed(records: list[dict]) -> list[dict]:
  return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def scalars(events: epath.Path, tag: str) -> dict[int, float]:
  """step -> value of one tag in the TensorBoard event files of a folder (TFRecord framing: a
  length, its CRC, the record, its CRC)."""
  out = {}
  for path in sorted(events.iterdir()):
    data, at = path.read_bytes(), 0
    while at < len(data):
      (length,) = struct.unpack_from('<Q', data, at)
      event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
      at += 12 + length + 4
      for value in event.summary.value:
        if value.tag == tag:
          out[event.step] = value.simple_value
  return out


def test_a_gs_run_killed_and_resumed_is_bitwise_the_local_run(gcs, tmp_path, capsys):
  local, remote = tmp_path / 'local', f'gs://{BUCKET}/run'
  reference = start_jdl(local, {})
  first = start_jdl(remote, gcs)
  deadline = time.time() + 120
  while not checkpoint_steps(remote):
    assert first.poll() is None, first.communicate()
    assert time.time() < deadline, 'no checkpoint appeared'
    time.sleep(0.1)
  first.send_signal(signal.SIGSTOP)  # mid-run, holding its lease, until killed
  assert first.poll() is None, 'the run ended before the test could stop it'

  # A second run on the workdir while the first holds it: refused, naming the holder.
  holder = f'host {socket.gethostname()}, PID {first.pid}'
  assert cli.main(['train', *TRAIN, '--workdir', remote]) == 2
  assert f'{remote} is in use by another jdl run ({holder}' in capsys.readouterr().err

  first.send_signal(signal.SIGKILL)
  first.wait()
  assert checkpoint_steps(remote)[-1] < STEPS
  resumed = run_jdl('train', *TRAIN, '--workdir', remote, env=gcs, check=True)
  assert f'taking over the lock of {remote} left by {holder}' in resumed.stdout
  assert 'which ended' in resumed.stdout and 'resumed at step' in resumed.stdout
  out, err = reference.communicate(timeout=300)
  assert reference.returncode == 0, err
  assert not epath.Path(f'{remote}/{LOCK_FILE}').exists()  # released at the end

  gs_run, local_run = load_run(remote), load_run(local)
  assert gs_run.step == local_run.step == STEPS
  params = [jax.tree.leaves(run.state.params) for run in (gs_run, local_run)]
  assert len(params[0]) == len(params[1]) == 6
  for a, b in zip(*params):
    assert np.array_equal(np.asarray(a), np.asarray(b))  # bitwise, not approximately
  history = untimed(read_metrics(remote))
  assert [r['step'] for r in history] == list(range(8, STEPS + 1, 8))  # no step twice
  assert history == untimed(read_metrics(local))
  # TensorBoard's scalars (the killed run's file and the resumed one's) are the same values.
  loss = {r['step']: np.float32(r['loss']) for r in history}
  assert scalars(epath.Path(remote) / 'tensorboard', 'loss') == loss
  # The task's report: its plot, through jdl.plots.
  assert (epath.Path(remote) / 'history.png').read_bytes() == (local / 'history.png').read_bytes()

  evaluated = []
  for workdir in (remote, local):
    assert cli.main(['eval', *TRAIN, '--workdir', str(workdir)]) == 0
    out = capsys.readouterr().out
    evaluated.append(json.loads(out[out.index('{') :]))
  assert evaluated[0] == evaluated[1] and evaluated[0]['step'] == STEPS


def test_a_live_lease_refuses_a_second_run_and_a_stale_one_is_taken_over(gcs):
  workdir = f'gs://{BUCKET}/leased'
  said = []
  # Renewed every 0.2 s and valid 1 s here, 30 s and 120 s in a run.
  lease = dict(renew_every=0.2, valid_for=1.0)
  with WorkdirLock(workdir, log=said.append, **lease):
    time.sleep(1.5)  # longer than the lease lasts: the heartbeat has renewed it
    with pytest.raises(WorkdirLocked, match=f'host {socket.gethostname()}, PID {os.getpid()}'):
      WorkdirLock(workdir, **lease).acquire()
  assert said == [] and not epath.Path(f'{workdir}/{LOCK_FILE}').exists()

  # A lease left by a run on another machine that stopped renewing it.
  gone = {'host': 'tpu-vm-7', 'pid': 4242, 'started': '2026-01-01T00:00:00'}
  blob = storage.Client().bucket(BUCKET).blob(f'leased/{LOCK_FILE}')
  blob.upload_from_string(json.dumps(gone), if_generation_match=0)
  with pytest.raises(WorkdirLocked, match='host tpu-vm-7, PID 4242'):
    WorkdirLock(workdir, **lease).acquire()
  time.sleep(1.2)
  with WorkdirLock(workdir, log=said.append, **lease):
    (message,) = said
    assert message.startswith(
      f'taking over the lock of {workdir} left by host tpu-vm-7, PID 4242, started '
      '2026-01-01T00:00:00, which has not renewed it for '
    )
    assert json.loads(blob.download_as_bytes())['pid'] == os.getpid()
  assert not blob.exists()
