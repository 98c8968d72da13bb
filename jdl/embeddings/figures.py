"""`jdl figures embeddings`: the lecture's embedding picture from jdl's trained vectors, and the
analogy table of the measured runs.

1. embeddings_pca.png: a 2-D PCA projection of selected words of the jdl skip-gram run (the
   king/queen/man/woman parallelogram and country-capital pairs), each pair joined by a line,
   as on the lecture's slide. The projection is fitted to these words only.
2. embeddings_analogy.png: analogy accuracy per category of the Google set for word2vec, GloVe
   and fastText (jdl) beside gensim's word2vec and fastText, from docs/embeddings.json (the
   mean over the seeds measured by `python -m jdl.embeddings.compare`).
"""

from __future__ import annotations

import json
import pathlib
import statistics

import numpy as np

from jdl import plots
from jdl.paths import ROOT

RESULTS = ROOT / 'docs/embeddings.json'
PAIRS = (
  ('man', 'king'),
  ('woman', 'queen'),
  ('boy', 'prince'),
  ('girl', 'princess'),
)
CAPITALS = (
  ('france', 'paris'),
  ('italy', 'rome'),
  ('germany', 'berlin'),
  ('spain', 'madrid'),
  ('russia', 'moscow'),
  ('greece', 'athens'),
  ('egypt', 'cairo'),
  ('japan', 'tokyo'),
)
COLUMNS = (
  ('jdl', 'skipgram', 'jdl word2vec'),
  ('gensim', 'skipgram', 'gensim word2vec'),
  ('jdl', 'glove', 'jdl GloVe'),
  ('jdl', 'fasttext', 'jdl fastText'),
  ('gensim', 'fasttext', 'gensim fastText'),
)


def pca_2d(x: np.ndarray) -> np.ndarray:
  """The projection on the two leading principal axes (SVD of the centred rows)."""
  centred = x - x.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  return centred @ vt[:2].T


def render_pca(outdir: pathlib.Path, workdir) -> pathlib.Path:
  from jdl.embeddings.evaluate import WordVectors

  vectors = WordVectors.from_workdir(workdir)
  fig, axes = plots.pyplot().subplots(1, 2, figsize=(11, 5))
  for ax, pairs, title in (
    (axes[0], PAIRS, 'gender: man-king, woman-queen, ...'),
    (axes[1], CAPITALS, 'country - capital'),
  ):
    pairs = [(a, b) for a, b in pairs if a in vectors.index and b in vectors.index]
    words = [w for pair in pairs for w in pair]
    xy = pca_2d(np.stack([vectors.unit[vectors.index[w]] for w in words]))
    for i, (a, b) in enumerate(pairs):
      p, q = xy[2 * i], xy[2 * i + 1]
      ax.annotate('', q, p, arrowprops=dict(arrowstyle='->', color='tab:gray', lw=1))
      ax.plot(*p, 'o', color='tab:blue')
      ax.plot(*q, 'o', color='tab:red')
      ax.annotate(a, p, textcoords='offset points', xytext=(4, 4), fontsize=9)
      ax.annotate(b, q, textcoords='offset points', xytext=(4, 4), fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('PC 1')
    ax.set_ylabel('PC 2')
  fig.suptitle(
    f'{vectors.name} on GCIDE + WordNet ({len(vectors.words):,} words): PCA of the unit vectors',
    fontsize=10,
  )
  fig.tight_layout()
  path = pathlib.Path(outdir) / 'embeddings_pca.png'
  plots.save(fig, path)
  return path


def analogy_table(results: pathlib.Path = RESULTS) -> tuple[list[str], list[str], np.ndarray]:
  """(sections, column labels, mean accuracy [sections, columns]) of the measured runs; NaN where
  a column was not measured."""
  data = json.loads(pathlib.Path(results).read_text())
  sections = None
  columns, table = [], []
  for framework, model, label in COLUMNS:
    runs = [r for r in data['runs'] if r['framework'] == framework and r['model'] == model]
    if not runs:
      continue
    names = list(runs[0]['analogy']['sections'])
    sections = sections or names + ['total']
    col = [
      statistics.mean(r['analogy']['sections'][s]['accuracy'] for r in runs) for s in names
    ] + [statistics.mean(r['analogy']['accuracy'] for r in runs)]
    columns.append(f'{label} ({len(runs)})')
    table.append(col)
  return sections or [], columns, np.array(table).T


def render_table(outdir: pathlib.Path, results: pathlib.Path = RESULTS) -> pathlib.Path:
  if not pathlib.Path(results).exists():
    raise FileNotFoundError(
      f'{results} not found: measure first (python -m jdl.embeddings.compare)'
    )
  sections, columns, acc = analogy_table(results)
  fig, ax = plots.pyplot().subplots(figsize=(2.2 + 1.6 * len(columns), 0.32 * len(sections) + 1.4))
  image = ax.imshow(acc, cmap='Blues', vmin=0, vmax=max(float(np.nanmax(acc)), 0.01), aspect='auto')
  for i in range(len(sections)):
    for j in range(len(columns)):
      ax.text(j, i, f'{acc[i, j]:.1%}', ha='center', va='center', fontsize=8)
  ax.set_xticks(range(len(columns)), columns, fontsize=8, rotation=15)
  ax.set_yticks(range(len(sections)), sections, fontsize=8)
  ax.set_title(
    'Google analogy accuracy by section (3CosAdd, 30,000 words; seeds in brackets)', fontsize=9
  )
  fig.colorbar(image, ax=ax, fraction=0.03)
  fig.tight_layout()
  path = pathlib.Path(outdir) / 'embeddings_analogy.png'
  plots.save(fig, path)
  return path


def render(outdir: pathlib.Path, workdir) -> list[pathlib.Path]:
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  return [render_pca(outdir, workdir), render_table(outdir)]
