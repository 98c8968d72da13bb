"""`jdl figures sentiment`: the slide's histogram of the sentiment unit on test reviews coloured
by label, the data-efficiency curve (probe against TF-IDF), and the width curve (best single
unit's test accuracy per width against its random-init control and the permutation null).
Each run's numbers come from its `jdl sentiment probe` (sentiment_probe.json); `render_text`
draws `jdl sentiment --png`'s coloured text."""

from __future__ import annotations

import pathlib

import numpy as np

from jdl import plots


def _probe(workdir) -> dict:
  from jdl.sentiment.pipeline import read_probe

  return read_probe(workdir)


def render_histogram(outdir, workdir) -> pathlib.Path:
  from jdl.paths import workdir as as_workdir
  from jdl.sentiment.pipeline import FEATURES_FILE

  found = _probe(workdir)
  saved = np.load(as_workdir(workdir) / FEATURES_FILE)
  unit, labels = int(saved['unit']), saved['test_labels']
  values = saved['test_cell'][:, unit]
  info = found['cell']['unit']
  fig, ax = plots.pyplot().subplots(figsize=(7, 4))
  bins = np.linspace(values.min(), values.max(), 30)
  ax.hist(values[labels == 0], bins, alpha=0.6, color='tab:red', label='negative reviews')
  ax.hist(values[labels == 1], bins, alpha=0.6, color='tab:blue', label='positive reviews')
  ax.axvline(info['threshold'], color='k', ls='--', lw=1, label='threshold (fit on train)')
  ax.set_xlabel(f'cell state of unit {unit} after the last byte')
  ax.set_ylabel('test reviews')
  ax.set_title(
    f'mLSTM {found["width"]} units, step {found["step"]}: unit {unit} alone '
    f'{info["test_accuracy"]:.1%} on {len(labels)} test reviews',
    fontsize=10,
  )
  ax.legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, pathlib.Path(outdir) / 'sentiment_histogram.png')


def _band(ax, sizes, runs, label, color):
  mean = np.array([np.mean(r) for r in runs])
  std = np.array([np.std(r, ddof=1) if len(r) > 1 else 0.0 for r in runs])
  ax.plot(sizes, mean, 'o-', color=color, label=label)
  ax.fill_between(sizes, mean - std, mean + std, color=color, alpha=0.2)


def render_data_efficiency(outdir, workdir) -> pathlib.Path:
  found = _probe(workdir)
  fig, ax = plots.pyplot().subplots(figsize=(7, 4))
  sizes = found['cell']['data_efficiency']['sizes']
  _band(ax, sizes, found['cell']['data_efficiency']['probe'], 'L1 probe, cell state', 'tab:blue')
  _band(
    ax, sizes, found['hidden']['data_efficiency']['probe'], 'L1 probe, hidden state', 'tab:cyan'
  )
  if 'tfidf' in found:
    _band(ax, sizes, found['tfidf']['data_efficiency'], 'TF-IDF 1+2-grams, logistic', 'tab:orange')
  ax.axhline(0.5, color='gray', lw=0.8, ls=':')
  ax.set_xscale('log')
  ax.set_xlabel('labelled training reviews')
  ax.set_ylabel('test accuracy (mean +- std over draws)')
  ax.set_title(f'Data efficiency, mLSTM {found["width"]} units (Pang & Lee reviews)', fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, pathlib.Path(outdir) / 'sentiment_data_efficiency.png')


def render_width(outdir, probes: list[dict]) -> pathlib.Path:
  probes = sorted(probes, key=lambda p: p['width'])
  widths = [p['width'] for p in probes]
  fig, ax = plots.pyplot().subplots(figsize=(7, 4))
  ax.plot(
    widths, [p['cell']['unit']['test_accuracy'] for p in probes], 'o-', label='best unit, trained'
  )
  if all('random' in p for p in probes):
    ax.plot(
      widths,
      [p['random']['cell']['unit']['test_accuracy'] for p in probes],
      's--',
      label='best unit, random init (control)',
    )
  ax.plot(
    widths,
    [p['cell']['unit']['probe_test_accuracy'] for p in probes],
    '^-',
    label='L1 probe, all units',
  )
  if all('permutation' in p for p in probes):
    ax.plot(
      widths,
      [p['permutation']['q95'] for p in probes],
      'k:',
      label='label permutation, 95th percentile',
    )
  ax.set_xscale('log', base=2)
  ax.set_xticks(widths, [str(w) for w in widths])
  ax.set_xlabel('mLSTM units')
  ax.set_ylabel('test accuracy')
  n_test = probes[0]['n']['test']
  ax.set_title(
    f'Does the sentiment unit need width? (cell state, {n_test} test reviews)', fontsize=10
  )
  ax.legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, pathlib.Path(outdir) / 'sentiment_width.png')


def render_text(path: pathlib.Path, data: bytes, values: np.ndarray, unit: int, sign: int = 1):
  """The text with each character's background coloured by the unit's value after it (blue
  positive, red negative, in the probe's sign), wrapped at 80 characters."""
  import matplotlib
  import matplotlib.colors as mcolors

  text = data.decode('utf-8')
  # one value per character: the value after its last byte
  ends = np.cumsum([len(ch.encode('utf-8')) for ch in text]) - 1
  per_char = values[ends] * sign
  scale = max(float(np.abs(per_char).max()), 1e-6)
  cmap = matplotlib.colormaps['RdBu']
  lines = [text[i : i + 80] for i in range(0, len(text), 80)] or ['']
  fig = plots.pyplot().figure(figsize=(10, 0.3 * len(lines) + 0.5))
  ax = fig.add_axes([0, 0, 1, 1])
  ax.set_xlim(0, 81)
  ax.set_ylim(len(lines) + 0.5, -0.8)  # a row on top for the caption
  ax.axis('off')
  ax.text(0.5, -0.3, f'unit {unit}: blue positive, red negative (|max| {scale:.3f})', fontsize=9)
  k = 0
  for row, line in enumerate(lines):
    for col, ch in enumerate(line):
      color = mcolors.to_hex(cmap(0.5 + 0.5 * per_char[k] / scale))
      box = dict(boxstyle='square,pad=0.1', fc=color, ec='none')
      ax.text(
        col + 0.5,
        row + 0.5,
        ch if ch != '\n' else ' ',
        family='monospace',
        fontsize=10,
        ha='center',
        va='center',
        bbox=box,
      )
      k += 1
  return plots.save(fig, path)


def render(outdir, w64=None, w128=None, w256=None, w512=None) -> list[pathlib.Path]:
  """The histogram and data efficiency of the widest run probed; the width curve of all."""
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  runs = [w for w in (w64, w128, w256, w512) if w is not None]
  probed = []
  for w in runs:
    try:
      probed.append((w, _probe(w)))
    except FileNotFoundError:
      continue
  if not probed:
    raise FileNotFoundError(
      'no sentiment run has been probed: `jdl sentiment probe --workdir runs/sentiment/mlstm_256`'
    )
  widest = probed[-1][0]
  return [
    render_histogram(outdir, widest),
    render_data_efficiency(outdir, widest),
    render_width(outdir, [p for _, p in probed]),
  ]
