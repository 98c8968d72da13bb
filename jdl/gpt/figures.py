"""The lecture's GPT-3 tables, recomputed: training compute (6ND beside the published column)
and the data mixture (epochs elapsed when training for 300B tokens)."""

from __future__ import annotations

import pathlib

from jdl import plots
from jdl.data.mixture import Mixture
from jdl.models.gpt import GPTConfig
from jdl.train import cost

# The GPT-3 paper's Table D.1 (Brown et al. 2020), as on the lecture's slide.
# name -> (parameters, training tokens, published PF-days, published FLOPs)
PUBLISHED_COMPUTE = {
  'T5-3B': (3e9, 1e12, 1.04e2, 9.00e21),
  'T5-11B': (11e9, 1e12, 3.82e2, 3.30e22),
  'GPT-3 13B': (12.85e9, 300e9, 2.68e2, 2.31e22),
  'GPT-3 175B': (174.6e9, 300e9, 3.64e3, 3.14e23),
}
# jdl's own shapes of the two GPT-3 models (GPT-3 paper Table 2.1).
GPT3_SHAPES = {
  'GPT-3 13B': GPTConfig(vocab_size=50257, context=2048, n_layer=40, n_head=40, d_model=5140),
  'GPT-3 175B': GPTConfig(vocab_size=50257, context=2048, n_layer=96, n_head=96, d_model=12288),
}

# GPT-3 paper Table 2.2, as on the lecture's slide:
# name -> (tokens, weight in the training mix, published epochs at 300B tokens)
PUBLISHED_MIX = {
  'Common Crawl (filtered)': (410e9, 0.60, 0.44),
  'WebText2': (19e9, 0.22, 2.9),
  'Books1': (12e9, 0.08, 1.9),
  'Books2': (55e9, 0.08, 0.43),
  'Wikipedia': (3e9, 0.03, 3.4),
}


def compute_rows() -> list[dict]:
  rows = []
  for name, (n, d, pf_days, flops) in PUBLISHED_COMPUTE.items():
    # T5 is an encoder-decoder: each token passes through about half of its parameters, which
    # is how the GPT-3 paper counts it (6 * N/2 * D).
    active = n / 2 if name.startswith('T5') else n
    row = {
      'model': name,
      'params': n,
      'tokens': d,
      'published_pf_days': pf_days,
      'published_flops': flops,
      'six_nd': 6 * active * d,
    }
    if name in GPT3_SHAPES:
      cfg = GPT3_SHAPES[name]
      f = cost.training_flops(cfg, d)
      row.update(jdl_params=f['params'], jdl_six_nd=f['six_nd'], jdl_exact=f['exact'])
    rows.append(row)
  return rows


def mix_rows(tokens_trained: float = 300e9) -> list[dict]:
  mixture = Mixture.of({name: w for name, (_, w, _) in PUBLISHED_MIX.items()})
  sizes = {name: size for name, (size, _, _) in PUBLISHED_MIX.items()}
  as_given = {name: tokens_trained * w / sizes[name] for name, (_, w, _) in PUBLISHED_MIX.items()}
  normalized = mixture.epochs(sizes, tokens_trained)
  return [
    {
      'dataset': name,
      'tokens': size,
      'weight': w,
      'published_epochs': pub,
      'epochs_weight_as_given': as_given[name],
      'epochs_normalized': normalized[name],
    }
    for name, (size, w, pub) in PUBLISHED_MIX.items()
  ]


# Cell colours of the tables: what the paper published, and what jdl recomputed.
PUBLISHED_COLOUR, RECOMPUTED_COLOUR = '#e4e4e4', '#d6e6f5'
SOURCES = {'published': PUBLISHED_COLOUR, 'jdl': RECOMPUTED_COLOUR}


def _table_png(
  path: pathlib.Path,
  header: list[str],
  cells: list[list[str]],
  title: str,
  sources: list[str | None],
):
  """A table as a picture; each column's `source` ('published', 'jdl' or None for a label)
  colours it, and a key under the table says which colour is which."""
  fig, ax = plots.pyplot().subplots(figsize=(1.7 * len(header), 0.3 * (len(cells) + 2) + 0.8))
  ax.axis('off')
  colours = [SOURCES.get(s, 'white') for s in sources]
  table = ax.table(
    cellText=cells,
    colLabels=header,
    loc='center',
    cellLoc='right',
    cellColours=[colours] * len(cells),
    colColours=colours,
  )
  table.auto_set_font_size(False)
  table.set_fontsize(8)
  table.scale(1, 1.3)
  for (row, col), cell in table.get_celld().items():
    if row == 0:
      cell.set_text_props(weight='bold')
      cell.set_height(cell.get_height() * 1.6)
    elif col == 0:
      cell.set_text_props(ha='left')
  ax.set_title(title, fontsize=9)
  fig.text(
    0.5,
    0.02,
    "grey: published (the paper, as on the lecture's slide)    blue: recomputed by jdl",
    ha='center',
    fontsize=8,
  )
  fig.tight_layout(rect=(0, 0.06, 1, 1))
  plots.save(fig, path, dpi=100, bbox_inches='tight')


def _write_tables(
  outdir: pathlib.Path,
  name: str,
  header: list[str],
  cells: list[list[str]],
  title: str,
  sources: list[str | None],
  note: str = '',
) -> list[pathlib.Path]:
  """The same table twice: NAME.png to look at, NAME.md (with `note` below it) to paste."""
  md = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  md += ['| ' + ' | '.join(c) + ' |' for c in cells]
  md_path = outdir / f'{name}.md'
  md_path.write_text('\n'.join(md) + (f'\n\n{note}' if note else '') + '\n')
  png = outdir / f'{name}.png'
  _table_png(png, header, cells, title, sources)
  return [png, md_path]


def render_gpt3_compute(outdir) -> list[pathlib.Path]:
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  rows = compute_rows()
  header = [
    'model',
    'published PF-days',
    'published FLOPs',
    'jdl 6ND FLOPs',
    'jdl 6ND PF-days',
    'jdl exact FLOPs\n(GPT shapes)',
  ]
  sources = [None, 'published', 'published', 'jdl', 'jdl', 'jdl']
  cells = []
  for r in rows:
    six = r.get('jdl_six_nd', r['six_nd'])
    cells.append(
      [
        r['model'],
        f'{r["published_pf_days"]:.2E}',
        f'{r["published_flops"]:.2E}',
        f'{six:.2E}',
        f'{six / cost.PF_DAY:.2E}',
        f'{r["jdl_exact"]:.2E}' if 'jdl_exact' in r else '-',
      ]
    )
  note = (
    "6ND uses the parameters of jdl's own GPT-3 shapes (13B: "
    f'{rows[2]["jdl_params"]:,}; 175B: {rows[3]["jdl_params"]:,}) and 300B tokens; '
    'T5 rows use 6 * (N/2) * D with D = 1T tokens, as the GPT-3 paper does for an '
    'encoder-decoder. "exact" counts every matmul including attention over 2048 '
    'positions.'
  )
  return _write_tables(
    outdir,
    'gpt3_compute',
    header,
    cells,
    'GPT-3 paper Table D.1 beside jdl (6ND and per-layer counts)',
    sources,
    note,
  )


def render_gpt3_data_mix(outdir) -> list[pathlib.Path]:
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  rows = mix_rows()
  header = [
    'dataset',
    'tokens',
    'weight',
    'published epochs\n(paper)',
    'recomputed epochs\n(jdl, w as given)',
    'recomputed epochs\n(jdl, w normalized)',
  ]
  sources = [None, 'published', 'published', 'published', 'jdl', 'jdl']
  cells = [
    [
      r['dataset'],
      f'{r["tokens"] / 1e9:.0f}B',
      f'{r["weight"]:.0%}',
      f'{r["published_epochs"]:.2f}',
      f'{r["epochs_weight_as_given"]:.2f}',
      f'{r["epochs_normalized"]:.2f}',
    ]
    for r in rows
  ]
  note = (
    'epochs = 300B * weight / tokens. The published weights sum to 101% (rounded), so '
    'the sampler normalizes them; the published epochs were computed from unrounded '
    'sizes and weights, hence WebText2 (2.9 published vs 3.47 here) and Wikipedia '
    '(3.4 vs 3.0) differ most: 2.9 epochs of 19B tokens is 55B tokens, 18% of 300B, '
    'not 22%.'
  )
  return _write_tables(
    outdir,
    'gpt3_data_mix',
    header,
    cells,
    'GPT-3 training mix: epochs elapsed when training for 300B tokens\n'
    '(recomputed: epochs = 300B x weight / tokens)',
    sources,
    note,
  )


# The lecture's GPT-family slide (GPT-4's column is a press estimate with no shape, left out).
# name -> (experiment file, published parameters, layers, context, d_model, heads, gap)
PUBLISHED_FAMILY = {
  'GPT-1 (2018)': (
    'gpt1.py',
    117e6,
    12,
    512,
    768,
    12,
    '117M is rounded; the 40,478-token vocabulary and 512 positions are counted',
  ),
  'GPT-2 (2019)': (
    'gpt2_xl.py',
    1.5e9,
    48,
    1024,
    1600,
    25,
    'the paper says 1,542M without saying how it counted; released weights '
    'count 1,558M (tied embeddings once), as here',
  ),
  'GPT-3 (2020)': (
    'gpt3_175b.py',
    175e9,
    96,
    2048,
    12288,
    96,
    'the paper rounds 174.6B up; d_head = 12288 / 96 = 128',
  ),
}


def family_rows() -> list[dict]:
  """Each published GPT beside jdl's exact count of its experiment config (eval_shape only)."""
  from jdl import config as config_lib
  from jdl.paths import ROOT
  from jdl.train import params
  from jdl.train.task import get_task

  rows = []
  for name, (file, n, layers, context, d, heads, gap) in PUBLISHED_FAMILY.items():
    config = config_lib.load(str(ROOT / 'experiments/gpt' / file))
    total = sum(params.module_counts(params.abstract_params(get_task(config))).values())
    rows.append(
      {
        'model': name,
        'published_params': n,
        'jdl_params': total,
        'layers': layers,
        'context': context,
        'd_model': d,
        'heads': heads,
        'd_head': d // heads,
        'gap': gap,
      }
    )
  return rows


def render_gpt_family(outdir) -> list[pathlib.Path]:
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  rows = family_rows()
  header = [
    'model',
    'published parameters',
    'jdl parameters (exact)',
    'layers',
    'context',
    'd_model',
    'heads (d_head)',
  ]
  sources = [None, 'published', 'jdl', 'published', 'published', 'published', 'published']
  cells = [
    [
      r['model'],
      f'{r["published_params"] / 1e6:,.0f}M',
      f'{r["jdl_params"]:,}',
      str(r['layers']),
      str(r['context']),
      f'{r["d_model"]:,}',
      f'{r["heads"]} ({r["d_head"]})',
    ]
    for r in rows
  ]
  note = '\n'.join(f'- {r["model"]}: {r["gap"]}' for r in rows)
  paths = _write_tables(
    outdir,
    'gpt_family',
    header,
    cells,
    "The GPT family (lecture's table) with jdl's computed counts",
    sources,
    note,
  )
  for r in rows:
    print(
      f'{r["model"]:14s} published {r["published_params"] / 1e6:9,.0f}M  jdl '
      f'{r["jdl_params"]:>17,}  ({r["gap"]})'
    )
  return paths
