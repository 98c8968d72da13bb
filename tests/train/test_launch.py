"""`jdl launch` against a fake gcloud: a script first on PATH that records its arguments, keeps
the VM's state in a file, and answers each look at the run as the test's scenario says. The
scripts the workers run are run here too, in a shell, with a stand-in for `jdl train`."""

import json
import os
import shlex
import subprocess
import sys
import tarfile
import time

import pytest

from jdl import cli
from jdl.train import launch as launch_lib
from tests.conftest import ROOT

# scenario.json: the scripts to tell apart, and per run of the job the answers to the looks at
# it (the last one repeats): worker states, 'preempted' (the VM goes PREEMPTED, ssh fails), or
# ['PREEMPTED', states...] (the VM goes PREEMPTED as the workers report their exit codes).
FAKE_GCLOUD = r"""
import json, pathlib, re, shutil, sys

here = pathlib.Path(__file__).parent
args = sys.argv[1:]
with open(here / 'calls.jsonl', 'a') as f:
  f.write(json.dumps(args) + '\n')
scenario = json.loads((here / 'scenario.json').read_text())
vm = here / 'vm'


def counter(name, bump=False):
  path = here / name
  n = int(path.read_text()) if path.exists() else 0
  if bump:
    n += 1
    path.write_text(str(n))
  return n


verb = args[3]  # gcloud compute tpus tpu-vm VERB
if verb == 'create':
  if vm.exists():
    sys.exit('ERROR: (gcloud.compute.tpus.tpu-vm.create) ALREADY_EXISTS')
  vm.write_text('READY')
elif verb == 'describe':
  if not vm.exists():
    sys.exit('ERROR: (gcloud.compute.tpus.tpu-vm.describe) NOT_FOUND: Resource not found')
  print(vm.read_text())
elif verb == 'delete':
  vm.unlink(missing_ok=True)
elif verb == 'scp':
  shutil.copy(args[4], here / 'archive.tar.gz')
elif verb == 'ssh':
  if not vm.exists() or vm.read_text() != 'READY':
    sys.exit(255)  # ssh cannot connect
  command = next(a for a in args if a.startswith('--command='))[len('--command='):]
  run = counter('runs')
  if command == scenario['install']:
    sys.exit(scenario['install_exit'])
  elif command == scenario['status']:
    polls = scenario['runs'][max(run, 1) - 1]
    poll = polls[min(counter(f'polls-{run}', bump=True), len(polls)) - 1]
    if poll == 'preempted':
      vm.write_text('PREEMPTED')
      sys.exit(255)
    if poll[0] == 'PREEMPTED':
      vm.write_text('PREEMPTED')
      poll = poll[1:]
    print('\n'.join(f'jdl-launch: {s}' for s in poll))
  elif command.startswith('tail -c +'):
    offset = int(re.match(r'tail -c \+(\d+)', command)[1])
    sys.stdout.write(f'step 100 of run {run}\n'[offset - 1:])
  elif command.startswith('cat '):
    print(f'the log of run {run}')
  elif command.startswith('mkdir -p ~/jdl-launch'):
    counter('runs', bump=True)
"""
SMOKE = 'experiments/gpt/char_bible.py:smoke'
TRAIN = ['train', '--config', SMOKE, '--workdir', 'gs://bucket/run', '--config.batch_size=16']
RUNNING = ['running'] * 4
FINISHED = ['exit 0'] * 4
MAIN = ('create', 'scp', 'install', 'run', 'delete')


@pytest.fixture
def gcloud(tmp_path, monkeypatch):
  """The fake's folder: the script, its scenario, the calls it got, the VM's state."""
  folder = tmp_path / 'bin'
  folder.mkdir()
  script = folder / 'gcloud'
  script.write_text(f'#!{sys.executable}\n{FAKE_GCLOUD}')
  script.chmod(0o755)
  monkeypatch.setenv('PATH', f'{folder}{os.pathsep}{os.environ["PATH"]}')
  return folder


def launch(gcloud, capsys, runs, *options, train=TRAIN, install_exit=0):
  scenario = {
    'install': launch_lib.INSTALL,
    'status': launch_lib.STATUS,
    'runs': runs,
    'install_exit': install_exit,
  }
  (gcloud / 'scenario.json').write_text(json.dumps(scenario))
  argv = ['--name', 'tpu1', '--zone', 'us-west4-a', '--accelerator', 'v5litepod-16', '--poll', '0']
  code = cli.main(['launch', *argv, *options, '--', *train])
  out, err = capsys.readouterr()
  return code, out, err


def calls(gcloud) -> list[list[str]]:
  path = gcloud / 'calls.jsonl'
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def command(args: list[str]) -> str:
  return next(a for a in args if a.startswith('--command='))[len('--command=') :]


def step(args: list[str]) -> str:
  """What a gcloud call does: its verb, or for ssh the script it runs."""
  if args[3] != 'ssh':
    return args[3]
  c = command(args)
  scripts = {launch_lib.INSTALL: 'install', launch_lib.STATUS: 'status', launch_lib.STOP: 'stop'}
  if c in scripts:
    return scripts[c]
  return 'log' if c.startswith(('tail', 'cat')) else 'run'


def steps(gcloud, only=MAIN) -> list[str]:
  return [s for s in map(step, calls(gcloud)) if s in only]


def test_dry_run_prints_every_command_and_runs_none(gcloud, capsys):
  train = ['train', '--config', 'experiments/gpt/gpt2_small.py', '--workdir', 'gs://b/gpt2']
  code, out, _ = launch(gcloud, capsys, [], '--spot', '--dry-run', train=train)
  assert code == 0 and calls(gcloud) == []
  commands = [shlex.split(line) for line in out.splitlines() if not line.startswith('#')]
  assert commands[0] == shlex.split(
    'jdl compile --config experiments/gpt/gpt2_small.py --topology v5litepod-16 --json'
  )
  verbs = [step(c[1:]) for c in commands[1:]]  # the fake records gcloud's arguments
  assert verbs == ['create', 'scp', 'install', 'run', 'status', 'log', 'describe', 'delete']
  create = commands[1]
  for flag in ('--accelerator-type=v5litepod-16', '--version=v2-alpha-tpuv5-lite', '--spot'):
    assert flag in create
  assert '--worker=all' in commands[2] and '--worker=all' in commands[4]
  assert '.venv/bin/jdl train --multihost --config experiments/gpt/gpt2_small.py' in out
  assert 'PREEMPTED or TERMINATED' in out


def test_launch_compiles_creates_copies_installs_runs_streams_and_deletes(gcloud, capsys):
  """The compile check runs for real: the smoke GPT on 16 chips of v5e fits."""
  env = '--env=TFDS_DATA_DIR=gs://bucket/tensorflow_datasets'
  code, out, err = launch(gcloud, capsys, [[RUNNING, RUNNING, FINISHED]], env)
  assert code == 0, err
  assert 'fits on v5litepod-16: 16 x Google TPU v5e, per chip: needed' in err
  assert steps(gcloud) == list(MAIN)
  assert steps(gcloud, only=('status',)) == ['status'] * 3
  every = calls(gcloud)
  run = command(next(c for c in every if step(c) == 'run'))
  assert (
    'env TFDS_DATA_DIR=gs://bucket/tensorflow_datasets .venv/bin/jdl train --multihost '
    f'--config {SMOKE} --workdir gs://bucket/run --config.batch_size=16' in run
  )
  assert all('--worker=all' in c for c in every if step(c) in ('install', 'run', 'status'))
  assert all('--worker=0' in c for c in every if step(c) == 'log')
  assert out == 'step 100 of run 1\n'  # worker 0's log, each byte once

  with tarfile.open(gcloud / 'archive.tar.gz') as tar:
    names = set(tar.getnames())
  assert {'pyproject.toml', 'jdl/train/launch.py', 'experiments/gpt/char_bible.py'} <= names
  assert not any(n.startswith(('.venv/', '.git/', 'runs/')) or '__pycache__' in n for n in names)
  assert all((ROOT / n).is_file() for n in names)


def test_a_config_that_does_not_fit_is_refused_before_any_gcloud_call(gcloud, capsys):
  train = ['train', '--config', 'experiments/gpt/gpt3_175b.py', '--workdir', 'gs://b/gpt3']
  train.append('--config.mesh.tensor=1')  # the recipe's tensor groups of 8 chips need 8
  (gcloud / 'scenario.json').write_text('{}')
  code = cli.main(
    ['launch', '--name', 'big', '--zone', 'us-west4-a', '--accelerator', 'v5litepod-4', '--']
    + train
  )
  err = capsys.readouterr().err
  assert code == 2 and calls(gcloud) == []
  assert 'does not fit on v5litepod-4: 4 x Google TPU v5e, per chip: needed at least' in err
  assert 'GiB usable' in err and 'parameters 162.' in err and 'RESOURCE_EXHAUSTED' in err


@pytest.mark.parametrize('keep', [False, True])
def test_a_worker_failure_ends_the_launch_failed(gcloud, capsys, keep):
  runs = [[RUNNING, ['running', 'exit 1', 'running', 'running']]]
  code, _, err = launch(gcloud, capsys, runs, '--no-compile', *(['--keep'] if keep else []))
  assert code == 1 and 'the run failed' in err
  assert steps(gcloud) == ['create', 'scp', 'install', 'run'] + ([] if keep else ['delete'])
  assert (gcloud / 'vm').exists() == keep
  assert ('jdl launch delete tpu1 --zone us-west4-a' in err) == keep


def test_a_failed_install_ends_the_launch_and_deletes_the_slice(gcloud, capsys):
  code, _, _ = launch(gcloud, capsys, [], '--no-compile', install_exit=1)
  assert code == 1
  assert steps(gcloud, only=MAIN + ('describe',)) == [
    'create',
    'scp',
    'install',
    'describe',
    'delete',
  ]


def test_a_vm_of_that_name_is_not_ours_to_delete(gcloud, capsys):
  (gcloud / 'vm').write_text('READY')
  code, _, _ = launch(gcloud, capsys, [], '--no-compile')
  assert code == 1 and steps(gcloud) == ['create'] and (gcloud / 'vm').exists()


@pytest.mark.parametrize(
  'preemption',
  ['preempted', ['PREEMPTED'] + ['exit 75'] * 4, ['running', 'lost', 'running', 'running']],
  ids=['ssh-fails', 'exit-75', 'lost'],
)
def test_a_preempted_slice_is_recreated_and_the_same_command_resumes(gcloud, capsys, preemption):
  runs = [[RUNNING, preemption], [RUNNING, FINISHED]]
  code, out, err = launch(gcloud, capsys, runs, '--no-compile', '--spot')
  assert code == 0, err
  assert steps(gcloud) == list(MAIN) * 2
  creates = [c for c in calls(gcloud) if step(c) == 'create']
  assert all('--spot' in c for c in creates)
  first, second = [command(c) for c in calls(gcloud) if step(c) == 'run']
  assert first == second  # the workdir's last checkpoint is where `jdl train` resumes
  assert 'recreating the slice (retry 1 of 5)' in err
  assert out == 'step 100 of run 1\nstep 100 of run 2\n'


def test_exit_75_on_a_ready_slice_runs_again_on_it(gcloud, capsys):
  runs = [[['exit 75'] * 4], [FINISHED]]
  code, _, err = launch(gcloud, capsys, runs, '--no-compile')
  assert code == 0 and 'running it again on the slice' in err
  assert steps(gcloud) == ['create', 'scp', 'install', 'run', 'run', 'delete']


def test_retries_are_limited(gcloud, capsys):
  code, _, err = launch(gcloud, capsys, [['preempted']] * 2, '--no-compile', '--max-retries=1')
  assert code == 75 and '--max-retries 1 spent' in err
  assert steps(gcloud) == list(MAIN) * 2 and not (gcloud / 'vm').exists()


def test_a_stopped_run_is_not_run_again(gcloud, capsys):
  runs = [[RUNNING, ['stopped', 'running', 'exit 75'], ['stopped'] + ['exit 75'] * 4]]
  code, _, err = launch(gcloud, capsys, runs, '--no-compile')
  assert code == 75 and 'stopped (`jdl launch stop`)' in err
  assert steps(gcloud) == list(MAIN)


def test_status_logs_stop_and_delete(gcloud, capfd):
  """`logs` passes gcloud's output straight through: capfd reads it."""
  (gcloud / 'scenario.json').write_text(
    json.dumps({'install': '', 'status': launch_lib.STATUS, 'runs': [[RUNNING]]})
  )
  (gcloud / 'vm').write_text('READY')
  where = ['tpu1', '--zone', 'us-west4-a', '--project', 'p1']
  assert cli.main(['launch', 'status', *where]) == 0
  assert capfd.readouterr().out == 'tpu1: READY\nrun: running, running, running, running\n'
  assert cli.main(['launch', 'logs', *where, '--worker', '2']) == 0
  assert capfd.readouterr().out == 'the log of run 0\n'
  assert cli.main(['launch', 'stop', *where]) == 0
  assert cli.main(['launch', 'delete', *where]) == 0
  every = calls(gcloud)
  assert [step(c) for c in every] == ['describe', 'status', 'log', 'stop', 'delete']
  assert all('--zone=us-west4-a' in c and '--project=p1' in c for c in every)
  assert '--worker=2' in every[2] and '--worker=all' in every[3]
  assert not (gcloud / 'vm').exists()
  assert cli.main(['launch', 'status', *where]) == 0
  assert capfd.readouterr().out == 'tpu1: GONE\n'


@pytest.mark.parametrize(
  'train, message',
  [
    (['train', '--config', SMOKE, '--workdir', 'runs/x'], 'needs a gs:// workdir'),
    (['eval', '--config', SMOKE, '--workdir', 'gs://b/x'], 'after --, give the run: train'),
    (['train', '--config', SMOKE, '--workdir', 'gs://b/x', '--devices', '8'], "'--devices'"),
    (['train', '--config', '/etc/passwd', '--workdir', 'gs://b/x'], 'file of the repository'),
  ],
)
def test_usage_errors_stop_before_any_gcloud_call(gcloud, capsys, train, message):
  code, _, err = launch(gcloud, capsys, [], train=train)
  assert code == 2 and message in err and calls(gcloud) == []


def worker(tmp_path, script: str) -> str:
  """Runs a worker's script in a shell whose home is tmp_path; returns its output."""
  env = {'HOME': str(tmp_path), 'PATH': os.environ['PATH']}
  return subprocess.run(
    ['bash', '-c', script], env=env, capture_output=True, text=True, timeout=20, check=True
  ).stdout


def wait_for_state(tmp_path, wanted: str) -> str:
  for _ in range(100):
    text = worker(tmp_path, launch_lib.STATUS)
    if wanted in text:
      return text
    time.sleep(0.1)
  raise AssertionError(f'no {wanted!r} in {text!r}')


def test_the_workers_scripts_detach_the_run_record_its_exit_code_and_stop_it(tmp_path):
  """The stand-in for `jdl train` prints its arguments, then exits JOB_EXIT after JOB_SECONDS;
  SIGTERM makes it exit 75, as `jdl train` does after its checkpoint."""
  venv = tmp_path / 'jdl' / '.venv' / 'bin'
  venv.mkdir(parents=True)
  (venv / 'jdl').write_text(
    f'#!{sys.executable}\n'
    'import os, signal, sys, time\n'
    'signal.signal(signal.SIGTERM, lambda *_: sys.exit(75))\n'
    "print('jdl', *sys.argv[1:], flush=True)\n"
    "time.sleep(float(os.environ['JOB_SECONDS']))\n"
    "sys.exit(int(os.environ['JOB_EXIT']))\n"
  )
  (venv / 'jdl').chmod(0o755)
  train = ['train', '--multihost', '--config', 'experiments/x.py:a b', '--workdir', 'gs://b/r']
  assert worker(tmp_path, launch_lib.STATUS) == 'jdl-launch: lost\n'  # never started here

  start = time.perf_counter()
  worker(tmp_path, launch_lib.start_script(train, ['JOB_SECONDS=2', 'JOB_EXIT=3']))
  assert time.perf_counter() - start < 2  # returned while the run goes on: the ssh can close
  assert worker(tmp_path, launch_lib.STATUS) == 'jdl-launch: running\n'
  assert wait_for_state(tmp_path, 'exit') == 'jdl-launch: exit 3\n'
  log = 'jdl train --multihost --config experiments/x.py:a b --workdir gs://b/r\n'
  assert worker(tmp_path, launch_lib.log_script(0)) == log
  assert worker(tmp_path, launch_lib.log_script(4)) == log[4:]

  worker(tmp_path, launch_lib.start_script(train, ['JOB_SECONDS=60', 'JOB_EXIT=0']))
  wait_for_state(tmp_path, 'running')
  for _ in range(100):  # the stand-in prints once its SIGTERM handler is in place
    if worker(tmp_path, launch_lib.log_script(0)):
      break
    time.sleep(0.1)
  worker(tmp_path, launch_lib.STOP)
  assert wait_for_state(tmp_path, 'exit') == 'jdl-launch: stopped\njdl-launch: exit 75\n'


def test_an_interrupted_launch_leaves_the_slice_and_its_run(gcloud, capsys, monkeypatch):
  def interrupt(seconds):
    raise KeyboardInterrupt

  monkeypatch.setattr(launch_lib.time, 'sleep', interrupt)
  code, _, err = launch(gcloud, capsys, [[RUNNING]], '--no-compile')
  assert code == 130 and 'left as they are' in err
  assert steps(gcloud) == ['create', 'scp', 'install', 'run'] and (gcloud / 'vm').exists()
