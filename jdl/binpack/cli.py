"""`jdl binpack ...`: the FunSearch table, the search, and the benchmark.

    binpack table [--json]          the lecture's Table 1, computed here
    binpack search [options]        run the FunSearch loop, store the best program
    binpack bench                   evaluator timings and search throughput
    binpack figures [--outdir DIR]  PNGs of the table and the search curve

The core CLI routes `jdl binpack ARGS` to `main(ARGS)`; `python -m jdl.binpack.cli`
works too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import sys

from jdl.binpack import data


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='jdl binpack', description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)

  table = sub.add_parser('table', help='print the FunSearch table (excess bins, %%)')
  table.add_argument('--json', action='store_true', help='machine-readable output')
  table.add_argument(
    '--program',
    type=pathlib.Path,
    default=None,
    help="the 'jdl search' program, run in the sandbox (default: the stored one, if any)",
  )

  search = sub.add_parser('search', help='run the FunSearch loop')
  search.add_argument(
    '--proposer',
    choices=['mutation', 'completions'],
    default='mutation',
    help='offline AST mutation, or an LLM endpoint',
  )
  search.add_argument('--minutes', type=float, default=30.0)
  search.add_argument('--max-evaluations', type=int, default=None)
  search.add_argument('--workers', type=int, default=2, help='sandbox worker processes')
  search.add_argument('--islands', type=int, default=8)
  search.add_argument(
    '--reset-every',
    type=int,
    default=1500,
    help='reset the weaker half of the islands every N candidates',
  )
  search.add_argument('--seed', type=int, default=0)
  search.add_argument('--timeout', type=float, default=20.0, help='per candidate, s')
  search.add_argument(
    '--outdir', type=pathlib.Path, default=data.FOUND_DIR, help='where the found program goes'
  )
  search.add_argument('--url', help='completions endpoint base URL (or JDL_BINPACK_URL)')
  search.add_argument('--model', help='model name (or JDL_BINPACK_MODEL)')
  search.add_argument('--api-key', help='API key (or JDL_BINPACK_API_KEY)')

  sub.add_parser('bench', help='time the evaluators and the search')

  figures = sub.add_parser('figures', help='render the table and search curve as PNG')
  figures.add_argument('--outdir', type=pathlib.Path, default=pathlib.Path('figures'))
  # The spelling of before (docs/binpack.md); every jdl command now says --outdir.
  figures.add_argument(
    '--out', dest='outdir', type=pathlib.Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
  )
  return parser


def main(argv=None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  if args.command == 'table' and args.program is not None and not args.program.is_file():
    parser.error(f'--program {args.program}: no such file (a program written by binpack search)')
  if args.command == 'table':
    return _table(args)
  if args.command == 'search':
    return _search(args)
  if args.command == 'bench':
    from jdl.binpack import bench

    bench.run_bench()
    return 0
  if args.command == 'figures':
    from jdl.binpack import figures

    for path in figures.funsearch(args.outdir):
      print(path)
    return 0
  return 2


def _table(args) -> int:
  from jdl.binpack import table

  rows = table.compute(program=args.program or data.FOUND_PROGRAM)
  if args.json:
    print(json.dumps(rows, indent=2))
  else:
    print(table.format_table(rows))
  return 0


def _search(args) -> int:
  from jdl.binpack import heuristics, proposers, search, table

  if args.proposer == 'mutation':
    proposer = proposers.MutationProposer(seed=args.seed)
  else:
    proposer = proposers.CompletionsProposer(args.url, args.model, args.api_key)
  args.outdir.mkdir(parents=True, exist_ok=True)
  log_path = args.outdir / 'search_log.jsonl'
  started = datetime.datetime.now(datetime.UTC)
  result = search.run_search(
    proposer,
    seconds=args.minutes * 60,
    workers=args.workers,
    islands=args.islands,
    reset_every=args.reset_every,
    max_evaluations=args.max_evaluations,
    log_path=log_path,
    seed=args.seed,
    timeout=args.timeout,
  )
  best = result.best
  # Score the winner on the OR test sets (never seen by the search) next to Best Fit,
  # in the sandbox like every program the search proposed.
  lines = []
  for name in ('OR1', 'OR2', 'OR3', 'OR4'):
    ds = data.load(name)
    ours = table.score_source(best.source, ds)
    theirs = table.score_source(heuristics.BEST_FIT, ds)
    lines.append(f'{name}: found {ours:.2f}%  Best Fit {theirs:.2f}%')
  header = (
    f'"""Best priority function found by `jdl binpack search` ({args.proposer} proposer).\n\n'
    f'Started {started:%Y-%m-%d %H:%M} UTC on {platform.node() or "a"} '
    f'({platform.machine()}, {_cpus()} CPUs); ran {result.seconds / 60:.1f} min, '
    f'{result.evaluated} candidates\n'
    f'evaluated (outcomes: {result.outcomes}), seed {args.seed}, '
    f'{args.islands} islands, {args.workers} workers.\n'
    f'Training set: data.uniform_training() (uniform 20..100, capacity 150); '
    f'score {best.score:.3f},\nexcess {result.train_excess:.3f}%.\n'
    f'Test (OR-Library, unseen during the search):\n'
    + '\n'.join(f'  {line}' for line in lines)
    + '\n"""\nimport numpy as np\n\n\n'
  )
  program_path = args.outdir / 'best_priority.py'
  program_path.write_text(header + best.source)
  print(
    f'\nsearch finished: {result.evaluated} candidates in {result.seconds:.0f} s; '
    f'outcomes {result.outcomes}'
  )
  print(f'best train excess {result.train_excess:.3f}% (score {best.score:.3f})')
  print('\n'.join(lines))
  print(f'\nfound program ({program_path}):\n\n{best.source}')
  print(f'log: {log_path}')
  return 0


def _cpus() -> int:
  import os

  return os.cpu_count() or 0


if __name__ == '__main__':
  sys.exit(main())
