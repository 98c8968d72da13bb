"""`jdl figures rnn_memory`: the adding problem's test MSE against the sequence length T for the
LSTM, Elman and Jordan cells (equal parameter budget), beside the trivial predictor's 1/6.

`render` reads the measured results in docs/rnn_adding.json and trains nothing. This module also
runs the measurements (`jdl train --config experiments/rnn/adding_problem.py:CELL:T`,
in-process) and merges them into that file:

  python -m jdl.rnn.figures lstm:100 elman:100 ...        (default: the full grid; merges at once)
  python -m jdl.rnn.figures --steps 3000 lstm:200          (override the step count)
  python -m jdl.rnn.figures --lr 3e-3 --out runs/sweep lstm:100   (one file and workdir per run)
  python -m jdl.rnn.figures --merge runs/sweep   (best learning rate per cell and T, by final
                                                  validation MSE, into docs/rnn_adding.json)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

from jdl import plots
from jdl.paths import ROOT

RESULTS = ROOT / 'docs/rnn_adding.json'
STYLE = {
  'lstm': ('o-', 'tab:blue', 'LSTM'),
  'elman': ('s-', 'tab:orange', 'Elman'),
  'jordan': ('^-', 'tab:green', 'Jordan'),
}


def render(outdir: pathlib.Path, results: pathlib.Path = RESULTS) -> list[pathlib.Path]:
  from matplotlib import ticker

  if not results.exists():
    raise FileNotFoundError(f'{results} not found: measure first (python -m jdl.rnn.figures)')
  data = json.loads(results.read_text())
  outdir = pathlib.Path(outdir)
  fig, ax = plots.pyplot().subplots(figsize=(6.5, 4.2))
  for cell, (marker, color, label) in STYLE.items():
    runs = sorted((r for r in data['runs'] if r['cell'] == cell), key=lambda r: r['seq_len'])
    if runs:
      params = runs[0]['params']
      # A log axis needs positive values; a perfect fit would otherwise vanish from the plot.
      ax.plot(
        [r['seq_len'] for r in runs],
        [max(r['test_mse'], 1e-6) for r in runs],
        marker,
        color=color,
        label=f'{label} (hidden {runs[0]["hidden_size"]}, {params:,} params)',
      )
  ax.axhline(
    data.get('trivial_mse', 1 / 6),
    color='gray',
    ls='--',
    label='trivial predictor (always 1.0): 1/6',
  )
  ax.axhline(0.01, color='gray', ls=':', lw=0.8, label='"solved": MSE 0.01')
  ax.set(
    xscale='log',
    yscale='log',
    xlabel='sequence length T',
    ylabel='test MSE',
    title='Adding problem: remembering two marked values over T steps',
  )
  ax.set_xticks(sorted({r['seq_len'] for r in data['runs']}))
  ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=8, loc='center right')
  fig.tight_layout()
  path = outdir / 'rnn_memory.png'
  plots.save(fig, path, dpi=100)
  return [path]


# ---- measuring ----------------------------------------------------------------------------------

GRID = [f'{cell}:{t}' for t in (100, 50, 200) for cell in ('lstm', 'elman', 'jordan')]


def run(
  variant: str, steps: int | None, lr: float | None, workdir: pathlib.Path | None = None
) -> dict:
  """One training run; with `workdir`, its metrics.jsonl stays there (readable mid-run)."""
  import jax

  from jdl import config as config_lib
  from jdl.train.loop import Trainer

  config = config_lib.load(str(ROOT / f'experiments/rnn/adding_problem.py:{variant}'))
  config.progress_bar = 'never'
  if steps:
    config.num_train_steps = steps
  if lr:
    config.optimizer.learning_rate = lr
  start = time.perf_counter()
  trainer = Trainer(config)
  if workdir:
    name = f'{variant.replace(":", "_")}_lr{config.optimizer.learning_rate:g}'
    result = trainer.fit(workdir / name)
  else:
    with tempfile.TemporaryDirectory() as tmp:
      result = trainer.fit(tmp)
  wall = time.perf_counter() - start
  evals = [h for h in result['history'] if 'test_loss' in h]
  m = config.model
  return {
    'cell': m.cell,
    'seq_len': config.data.kwargs.seq_len,
    'hidden_size': m.hidden_size,
    'params': trainer.num_params,
    'steps': int(result['step']),
    'batch_size': config.batch_size,
    'learning_rate': config.optimizer.learning_rate,
    'test_mse': evals[-1]['test_loss'],
    'validation_mse': evals[-1]['validation_loss'],
    'best_validation_mse': min(h['validation_loss'] for h in evals),
    'wall_seconds': round(wall, 1),
    'curve': [[h['step'], round(h['test_loss'], 5)] for h in evals],
    'backend': jax.default_backend(),
    'completed': int(result['step']) >= config.num_train_steps,
  }  # False: stopped early


def merge(records: list[dict]) -> None:
  """Keeps, per (cell, T), the run with the lowest final validation MSE (the test MSE plays no
  part in the choice); every run stays listed under 'all_runs'."""
  results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {'runs': [], 'all_runs': []}
  key = lambda r: (r['cell'], r['seq_len'], r['learning_rate'])
  fresh = {key(r) for r in records}
  all_runs = [r for r in results.get('all_runs', []) if key(r) not in fresh] + records
  best = {}
  for r in all_runs:
    k = (r['cell'], r['seq_len'])
    if k not in best or r['validation_mse'] < best[k]['validation_mse']:
      best[k] = r
  results = {
    'trivial_mse': 1 / 6,
    'selection': 'per cell and T, the learning rate with the lowest final validation MSE',
    'runs': sorted(best.values(), key=lambda r: (r['seq_len'], r['cell'])),
    'all_runs': sorted(all_runs, key=key),
  }
  RESULTS.write_text(json.dumps(results, indent=1) + '\n')


def main():
  parser = argparse.ArgumentParser(
    prog='python -m jdl.rnn.figures',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument('variants', nargs='*', default=GRID)
  parser.add_argument('--steps', type=int, default=None)
  parser.add_argument('--lr', type=float, default=None)
  parser.add_argument('--out', type=pathlib.Path, default=None)
  parser.add_argument('--merge', type=pathlib.Path, default=None)
  args = parser.parse_args()
  if args.merge:
    merge([json.loads(p.read_text()) for p in sorted(args.merge.glob('*.json'))])
    return
  for variant in args.variants:
    record = run(variant, args.steps, args.lr, args.out)
    if args.out:
      args.out.mkdir(parents=True, exist_ok=True)
      name = f'{record["cell"]}_{record["seq_len"]}_lr{record["learning_rate"]:g}.json'
      (args.out / name).write_text(json.dumps(record) + '\n')
    else:
      merge([record])
    print(
      f'RESULT {variant}: test MSE {record["test_mse"]:.4f} in {record["wall_seconds"]}s',
      flush=True,
    )


if __name__ == '__main__':
  main()
