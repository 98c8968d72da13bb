"""`jdl launch`: a `jdl train` run on a Cloud TPU slice from one command, through the gcloud CLI.

  jdl launch --name N --zone Z --accelerator v5litepod-16 [--spot] -- train --config FILE
      --workdir gs://BUCKET/RUN [--config.key=value ...]

1. compile  `jdl compile` for the slice, on this machine, with the config and overrides given after
            `--`: a config that does not fit in the chips' memory is refused (exit 2) before
            anything is paid for.
2. create   `gcloud compute tpus tpu-vm create` (a Spot VM with --spot). A TPU VM rather than a
            queued resource: create returns when the slice is READY (or with gcloud's error), and
            a preempted VM stays, in state PREEMPTED, where `describe` finds it; a queued
            resource would be polled through states of its own and deleted with --force.
3. copy     the working tree as one tarball to every worker (`tpu-vm scp --worker=all`): git's
            tracked and untracked files that are not ignored, uncommitted changes included.
4. install  on every worker: uv, a venv with Python 3.11 (jax 0.10 needs 3.11 or newer, and jdl
            is tested on 3.11; uv downloads it where the system has another, such as the 3.10
            of the Ubuntu 22.04 images), and jdl with the `tpu` extra.
5. run      `jdl train --multihost ...` on every worker, detached from the ssh session (setsid and
            nohup, output into ~/jdl-launch/log): a dropped connection does not stop it.
6. watch    every --poll seconds: each worker's state (running, or its exit code), and worker 0's
            new log lines, printed here.
7. delete   the VM, however the run ended, unless --keep.

Preemption. A slice found PREEMPTED or TERMINATED (by `describe`, when its workers stop answering
or the run ends), or one where the run vanished from a worker without an exit code (the VM
restarted), is deleted and created again, the tree copied and jdl installed, and the same command
runs again: `jdl train` resumes from the last checkpoint in the gs:// workdir. A run that
exits 75 (RESUMABLE: SIGTERM, the config's max_seconds) on a slice still READY runs again on it.
Each counts against --max-retries. A VM that no longer exists was deleted (a preempted one stays
until deleted), by `jdl launch delete` or by hand: the launch ends there. This process does all
of it, so it must live as long as the run (tmux, nohup, a small always-on VM); interrupted, it
leaves the slice and the run as they are.

Exit codes: the run's (0 finished, 1 failed, 2 usage, 3 diverged), 1 when a gcloud step failed,
2 for a config that does not fit, 75 when the retries are spent or `jdl launch stop` stopped the
run (the workdir holds its last checkpoint), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import json
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from jdl.config import ConfigError
from jdl.paths import ROOT
from jdl.train import cost, errors

# The runtime (VM image) per TPU generation that Google lists for JAX (cloud.google.com/tpu/docs/
# runtimes); --version names another.
RUNTIMES = {
  'v4': 'tpu-ubuntu2204-base',
  'v5e': 'v2-alpha-tpuv5-lite',
  'v5p': 'v2-alpha-tpuv5',
  'v6e': 'v2-alpha-tpuv6e',
}
POLL = 30.0  # seconds between looks at the run
MAX_RETRIES = 5
UNREACHABLE = 10  # looks in a row at a READY slice whose workers do not answer: the launch fails
SSH_TIMEOUT = 300  # seconds one look (state or log) may take
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
PREEMPTED = ('PREEMPTED', 'TERMINATED')
GONE = 'GONE'  # what `state` says of a VM that does not exist

# On every worker, in the home folder: the tarball, the tree (with its .venv), the run's files.
ARCHIVE = 'jdl.tar.gz'
TREE = 'jdl'
RUN = 'jdl-launch'  # log, pid, exit (the exit code), stopped (left by `jdl launch stop`)

INSTALL = ' && '.join(
  [
    f'rm -rf ~/{TREE} && mkdir -p ~/{TREE} && tar -xzf ~/{ARCHIVE} -C ~/{TREE}',
    'export PATH="$HOME/.local/bin:$PATH"',
    '{ command -v uv > /dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh; }',
    f'uv venv --python 3.11 ~/{TREE}/.venv',
    f'uv pip install --python ~/{TREE}/.venv/bin/python -e "$HOME/{TREE}[tpu]"',
  ]
)
# One line per worker; `lost`: no exit code and no process (never started, or the VM restarted).
STATUS = (
  f'cd ~/{RUN} 2> /dev/null || {{ echo "jdl-launch: lost"; exit 0; }}; '
  '[ -f stopped ] && echo "jdl-launch: stopped"; '
  'if [ -s exit ]; then echo "jdl-launch: exit $(cat exit)"; '
  'elif kill -0 "$(cat pid 2> /dev/null)" 2> /dev/null; then echo "jdl-launch: running"; '
  'else echo "jdl-launch: lost"; fi'
)
# SIGTERM to `jdl train`, which checkpoints and exits 75; the mark keeps a watching launch from
# running it again.
STOP = f'touch ~/{RUN}/stopped && kill -TERM "$(cat ~/{RUN}/pid)"'
_STATE_LINE = re.compile(r'jdl-launch: (running|lost|stopped|exit (\d+))')


def start_script(train: list[str], env: list[str]) -> str:
  """Starts `jdl train` on a worker in a session of its own and returns once it has a PID (so
  that the first look finds it running); the job writes its exit code into ~/jdl-launch."""
  job = shlex.join([*(['env', *env] if env else []), '.venv/bin/jdl', *train])
  wrapper = f'{job} & echo $! > ~/{RUN}/pid; wait $!; echo $? > ~/{RUN}/exit'
  return (
    f'mkdir -p ~/{RUN} && rm -f ~/{RUN}/exit ~/{RUN}/pid ~/{RUN}/stopped && cd ~/{TREE} && '
    f'{{ setsid nohup bash -c {shlex.quote(wrapper)} > ~/{RUN}/log 2>&1 < /dev/null & }} && '
    f'for _ in $(seq 100); do [ -s ~/{RUN}/pid ] && break; sleep 0.1; done'
  )


def log_script(offset: int) -> str:
  """Worker 0's log from byte `offset` on."""
  return f'tail -c +{offset + 1} ~/{RUN}/log 2> /dev/null'


@dataclasses.dataclass(frozen=True)
class Gcloud:
  """The gcloud command lines for one TPU VM. --quiet: no prompt can hold up an unattended run
  (an ssh key is made without a passphrase, delete does not ask)."""

  name: str
  zone: str
  project: str | None = None

  def _tpu_vm(self, *words: str) -> list[str]:
    scope = [f'--zone={self.zone}'] + ([f'--project={self.project}'] if self.project else [])
    return ['gcloud', 'compute', 'tpus', 'tpu-vm', *words, *scope, '--quiet']

  def create(self, accelerator: str, version: str, spot: bool) -> list[str]:
    spot_flag = ['--spot'] if spot else []
    return self._tpu_vm(
      'create', self.name, f'--accelerator-type={accelerator}', f'--version={version}', *spot_flag
    )

  def scp(self, archive: str) -> list[str]:
    return self._tpu_vm('scp', archive, f'{self.name}:{ARCHIVE}', '--worker=all')

  def ssh(self, command: str, worker: str = 'all') -> list[str]:
    return self._tpu_vm('ssh', self.name, f'--worker={worker}', f'--command={command}')

  def describe(self) -> list[str]:
    return self._tpu_vm('describe', self.name, '--format=value(state)')

  def delete(self) -> list[str]:
    return self._tpu_vm('delete', self.name)


def say(text: str) -> None:
  print(f'jdl launch: {text}', file=sys.stderr, flush=True)


def _run(argv: list[str], echo: bool = True, capture: bool = False, timeout: float | None = None):
  """(exit code, stdout bytes, stderr text); a timeout reads as exit code 124."""
  if echo:
    say('$ ' + shlex.join(argv))
  try:
    proc = subprocess.run(argv, capture_output=capture, timeout=timeout)
  except subprocess.TimeoutExpired:
    return 124, b'', 'timed out'
  return proc.returncode, proc.stdout or b'', (proc.stderr or b'').decode(errors='replace')


def state(gcloud: Gcloud) -> str | None:
  """The VM's state (READY, PREEMPTED, ...), GONE when it does not exist, None when gcloud could
  not tell."""
  code, out, err = _run(gcloud.describe(), echo=False, capture=True, timeout=SSH_TIMEOUT)
  if code == 0:
    return out.decode().strip()
  return GONE if 'NOT_FOUND' in err else None


def worker_states(text: str) -> tuple[list[str], bool]:
  """Each worker's 'running', 'lost' or exit code (as text), and whether the run was stopped."""
  states, stopped = [], False
  for m in _STATE_LINE.finditer(text):
    if m[1] == 'stopped':
      stopped = True
    else:
      states.append(m[2] or m[1])
  return states, stopped


# ---- what runs on the slice ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
  train: list[str]  # the workers' `jdl train ...` arguments
  config: str  # the config as `jdl compile` here takes it: repository path[:variant]
  overrides: list[str]


def job(argv: list[str]) -> Job:
  """The command after `--`: `train --config FILE --workdir gs://... [--fresh] [overrides]`."""
  usage = 'after --, give the run: train --config FILE --workdir gs://BUCKET/RUN [--config.k=v]'
  if not argv or argv[0] != 'train':
    raise ConfigError(usage)
  p = argparse.ArgumentParser(prog='jdl launch -- train', allow_abbrev=False, add_help=False)
  p.add_argument('--config', required=True)
  p.add_argument('--workdir', required=True)
  p.add_argument('--fresh', action='store_true')
  p.add_argument('--multihost', action='store_true')  # implied
  try:
    args, rest = p.parse_known_args(argv[1:])
  except SystemExit:
    raise ConfigError(usage) from None
  i = 0
  while i < len(rest):
    if not rest[i].startswith('--config.'):
      raise ConfigError(f'{rest[i]!r}: on a slice, `jdl train` takes --config.key=value overrides')
    i += 1 if '=' in rest[i] else 2
  if not args.workdir.startswith('gs://'):
    raise ConfigError(
      f'--workdir {args.workdir}: a launched run needs a gs:// workdir (a VM disk goes with its '
      'VM, and a recreated slice resumes from the workdir)'
    )
  path, colon, variant = args.config.partition(':')
  file = pathlib.Path(path).resolve()
  if not file.is_file():
    raise ConfigError(f'config file not found: {path}')
  if not file.is_relative_to(ROOT):
    raise ConfigError(
      f'{path}: the config must be a file of the repository ({ROOT}), which is copied'
    )
  config = str(file.relative_to(ROOT)) + colon + variant
  train = ['train', '--multihost', '--config', config, '--workdir', args.workdir]
  return Job(train + (['--fresh'] if args.fresh else []) + rest, config, rest)


def compile_argv(j: Job, accelerator: str) -> list[str]:
  return ['jdl', 'compile', '--config', j.config, '--topology', accelerator, '--json', *j.overrides]


def _gib(n: float) -> str:
  return f'{n / 2**30:,.2f} GiB'


def check_fits(j: Job, accelerator: str) -> int:
  """`jdl compile` of the run for the slice (in its own process: libtpu compiles there); 0 when
  it fits, else the exit code, with the memory numbers."""
  argv = compile_argv(j, accelerator)
  say(
    f'compiling the training step for {accelerator} here (minutes for a large model): '
    + shlex.join(argv)
  )
  proc = subprocess.run([sys.executable, '-m', *argv], cwd=ROOT, capture_output=True, text=True)
  if proc.returncode:
    sys.stderr.write(proc.stderr)
    if 'libtpu is not installed' in proc.stderr:
      say('--no-compile launches without this check')
    return proc.returncode
  report = json.loads(proc.stdout)
  m = report['memory']
  needed = m.get('needed', m.get('needed_at_least'))
  numbers = (
    f'{report["chips"]} x {report["chip"]}, per chip: needed '
    f'{"at least " if "needed" not in m else ""}{_gib(needed)} of {_gib(m["usable"])} usable '
    f'(HBM {_gib(m["hbm"])} less a reserve of {_gib(m["reserve"])}); parameters '
    f'{_gib(m["params"])}, optimizer state {_gib(m["opt_state"])}'
  )
  if report['fits']:
    say(f'fits on {accelerator}: {numbers}')
    return 0
  say(f'does not fit on {accelerator}: {numbers}')
  if 'compiler_message' in m:
    say(f'the TPU compiler: {m["compiler_message"]}')
  say('nothing was created; `jdl compile --sweep` compares meshes and rematerialization')
  return errors.USAGE


def tree_files() -> list[str]:
  """The repository's files a worker gets: tracked (and still there) or untracked, not ignored."""
  try:
    out = subprocess.run(
      ['git', '-C', str(ROOT), 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
      capture_output=True,
      check=True,
    ).stdout
  except (OSError, subprocess.CalledProcessError) as e:
    raise ConfigError(
      f'jdl launch copies the git checkout at {ROOT}: git ls-files failed ({e})'
    ) from None
  names = sorted({n for n in out.decode().split('\0') if n})
  return [n for n in names if (ROOT / n).is_file()]


def write_archive(files: list[str], path: pathlib.Path) -> None:
  with tarfile.open(path, 'w:gz') as tar:
    for name in files:
      tar.add(ROOT / name, arcname=name, recursive=False)


# ---- the launch --------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
  kind: str  # finished, failed, stopped, gone; preempted and resumable are retried
  code: int


class Launch:
  def __init__(self, args, j: Job, gcloud: Gcloud, archive: pathlib.Path):
    self.args, self.job, self.gcloud, self.archive = args, j, gcloud, archive
    self.topology = cost.topology(args.accelerator)
    self.version = args.version or RUNTIMES[self.topology.generation]
    self.owned = False  # whether this launch created the VM (and so deletes it)

  def run(self) -> int:
    retries, stage = 0, 'create'
    try:
      while True:
        outcome = self.attempt(stage, retries)
        if outcome.kind not in ('preempted', 'resumable'):
          break
        if retries == self.args.max_retries:
          say(
            f'{outcome.kind} again and --max-retries {retries} spent; the workdir holds the last '
            'checkpoint: the same `jdl launch` continues the run'
          )
          outcome = Outcome('exhausted', errors.RESUMABLE)
          break
        retries += 1
        stage = 'create' if outcome.kind == 'preempted' else 'start'
        what = 'recreating the slice' if stage == 'create' else 'running it again on the slice'
        say(f'{outcome.kind}: {what} (retry {retries} of {self.args.max_retries})')
    except KeyboardInterrupt:
      name, zone = self.gcloud.name, self.gcloud.zone
      say(
        f'interrupted: the slice {name} and its run are left as they are; see them with '
        f'`jdl launch status|logs {name} --zone {zone}`, end them with `jdl launch stop|delete`'
      )
      return INTERRUPTED
    if outcome.kind == 'gone' or not self.owned:
      return outcome.code
    if self.args.keep:
      say(
        f'kept {self.gcloud.name} (--keep); `jdl launch delete {self.gcloud.name} --zone '
        f'{self.gcloud.zone}` deletes it'
      )
    else:
      _run(self.gcloud.delete())
    return outcome.code

  def attempt(self, stage: str, retries: int) -> Outcome:
    """(Re)creates the slice and sets it up when `stage` is 'create', then runs and watches."""
    if stage == 'create':
      if retries:
        time.sleep(self.args.poll)  # a preempted slice's capacity rarely comes back at once
        if state(self.gcloud) != GONE:
          _run(self.gcloud.delete())
      code, _, _ = _run(self.gcloud.create(self.topology.gcloud_name, self.version, self.args.spot))
      if code and not self.owned:  # nothing was made, or the name is another VM's: keep off
        return Outcome('failed', errors.FAILED)
      if code:  # after a preemption: the capacity may come back
        say('creating the slice again failed')
        return Outcome('preempted', errors.RESUMABLE)
      self.owned = True
      for argv in (self.gcloud.scp(str(self.archive)), self.gcloud.ssh(INSTALL)):
        if _run(argv)[0]:
          return self.after_failure()
    if _run(self.gcloud.ssh(start_script(self.job.train, self.args.env)))[0]:
      return self.after_failure()
    return self.watch()

  def after_failure(self) -> Outcome:
    """A gcloud step failed: a preempted slice is retried, anything else ends the launch."""
    s = state(self.gcloud)
    if s in PREEMPTED:
      return Outcome('preempted', errors.RESUMABLE)
    if s == GONE:
      say(f'{self.gcloud.name} no longer exists (deleted)')
      return Outcome('gone', errors.FAILED)
    return Outcome('failed', errors.FAILED)

  def watch(self) -> Outcome:
    offset, unreachable = 0, 0
    text = codecs.getincrementaldecoder('utf-8')(errors='replace')  # a character may straddle
    while True:
      time.sleep(self.args.poll)
      code, out, _ = _run(self.gcloud.ssh(STATUS), echo=False, capture=True, timeout=SSH_TIMEOUT)
      states, stopped = worker_states(out.decode(errors='replace'))
      if code or not states:
        s = state(self.gcloud)
        if s in PREEMPTED or s == GONE:
          return self.after_failure()
        unreachable += 1
        if unreachable == UNREACHABLE:
          say(
            f'no answer from the workers of {self.gcloud.name} ({s}) {UNREACHABLE} times in a row'
          )
          return Outcome('failed', errors.FAILED)
        continue
      unreachable = 0
      offset = self.stream_log(offset, text)
      codes = [int(s) for s in states if s.isdigit()]
      failed = [c for c in codes if c not in (errors.FINISHED, errors.RESUMABLE)]
      if 'running' in states and not failed and 'lost' not in states:
        continue
      if stopped:
        say('stopped (`jdl launch stop`): the workdir holds the last checkpoint')
        return Outcome('stopped', errors.RESUMABLE)
      if state(self.gcloud) in PREEMPTED:  # a slice going down ends its processes anyhow
        return Outcome('preempted', errors.RESUMABLE)
      if failed:
        say(f'the run failed; the workers: {", ".join(states)}')
        return Outcome('failed', failed[0])
      if 'lost' in states:  # gone without an exit code: the VM restarted, a fresh one is clean
        say(f'the run is gone from a worker without an exit code; the workers: {", ".join(states)}')
        return Outcome('preempted', errors.RESUMABLE)
      if errors.RESUMABLE in codes:
        return Outcome('resumable', errors.RESUMABLE)
      say('the run finished')
      return Outcome('finished', errors.FINISHED)

  def stream_log(self, offset: int, text) -> int:
    """Prints worker 0's log from byte `offset` on; returns the new offset."""
    code, out, _ = _run(
      self.gcloud.ssh(log_script(offset), worker='0'), echo=False, capture=True, timeout=SSH_TIMEOUT
    )
    if code:
      return offset
    sys.stdout.write(text.decode(out))
    sys.stdout.flush()
    return offset + len(out)


def dry_run(args, j: Job, gcloud: Gcloud) -> int:
  """Prints the commands of a launch without running any."""
  topology = cost.topology(args.accelerator)
  version = args.version or RUNTIMES[topology.generation]
  archive = f'{tempfile.gettempdir()}/jdl-launch-XXXX/{ARCHIVE}'
  steps = [
    (
      'compile the training step for the slice here; a config that does not fit stops here',
      compile_argv(j, topology.gcloud_name),
    ),
    (
      f'archive the working tree (git ls-files --cached --others --exclude-standard): {archive}',
      None,
    ),
    ('create the slice', gcloud.create(topology.gcloud_name, version, args.spot)),
    ('copy the tree to every worker', gcloud.scp(archive)),
    ('install Python 3.11 and jdl[tpu] on every worker', gcloud.ssh(INSTALL)),
    ('run, detached, on every worker', gcloud.ssh(start_script(j.train, args.env))),
    (
      f"every {args.poll:g} s until every worker has an exit code: their states, worker 0's new "
      "log lines, and the VM's state when they do not answer or the run ends",
      None,
    ),
    ('', gcloud.ssh(STATUS)),
    ('', gcloud.ssh(log_script(0), worker='0')),
    ('', gcloud.describe()),
    (
      'PREEMPTED or TERMINATED, or the run gone from a worker without an exit code: delete, '
      f'create, copy, install and run again; exit 75 on a READY slice: run again; at most '
      f'{args.max_retries} times',
      None,
    ),
  ]
  steps.append(
    ('keep the slice (--keep)', None) if args.keep else ('delete the slice', gcloud.delete())
  )
  for note, argv in steps:
    if note:
      print(f'# {note}')
    if argv:
      print(shlex.join(argv))
  return 0


# ---- the command -------------------------------------------------------------------------------

USAGE = """jdl launch --name N --zone Z --accelerator TYPE [options] -- train --config FILE
                  --workdir gs://BUCKET/RUN [--config.key=value ...]
       jdl launch status|logs|stop|delete N --zone Z [--project P]"""
ALIVE = (
  'The launching process watches the run, recreates a preempted slice and deletes it at the end: '
  'it must stay alive as long as the run. Run it under tmux or nohup on a machine that stays on '
  '(a laptop that sleeps does not; a small e2 VM does). Interrupted, it leaves the slice and the '
  'run going: `jdl launch status|logs|stop|delete` reach them.'
)


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog='jdl launch',
    usage=USAGE,
    description=__doc__.splitlines()[0] + ' ' + ALIVE,
    allow_abbrev=False,
  )
  p.add_argument('--name', required=True, help='the TPU VM')
  p.add_argument('--zone', required=True, help='e.g. us-west4-a (one that has the accelerator)')
  p.add_argument(
    '--accelerator',
    required=True,
    help='gcloud accelerator type (v5litepod-16 = 16 chips, v4-32 = 16 chips: v4 and v5p count '
    'TensorCores) or JAX topology (v5e:4x4)',
  )
  p.add_argument('--project', help="gcloud's default project otherwise")
  defaults = ', '.join(f'{g}: {image}' for g, image in RUNTIMES.items())
  p.add_argument(
    '--version', help=f'TPU runtime (VM image); by default, per generation, {defaults}'
  )
  p.add_argument('--spot', action='store_true', help='a Spot VM: cheaper, can be preempted')
  p.add_argument(
    '--max-retries',
    type=int,
    default=MAX_RETRIES,
    help=f'recreations after a preemption and reruns after exit 75, together ({MAX_RETRIES})',
  )
  p.add_argument(
    '--poll', type=float, default=POLL, help=f'seconds between looks at the run ({POLL:g})'
  )
  p.add_argument(
    '--env',
    action='append',
    default=[],
    metavar='KEY=VALUE',
    help='environment of the run (e.g. TFDS_DATA_DIR=gs://BUCKET/tensorflow_datasets)',
  )
  p.add_argument('--keep', action='store_true', help='do not delete the slice at the end')
  p.add_argument('--no-compile', action='store_true', help='skip the `jdl compile` check')
  p.add_argument('--dry-run', action='store_true', help='print the commands, run none')
  return p


def _subcommand(argv: list[str]) -> int:
  p = argparse.ArgumentParser(prog=f'jdl launch {argv[0]}', allow_abbrev=False)
  p.add_argument('name')
  p.add_argument('--zone', required=True)
  p.add_argument('--project')
  if argv[0] == 'logs':
    p.add_argument('--worker', default='0', help='whose log (each worker writes its own)')
  args = p.parse_args(argv[1:])
  gcloud = Gcloud(args.name, args.zone, args.project)
  if argv[0] == 'delete':
    return _run(gcloud.delete())[0]
  if argv[0] == 'stop':
    return _run(gcloud.ssh(STOP))[0]
  if argv[0] == 'logs':
    return _run(gcloud.ssh(f'cat ~/{RUN}/log', worker=args.worker), echo=False)[0]
  s = state(gcloud)
  print(f'{args.name}: {s or "unknown (gcloud could not tell)"}')
  if s == 'READY':
    code, out, _ = _run(gcloud.ssh(STATUS), echo=False, capture=True, timeout=SSH_TIMEOUT)
    states, stopped = worker_states(out.decode(errors='replace'))
    print(f'run: {", ".join(states) or "no answer"}{" (stopped)" if stopped else ""}')
  return 0 if s else errors.FAILED


def main(argv: list[str]) -> int:
  if argv and argv[0] in ('status', 'logs', 'stop', 'delete'):
    return _subcommand(argv)
  p = _parser()
  split = argv.index('--') if '--' in argv else len(argv)
  args = p.parse_args(argv[:split])
  if split == len(argv):
    p.error('give the run after --: -- train --config FILE --workdir gs://BUCKET/RUN')
  for item in args.env:
    if not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*=.*', item):
      p.error(f'--env {item}: KEY=VALUE')
  j = job(argv[split + 1 :])
  topology = cost.topology(args.accelerator)
  gcloud = Gcloud(args.name, args.zone, args.project)
  if args.dry_run:
    return dry_run(args, j, gcloud)
  if shutil.which('gcloud') is None:
    raise ConfigError('gcloud is not on PATH: install the Google Cloud CLI (cloud.google.com/sdk)')
  files = tree_files()
  if j.config.partition(':')[0] not in files:
    raise ConfigError(f'{j.config} is ignored by git, so it would not reach the workers')
  if not args.no_compile and (code := check_fits(j, topology.gcloud_name)):
    return code
  with tempfile.TemporaryDirectory(prefix='jdl-launch-') as tmp:
    archive = pathlib.Path(tmp) / ARCHIVE
    write_archive(files, archive)
    say(f'{len(files)} files of {ROOT} in {archive} ({archive.stat().st_size / 2**20:.1f} MiB)')
    return Launch(args, j, gcloud, archive).run()
