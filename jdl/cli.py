"""The `jdl` command: train, eval, params, list, figures, bench (and per-system tools).

JAX is imported only after the arguments are read, so that `--devices` and `--multihost` can
configure it before it starts. Exit codes (jdl/train/errors.py): 0 finished, 1 failed (a write,
a process, an unexpected error), 2 usage/config/data/checkpoint error (nothing changed),
3 diverged, 75 stopped early and resumable (SIGTERM, SIGINT, the max_seconds budget).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import sys
import textwrap

from jdl.paths import EXPERIMENTS, ROOT
from jdl.registry import BENCHMARKS, FIGURES, RUNS, TOOL_HELP, TOOLS, Figure

# The commands that take a config, and --config.FIELD=VALUE overrides after their flags.
CONFIG_COMMANDS = ('train', 'eval', 'params', 'compile')
CONFIG_HELP = """\
Config overrides: any field of the config is set by --config.FIELD=VALUE (or --config.FIELD
VALUE) after the other flags, e.g. --config.optimizer.learning_rate=0.1 or
--config.model.features='(20, 2, 1)'. A value is a Python literal, or a bare word for a string
field; a field the config does not have is an error that names the closest one. A variant of the
file is chosen by FILE:VARIANT (experiments/gpt/char_bible.py:smoke). With --config FILE, --help
lists that config's fields and variants."""


def _add_config_args(p: argparse.ArgumentParser, workdir: bool = True) -> None:
  p.add_argument('--config', required=True, help='experiments/<arch>/<name>.py[:variant]')
  if workdir:
    p.add_argument('--workdir', required=True, help='run folder: config, checkpoints, logs')
  p.add_argument(
    '--devices',
    type=int,
    default=0,
    help='simulate N CPU devices (to try data/FSDP/tensor parallel on a laptop)',
  )
  p.add_argument(
    '--multihost',
    action='store_true',
    help='call jax.distributed.initialize (also JDL_DISTRIBUTED=1); run the same '
    'command on every worker of a TPU pod slice',
  )


def _parser(config_help: str = '') -> argparse.ArgumentParser:
  """The command line; `config_help` (the fields and variants of a --config given with --help)
  ends the help of the commands that take a config."""
  from jdl import __version__

  p = argparse.ArgumentParser(
    prog='jdl',
    description=__doc__.splitlines()[0],
    epilog='Config overrides: --config.key=value (e.g. --config.optimizer.learning_rate=0.1); '
    '`jdl train --help` says more. `jdl COMMAND --help` for the flags of each command.',
  )
  p.add_argument('--version', action='version', version=f'jdl {__version__}')
  sub = p.add_subparsers(dest='command', required=True, metavar='COMMAND')
  t = sub.add_parser('train', help='train (or resume) an experiment in a workdir')
  _add_config_args(t)
  t.add_argument(
    '--fresh',
    action='store_true',
    help='start at step 0 when the workdir holds checkpoints none of which can be restored '
    '(they are moved to checkpoints.corrupt/); without it such a run stops',
  )
  e = sub.add_parser('eval', help="evaluate a workdir's latest checkpoint")
  _add_config_args(e)
  pr = sub.add_parser('params', help='parameter table, without allocating')
  _add_config_args(pr, workdir=False)
  pr.add_argument('--json', action='store_true')
  pr.add_argument('--depth', type=int, default=1, help='module path depth of the table')
  pr.add_argument('--mesh', default='', help='data=D,fsdp=F,tensor=T: bytes per device')
  sub.add_parser('list', help='experiments, figures and benchmarks')
  f = sub.add_parser(
    'figures',
    help='render figures (and index.html, a gallery of them) into figures/',
    description='Renders each figure whose runs exist, skips the others naming the command that '
    'trains them, prints a summary; exits 1 only when a figure fails. Runs are read from '
    'runs/ by default: --run NAME=DIR (a local folder or gs://...) reads another.',
  )
  f.add_argument('names', nargs='*', help=f'default: all ({", ".join(FIGURES)})')
  f.add_argument('--outdir', default='figures')
  f.add_argument('--workdir', default='', help='the run of the one figure named, if it reads one')
  f.add_argument(
    '--run',
    action='append',
    default=[],
    metavar='NAME=DIR',
    help=f'the workdir of run NAME ({", ".join(RUNS)})',
  )
  b = sub.add_parser('bench', help='run a benchmark')
  b.add_argument('name', choices=[*sorted(BENCHMARKS), 'all'], help='all: every quick mode')
  b.add_argument('--quick', action='store_true', help='a short run, to check that it works')
  b.add_argument(
    '--profile',
    metavar='DIR',
    default='',
    help='after the rounds, profile a few steps of jdl (jax.profiler) and of the PyTorch peer '
    '(torch.profiler) into DIR, with a table by op class',
  )
  b.add_argument(
    '--json',
    metavar='FILE',
    default='',
    help='the results (ratios, MFU, machine, versions, load) as JSON; with all: every '
    "benchmark's quick mode in one file",
  )
  c = sub.add_parser(
    'compile',
    help='compile the training step for a TPU slice on this CPU: memory per chip, FLOPs, time',
  )
  c.add_argument('--config', required=True, help='experiments/<arch>/<name>.py[:variant]')
  c.add_argument(
    '--topology',
    required=True,
    help="the slice: gcloud's accelerator type (v4-32, v5litepod-16, v5p-8, v6e-16) or JAX's "
    'topology (v5e:4x4, v4:2x2x4)',
  )
  c.add_argument('--mfu', type=float, default=0.4, help='model FLOPs utilization of the prediction')
  c.add_argument('--reserve', type=float, default=0.05, help='fraction of HBM kept free')
  c.add_argument('--sweep', action='store_true', help='several meshes and remat choices')
  c.add_argument('--json', action='store_true')
  for name in CONFIG_COMMANDS:
    sub.choices[name].formatter_class = argparse.RawDescriptionHelpFormatter
    sub.choices[name].epilog = CONFIG_HELP + (f'\n\n{config_help}' if config_help else '')
  for name in TOOLS:  # listed here, run by their own parsers (main passes them the arguments)
    sub.add_parser(name, help=TOOL_HELP.get(name, f'see jdl {name} --help'), add_help=False)
  return p


def _config_help(argv: list[str]) -> str:
  """For `jdl train --config FILE --help`: the fields and variants of FILE's config."""
  if not {'-h', '--help'} & set(argv):
    return ''
  spec = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), '')
  if '--config' in argv and argv.index('--config') + 1 < len(argv):
    spec = argv[argv.index('--config') + 1]
  if not spec or spec.startswith('-'):
    return ''
  from jdl import config as config_lib

  try:
    return config_lib.describe(spec)
  except config_lib.ConfigError as e:
    return f'(--config {spec}: {e})'


def _setup_jax(args) -> None:
  if getattr(args, 'devices', 0):
    os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  import jax

  if getattr(args, 'devices', 0):
    jax.config.update('jax_num_cpu_devices', args.devices)
  from jdl import sharding

  sharding.initialize_distributed(getattr(args, 'multihost', False))


def _load_config(args, extra: list[str]):
  from jdl import config as config_lib

  config = config_lib.load(args.config)
  rest = config_lib.apply_overrides(config, extra)
  if rest:
    raise config_lib.ConfigError(f'unrecognized arguments: {" ".join(rest)}')
  return config


def cmd_train(args, extra) -> int:
  from jdl.train import supervise

  if supervise.needed(args.multihost):  # a dead peer aborts training in C++: a parent says who
    return supervise.supervise(sys.argv[1:], args.workdir)
  config = _load_config(args, extra)
  _setup_jax(args)
  supervise.register(args.workdir)
  from jdl.train import errors, loop

  result = loop.Trainer(config).fit(args.workdir, fresh=args.fresh)
  if result['stopped'] == 'preempted':
    return errors.RESUMABLE
  final = {k: v for k, v in result['final'].items() if isinstance(v, float)}
  import jax

  if jax.process_index() == 0:
    print(
      (
        f'complete at step {result["step"]}; its final metrics: '
        if result['stopped'] == 'complete'
        else f'done: step {result["step"]} in {result["seconds"]:.1f}s; '
      )
      + ', '.join(f'{k} {v:.4g}' for k, v in final.items() if k != 'epoch')
    )
  return errors.RESUMABLE if result['stopped'] == 'max_seconds' else errors.FINISHED


def cmd_eval(args, extra) -> int:
  config = _load_config(args, extra)
  _setup_jax(args)
  from jdl.train import loop

  metrics = loop.evaluate_checkpoint(config, args.workdir)
  print(json.dumps(metrics, indent=2))
  return 0


def cmd_params(args, extra) -> int:
  config = _load_config(args, extra)
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  from jdl.train import params
  from jdl.train.task import get_task

  sizes = params.parse_mesh(args.mesh) if args.mesh else None
  task = get_task(config)
  abstract = params.abstract_params(task)
  counts = params.module_counts(abstract, args.depth)
  total = sum(counts.values())
  out = {'total': total, 'modules': dict(counts)}
  if args.mesh:
    out['mesh'] = sizes
    out['bytes_per_device'] = params.per_device_bytes(task, sizes)
  extra = task.params_report(abstract)
  if args.json:
    print(json.dumps(out, indent=2))
  else:
    print(params.format_table(counts, total))
    if extra:
      print('\n' + extra)
    if args.mesh:
      b = out['bytes_per_device']
      print(
        f'\nper device on mesh {sizes}: parameters {params.human_bytes(b["params"])}, '
        f'optimizer state {params.human_bytes(b["opt_state"])}'
      )
  return 0


def experiment_files() -> list[pathlib.Path]:
  return sorted(EXPERIMENTS.glob('*/*.py'))


def cmd_list(args, extra) -> int:
  # experiments/NAME works from any directory: it names the installed copy where no such file is
  # here (jdl.paths.config_file).
  print(f'Experiments in {EXPERIMENTS} (jdl train --config FILE --workdir DIR):')
  for path in experiment_files():
    doc = (path.read_text().split('"""')[1].strip().splitlines() or [''])[0]
    print(f'  experiments/{path.relative_to(EXPERIMENTS).as_posix()}\n      {doc}')
  print('\nFigures (jdl figures NAME):')
  for name in FIGURES:
    print(
      textwrap.fill(
        _figure(name).caption, 100, initial_indent=f'  {name:16s} ', subsequent_indent=' ' * 19
      )
    )
  print('\nBenchmarks (jdl bench NAME):')
  for name, (_, _, what) in BENCHMARKS.items():
    print(f'  {name:16s} {what}')
  return 0


def _figure(name: str) -> Figure:
  entry = FIGURES[name]
  # An entry written as (module, function, caption) still works, without a lecture section.
  return entry if isinstance(entry, Figure) else Figure(*entry, section='(not named)')


def _figure_commands(name: str, figure: Figure) -> list[str]:
  """The lines behind a figure: the runs it reads (with their time), then `jdl figures NAME`."""
  lines = []
  for run in dict.fromkeys(figure.runs.values()):
    lines.append(f'{RUNS[run].command}   # {RUNS[run].time}')
  return lines + [f'jdl figures {name}']


def _shown(workdir: str) -> str:
  """A workdir as messages and the gallery name it: relative to the repository when inside."""
  path = pathlib.Path(workdir)
  return (
    str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else workdir
  )


def _has_run(workdir: str) -> bool:
  from jdl import paths

  path = paths.workdir(workdir)
  return (path / 'config.json').exists() or (path / 'metrics.jsonl').exists()


class UsageError(Exception):
  """A wrong name or flag of `jdl figures`: exit 2, nothing drawn."""


def _run_dirs(args, names: list[str]) -> dict[str, str]:
  """Run name -> workdir: the conventional runs/ folders, then --run NAME=DIR, then --workdir
  (a figure that reads exactly one run)."""
  dirs = {name: str(ROOT / run.workdir) for name, run in RUNS.items()}
  for item in args.run:
    name, _, workdir = item.partition('=')
    if name not in RUNS or not workdir:
      raise UsageError(f'--run {item}: expected NAME=DIR with NAME one of {", ".join(RUNS)}')
    dirs[name] = workdir
  if args.workdir:
    runs = {run for name in names for run in _figure(name).runs.values()}
    if len(names) != 1 or len(_figure(names[0]).runs) != 1:
      raise UsageError(
        f'--workdir needs one figure that reads one run ({", ".join(names)} read '
        f'{", ".join(sorted(runs)) or "none"}): use --run NAME=DIR'
      )
    dirs[runs.pop()] = args.workdir
  return dirs


def _render(name: str, figure: Figure, outdir: pathlib.Path, dirs: dict) -> dict:
  """Draws one figure: {'status': rendered|skipped|error, 'files': [...], 'note': ...}."""
  import traceback

  kwargs, missing = {}, []
  for keyword, run in figure.runs.items():
    if _has_run(dirs[run]):
      kwargs[keyword] = dirs[run]
    else:
      missing.append(run)
      if keyword in figure.optional:
        kwargs[keyword] = None
  needed = [r for k, r in figure.runs.items() if k not in figure.optional and r in missing]
  if needed or (figure.runs and all(v is None for v in kwargs.values())):
    note = '; '.join(
      f'no run in {_shown(dirs[r])}: {RUNS[r].command} ({RUNS[r].time})'
      for r in (needed or missing)
    )
    return {'status': 'skipped', 'files': [], 'note': note}
  try:
    files = getattr(importlib.import_module(figure.module), figure.function)(outdir, **kwargs)
  except FileNotFoundError as e:  # data or a checkpoint missing: the message names the command
    return {'status': 'skipped', 'files': [], 'note': str(e)}
  except Exception as e:
    traceback.print_exc()
    return {'status': 'error', 'files': [], 'note': f'{type(e).__name__}: {e}'}
  files = [str(pathlib.Path(f)) for f in files]
  for path in files:
    print(f'{name}: wrote {path}')
  note = ', '.join(f'without {r} (no run in {_shown(dirs[r])})' for r in missing)
  return {'status': 'rendered', 'files': files, 'note': note}


def write_gallery(outdir: pathlib.Path, results: dict[str, dict]) -> pathlib.Path:
  """figures/index.html from the registry and gallery.json, the record of what each `jdl
  figures` run drew into this folder (a later run of one figure keeps the others)."""
  from jdl import plots

  record_path = outdir / 'gallery.json'
  record = json.loads(record_path.read_text()) if record_path.exists() else {}
  for name, result in results.items():
    if result['status'] == 'rendered' or name not in record or not record[name]['files']:
      record[name] = result
  record_path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + '\n')
  entries = []
  for name in FIGURES:
    figure, result = _figure(name), record.get(name, {'files': [], 'note': 'not drawn yet'})
    images = [
      pathlib.Path(f).name
      for f in result['files']
      if f.endswith('.png') and (outdir / pathlib.Path(f).name).exists()
    ]
    entries.append(
      {
        'name': name,
        'caption': figure.caption,
        'section': figure.section,
        'commands': _figure_commands(name, figure),
        'images': images,
        'note': result.get('note') or result.get('status', ''),
      }
    )
  path = outdir / 'index.html'
  path.write_text(plots.gallery_html(entries, "jdl: the lecture's figures"))
  return path


def cmd_figures(args, extra) -> int:
  names = args.names or list(FIGURES)
  unknown = [n for n in names if n not in FIGURES]
  try:
    if unknown:
      raise UsageError(f'unknown figure(s) {", ".join(unknown)}; known: {", ".join(FIGURES)}')
    dirs = _run_dirs(args, names)
  except UsageError as e:
    print(f'jdl figures: {e}', file=sys.stderr)
    return 2
  outdir = pathlib.Path(args.outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  results = {name: _render(name, _figure(name), outdir, dirs) for name in names}
  gallery = write_gallery(outdir, results)
  print(f'\n{"figure":14s} {"status":9s} {"files":>5s}  notes')
  for name, r in results.items():
    print(f'{name:14s} {r["status"]:9s} {len(r["files"]):5d}  {r["note"]}')
  counts = {s: sum(r['status'] == s for r in results.values()) for s in ('rendered', 'skipped')}
  errors = [name for name, r in results.items() if r['status'] == 'error']
  why = ' (a run or data is missing: the notes name the command)' if counts['skipped'] else ''
  print(
    f'\n{counts["rendered"]} rendered, {counts["skipped"]} skipped{why}, {len(errors)} failed; '
    f'gallery: {gallery}'
  )
  return 1 if errors else 0


def cmd_compile(args, extra) -> int:
  # The compiler runs on this machine's CPU: JAX needs no accelerator, libtpu only compiles.
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  config = _load_config(args, extra)
  from jdl.train import compile as compile_lib
  from jdl.train import cost

  topology = cost.topology(args.topology)
  if args.sweep:
    log = (lambda _: None) if args.json else (lambda text: print(text, flush=True))
    result = compile_lib.sweep(config, topology, args.mfu, args.reserve, log=log)
    print(json.dumps(result, indent=2) if args.json else compile_lib.format_sweep(result))
  else:
    report = compile_lib.compile_step(config, topology, args.mfu, args.reserve)
    print(json.dumps(report, indent=2) if args.json else compile_lib.format_report(report))
  return 0


def cmd_bench(args, extra) -> int:
  from jdl.bench import all as bench_all

  return bench_all.dispatch(
    BENCHMARKS, args.name, quick=args.quick, profile=args.profile, json=args.json
  )


COMMANDS = {
  'train': cmd_train,
  'eval': cmd_eval,
  'params': cmd_params,
  'list': cmd_list,
  'figures': cmd_figures,
  'bench': cmd_bench,
  'compile': cmd_compile,
}


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    try:
      return _main(argv)
    finally:
      sys.stdout.flush()  # a closed pipe shows here (also after --help), not at exit
  except BrokenPipeError:  # `jdl list | head`: the reader stopped reading; end quietly
    try:  # what is still buffered goes nowhere, rather than into a second error at exit
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
      pass
    return 1


def _main(argv: list[str]) -> int:
  if argv and argv[0] in TOOLS:
    name = argv[0]
    run = lambda: importlib.import_module(TOOLS[name]).main(argv[1:]) or 0
  else:
    parser = _parser(_config_help(argv))
    args, extra = parser.parse_known_args(argv)
    # only these take --config.*
    if extra and args.command not in CONFIG_COMMANDS:
      parser.error(f'unrecognized arguments: {" ".join(extra)}')
    name = args.command
    run = lambda: COMMANDS[name](args, extra)
  from jdl.config import ConfigError

  try:
    return run()
  except ConfigError as e:
    print(f'jdl {name}: config error: {e}', file=sys.stderr)
    return 2
  except FileNotFoundError as e:  # missing data or checkpoints: the message says what to run
    print(f'jdl {name}: {e}', file=sys.stderr)
    return 2
  except BrokenPipeError:  # to main, without importing JAX for the kinds below
    raise
  except Exception as e:
    from jdl.train import errors
    from jdl.train.checkpoint import CheckpointError
    from jdl.train.lock import WorkdirLocked
    from jdl.train.loop import TrainingDiverged

    codes = {
      errors.UsageError: errors.USAGE,  # a flag, file or run the command cannot use
      TrainingDiverged: errors.DIVERGED,
      CheckpointError: errors.USAGE,  # another config's run, or none restorable: nothing moved
      WorkdirLocked: errors.USAGE,
      errors.WriteFailed: errors.FAILED,
    }
    for kind, code in codes.items():
      if isinstance(e, kind):
        print(f'jdl {name}: {e}', file=sys.stderr)
        if isinstance(e, errors.WriteFailed):
          # orbax's writer threads, stuck on the failed store, would print tracebacks while
          # the interpreter shuts down: the message above is the whole story.
          sys.stdout.flush()
          sys.stderr.flush()
          os._exit(code)
        return code
    raise


if __name__ == '__main__':
  sys.exit(main())
