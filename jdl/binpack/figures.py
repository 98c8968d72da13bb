"""Figures for the FunSearch part: the table as a grouped bar chart (computed values,
published ones as markers) and the search's best-score-over-time curve."""

from __future__ import annotations

import pathlib

import numpy as np

from jdl import plots
from jdl.binpack import data, search, table


def funsearch(outdir, rows: dict | None = None, log_path=data.FOUND_LOG) -> list[pathlib.Path]:
  """Render binpack_table.png (and binpack_search.png if a search log exists)."""
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  rows = rows if rows is not None else table.compute(program=data.FOUND_PROGRAM)
  paths = [_table_figure(rows, outdir / 'binpack_table.png')]
  if log_path and pathlib.Path(log_path).exists():
    log_path = pathlib.Path(log_path)
    # Earlier runs kept beside the final log (run1_search_log.jsonl, ...) are drawn too.
    logs = [(f'final ({log_path.name})', search.read_log(log_path))]
    for older in sorted(log_path.parent.glob('run*_search_log.jsonl')):
      logs.append((older.name.split('_')[0], search.read_log(older)))
    paths.append(_search_figure(logs, outdir / 'binpack_search.png'))
  return paths


def _table_figure(rows: dict, path: pathlib.Path) -> pathlib.Path:
  columns = list(next(iter(rows.values())))
  x = np.arange(len(columns))
  width = 0.8 / len(rows)
  fig, ax = plots.pyplot().subplots(figsize=(11, 4.5))
  for i, (row, values) in enumerate(rows.items()):
    offset = (i - (len(rows) - 1) / 2) * width
    bars = ax.bar(x + offset, [values[c] for c in columns], width, label=row)
    published = table.PUBLISHED.get(row)
    if published:  # the paper's value for the same row, as a black tick
      ax.scatter(
        x + offset, [published[c] for c in columns], marker='_', s=120, color='black', zorder=3
      )
    for rect, c in zip(bars, columns):
      ax.annotate(
        f'{values[c]:.2f}',
        (rect.get_x() + rect.get_width() / 2, rect.get_height()),
        ha='center',
        va='bottom',
        fontsize=6,
        rotation=90,
      )
  ax.set_xticks(x, [c + '\n(regenerated)' * (c in table.REGENERATED) for c in columns])
  ax.set_ylabel('excess bins (%)')
  ax.set_title('Online bin packing, computed here (black ticks: published values)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  plots.save(fig, path, dpi=120)
  return path


def _search_figure(logs: list, path: pathlib.Path) -> pathlib.Path:
  fig, ax = plots.pyplot().subplots(figsize=(6, 4))
  for label, records in logs:
    times, values = search.best_over_time(records)
    ax.step(np.array(times) / 60, values, where='post', label=label)
  ax.set_xlabel('minutes')
  ax.set_ylabel('best excess on its training set (%)')
  ax.set_title('jdl search: best program over time (from First Fit)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  plots.save(fig, path, dpi=120)
  return path
