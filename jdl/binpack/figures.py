"""Figures for the FunSearch part: the lecture's Table 1 (excess bins, lower is better) as a
table, computed here beside the published values, and the search's best program over time, one
panel per search run (each run scored its programs on its own training set)."""

from __future__ import annotations

import pathlib
import textwrap

import numpy as np

from jdl import plots
from jdl.binpack import data, search, table

# The training set and score of each stored search log (docs/binpack.md): the runs differ in
# both, so their curves are not on one scale.
TRAINING_SETS = {
  'search_log.jsonl': '16 instances of 8x120, 4x250, 2x500, 2x1000 items (uniform 20..100, '
  'capacity 150); score: mean of bins / L1 per instance',
  'run1_search_log.jsonl': '16 instances, 4 each of 120, 250, 500, 1000 items (uniform 20..100, '
  'capacity 150); score: mean bins',
}
ROW_LABELS = {
  'First Fit': 'First Fit',
  'Best Fit': 'Best Fit',
  'FunSearch': "FunSearch\n(the paper's heuristics)",
  'jdl search': 'jdl search\n(found here, 30 min)',
}


def funsearch(outdir, rows: dict | None = None, log_path=data.FOUND_LOG) -> list[pathlib.Path]:
  """Render binpack_table.png (and binpack_search.png if a search log exists)."""
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  rows = rows if rows is not None else table.compute(program=data.FOUND_PROGRAM)
  paths = [_table_figure(rows, outdir / 'binpack_table.png')]
  if log_path and pathlib.Path(log_path).exists():
    log_path = pathlib.Path(log_path)
    # Earlier runs kept beside the final log (run1_search_log.jsonl, ...) are drawn too.
    logs = [(f'reported run ({log_path.name})', log_path.name, search.read_log(log_path))]
    for older in sorted(log_path.parent.glob('run*_search_log.jsonl')):
      label = f'{older.name.split("_")[0].replace("run", "run ")} ({older.name})'
      logs.append((label, older.name, search.read_log(older)))
    paths.append(_search_figure(logs, outdir / 'binpack_search.png'))
  return paths


def _table_figure(rows: dict, path: pathlib.Path) -> pathlib.Path:
  """The lecture's table: a row per heuristic, a column per data set, each cell the excess
  computed here and, below it, the paper's; the lowest of each column in bold."""
  columns = list(next(iter(rows.values())))
  cells, colours = [], []
  best = {c: min(v[c] for v in rows.values() if c in v) for c in columns}
  for row, values in rows.items():
    line = []
    for c in columns:
      published = table.PUBLISHED.get(row, {}).get(c)
      text = f'{values[c]:.2f}%' if c in values else '-'
      line.append(text + (f'\n(paper {published:.2f}%)' if published is not None else ''))
    cells.append(line)
    colours.append(['#d9f0d3' if values.get(c) == best[c] else 'white' for c in columns])
  header = [c + '*' * (c in table.REGENERATED) for c in columns]
  fig, ax = plots.pyplot().subplots(figsize=(1.3 * len(columns) + 2, 0.62 * len(rows) + 1.6))
  ax.axis('off')
  drawn = ax.table(
    cellText=cells,
    colLabels=header,
    rowLabels=[ROW_LABELS.get(r, r) for r in rows],
    cellColours=colours,
    loc='center',
    cellLoc='center',
  )
  drawn.auto_set_font_size(False)
  drawn.set_fontsize(9)
  drawn.scale(1, 2.6)
  for (r, c), cell in drawn.get_celld().items():
    if r == 0 or c == -1:
      cell.set_text_props(weight='bold')
    elif cells[r - 1][c].startswith(f'{best[columns[c]]:.2f}%'):
      cell.set_text_props(weight='bold')
  ax.set_title(
    'Fraction of excess bins (%), lower is better: FunSearch Table 1 computed here '
    "(the paper's value below)",
    fontsize=10,
  )
  notes = ['green, bold: the lowest of the column']
  if any(c in table.REGENERATED for c in columns):
    notes.append('* regenerated instances (the originals were never released)')
  fig.text(0.5, 0.01, ';  '.join(notes), ha='center', fontsize=8)
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  plots.save(fig, path, dpi=100, bbox_inches='tight')
  return path


def _search_figure(logs: list, path: pathlib.Path) -> pathlib.Path:
  """One panel per search run, each on its own training set; First Fit's excess on that set
  (where every search starts) as a dashed line."""
  fig, axes = plots.pyplot().subplots(
    1, len(logs), figsize=(5.2 * len(logs), 4.2), squeeze=False, sharey=False
  )
  for ax, (label, name, records) in zip(axes[0], logs):
    times, values = search.best_over_time(records)
    ax.step(np.array(times) / 60, values, where='post', color='tab:blue', label='best program')
    start = next((r for r in records if r['event'] == 'start'), None)
    if start:
      ax.axhline(start['train_excess'], color='gray', ls='--', lw=1, label='First Fit (start)')
    ax.set(xlabel='minutes', ylabel="excess bins on this run's training set (%)")
    described = textwrap.fill(f'training set: {TRAINING_SETS.get(name, "see the log")}', 62)
    ax.set_title(f'{label}\n{described}', fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(
    'jdl search from First Fit: best program over time (each panel its own training set and '
    'score: the panels are not on one scale)',
    fontsize=9,
  )
  fig.tight_layout()
  plots.save(fig, path, dpi=100)
  return path
