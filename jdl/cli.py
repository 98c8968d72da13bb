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

from jdl.paths import EXPERIMENTS, ROOT

# name -> (module, function, what it shows). Each function takes the output folder and returns
# the files it wrote.
FIGURES = {
  'mlp': ('jdl.mlp.figures', 'render', "the Keras MLP's training history beside sklearn's"),
  'cnn': (
    'jdl.cnn.figures',
    'render_cnn',
    'simple convnet on Fashion-MNIST: curves, test predictions, confusion matrix',
  ),
  'tensors': (
    'jdl.cnn.figures',
    'render_tensors',
    "the lecture's tensors of rank 2-5, as real batches from jdl's loaders",
  ),
  'funsearch': (
    'jdl.binpack.figures',
    'funsearch',
    "FunSearch's bin-packing table recomputed, and jdl's search curve",
  ),
  'rnn_memory': (
    'jdl.rnn.figures',
    'render',
    'adding problem: test MSE against T for LSTM, Elman and Jordan (measured)',
  ),
  'gpt_family': (
    'jdl.gpt.figures',
    'render_gpt_family',
    "the lecture's GPT-1/2/3 table with jdl's exact parameter counts",
  ),
  'gpt3_compute': (
    'jdl.gpt.figures',
    'render_gpt3_compute',
    "GPT-3's training-compute table (Table D.1) beside jdl's 6ND and exact FLOPs",
  ),
  'gpt3_data_mix': (
    'jdl.gpt.figures',
    'render_gpt3_data_mix',
    "GPT-3's data mix: epochs at 300B tokens recomputed from weights and sizes",
  ),
  'generative': ('jdl.generative.figures', 'render', 'VAE, GAN, CycleGAN: images and scores'),
  'attention': ('jdl.transformer.figures', 'render_attention', 'Transformer attention per head'),
  'next_token': ('jdl.transformer.figures', 'render_next_token', 'next-token probabilities'),
  'bleu_time': ('jdl.transformer.figures', 'render_bleu_time', 'BLEU vs time, jdl and torch'),
}
# name -> (module, function, what it measures)
BENCHMARKS = {
  'mlp': ('jdl.mlp.bench', 'main', 'MLP seconds per epoch against Keras 3 (JAX backend)'),
  'cnn': ('jdl.cnn.bench', 'main', 'simple convnet images/s against Keras 3 (JAX backend)'),
  'binpack': (
    'jdl.binpack.bench',
    'main',
    'scoring a heuristic on Weibull 100k (JAX vs NumPy); candidates per minute',
  ),
  'gpt': (
    'jdl.gpt.bench',
    'main',
    'GPT 6L/d384 tokens/s and MFU against HF transformers GPT-2 (PyTorch, CPU)',
  ),
  'transformer': ('jdl.transformer.bench', 'main', 'tokens/s vs PyTorch nn.Transformer'),
  'lstm': (
    'jdl.rnn.bench',
    'main',
    'char LSTM (512 units, batch 64, seq 128) characters/s against PyTorch nn.LSTM',
  ),
}
# Tools that bring their own sub-commands: `jdl NAME ...` -> module.main(argv)
TOOLS = {
  'binpack': 'jdl.binpack.cli',
  'compute': 'jdl.gpt.compute',
  'launch': 'jdl.train.launch',
  'sample': 'jdl.gpt.sample',
  'translate': 'jdl.transformer.evaluate',
}


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


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog='jdl',
    description=__doc__.splitlines()[0],
    epilog='Config overrides: --config.key=value (e.g. --config.optimizer.learning_rate=0.1).',
  )
  sub = p.add_subparsers(dest='command', required=True)
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
  f = sub.add_parser('figures', help='render figures into figures/')
  f.add_argument('names', nargs='*', help='default: all')
  f.add_argument('--outdir', default='figures')
  b = sub.add_parser('bench', help='run a benchmark')
  b.add_argument('name', choices=sorted(BENCHMARKS))
  b.add_argument('--quick', action='store_true', help='a short run, to check that it works')
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
  return p


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
      f'done: step {result["step"]} in {result["seconds"]:.1f}s; '
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

  task = get_task(config)
  abstract = params.abstract_params(task)
  counts = params.module_counts(abstract, args.depth)
  total = sum(counts.values())
  out = {'total': total, 'modules': dict(counts)}
  if args.mesh:
    sizes = {'data': 1, 'fsdp': 1, 'tensor': 1}
    for item in args.mesh.split(','):
      key, _, value = item.partition('=')
      if key not in sizes:
        raise SystemExit(f"jdl params: --mesh axis '{key}' is not one of data, fsdp, tensor")
      sizes[key] = int(value)
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
  print('Experiments (jdl train --config FILE --workdir DIR):')
  for path in experiment_files():
    doc = (path.read_text().split('"""')[1].strip().splitlines() or [''])[0]
    print(f'  {path.relative_to(ROOT)}\n      {doc}')
  print('\nFigures (jdl figures NAME):')
  for name, (_, _, what) in FIGURES.items():
    print(f'  {name:16s} {what}')
  print('\nBenchmarks (jdl bench NAME):')
  for name, (_, _, what) in BENCHMARKS.items():
    print(f'  {name:16s} {what}')
  return 0


def cmd_figures(args, extra) -> int:
  names = args.names or list(FIGURES)
  unknown = [n for n in names if n not in FIGURES]
  if unknown:
    raise SystemExit(f'jdl figures: unknown figure(s) {unknown}; known: {sorted(FIGURES)}')
  outdir = pathlib.Path(args.outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  for name in names:
    module, function, _ = FIGURES[name]
    for path in getattr(importlib.import_module(module), function)(outdir):
      print(f'{name}: wrote {path}')
  return 0


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
  module, function, _ = BENCHMARKS[args.name]
  return getattr(importlib.import_module(module), function)(quick=args.quick) or 0


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
  if argv and argv[0] in TOOLS:
    name = argv[0]
    run = lambda: importlib.import_module(TOOLS[name]).main(argv[1:]) or 0
  else:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # only these take --config.*
    if extra and args.command not in ('train', 'eval', 'params', 'compile'):
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
  except Exception as e:
    from jdl.train import errors
    from jdl.train.checkpoint import CheckpointError
    from jdl.train.lock import WorkdirLocked
    from jdl.train.loop import TrainingDiverged

    codes = {
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
