"""The lecture's Transformer figures, from a trained run (runs/transformer/de_en by default):

- `attention`: encoder self-attention and decoder cross-attention weights, one heatmap per head
  and layer, for a test sentence and the model's own (greedy) translation of it;
- `next_token`: the output distribution at each position of a short sentence's translation
  (the lecture's "je suis etudiant" -> "I am a student" table): the top candidate tokens and
  their probabilities, as PNG and Markdown;
- `bleu_time`: validation BLEU against training time, jdl beside PyTorch (`jdl.transformer.race`).

Train the run first (the equal-time run also writes a checkpoint):
  python -m jdl.transformer.race --framework jdl --minutes 25 --workdir runs/transformer/de_en
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from jdl.paths import ROOT

WORKDIR = ROOT / 'runs/transformer/de_en'
RACE_DIRS = {
  'jdl (JAX)': ROOT / 'runs/transformer/de_en',
  'PyTorch nn.Transformer': ROOT / 'runs/transformer/torch_de_en',
}
SENTENCE = 'Ich bin Student.'


def _load(workdir: pathlib.Path):
  if not (workdir / 'checkpoints').is_dir():
    raise FileNotFoundError(
      f'no trained Transformer in {workdir}; train it first with `python -m '
      f'jdl.transformer.race --framework jdl --minutes 25 --workdir {workdir}` (or `jdl train '
      f'--config experiments/transformer/ding_de_en.py --workdir {workdir}`)'
    )
  from jdl.gpt.sample import load_model

  task, model, step = load_model(workdir)
  return task, model, step


def _tokens(tok, ids) -> list[str]:
  return [tok.token(i).replace('▁', ' ').strip() or '▁' for i in ids]


def attention_maps(model, tok, sentence: str):
  """(source tokens, output tokens, translation, encoder weights per layer [H, S, S],
  cross-attention weights per layer [H, T, S]) for the greedy translation of `sentence`."""
  import jax.numpy as jnp

  from jdl.data.ding import BOS, EOS
  from jdl.models import decoding as decode
  from jdl.models.attention import padding_mask

  src = tok.encode(sentence)
  out = np.asarray(decode.greedy(model, np.asarray([src]), len(src) + 16))[0].tolist()
  out = out[: out.index(EOS) + 1] if EOS in out else out
  src_1xS, tgt_1xT = jnp.asarray([src]), jnp.asarray([[BOS, *out[:-1]]])
  enc, cross = [], []
  memory = model.encode(src_1xS, jnp.ones_like(src_1xS), record=enc)
  model.decode(tgt_1xT, memory, cross_mask=padding_mask(jnp.ones_like(src_1xS)), record=cross)
  return (
    _tokens(tok, src),
    _tokens(tok, out),
    tok.decode(out),
    [np.asarray(w[0]) for w in enc],
    [np.asarray(w[0]) for w in cross],
  )


def render_attention(outdir: pathlib.Path, workdir: pathlib.Path = WORKDIR) -> list[pathlib.Path]:
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  task, model, step = _load(workdir)
  tok = task.tokenizer()
  from jdl.data import ding as data

  sentence = data.test_set(task.config.data.kwargs)[0][3]  # a short held-out sentence
  src, out, translation, enc, cross = attention_maps(model, tok, sentence)
  paths = []
  for name, maps, rows, title in (
    ('attention_encoder', enc, src, 'encoder self-attention'),
    ('attention_cross', cross, out, 'decoder cross-attention'),
  ):
    L, H = len(maps), maps[0].shape[0]
    fig, axes = plt.subplots(L, H, figsize=(2.6 * H + 1, 2.4 * L + 1.2), squeeze=False)
    for layer in range(L):
      for head in range(H):
        ax = axes[layer, head]
        ax.imshow(maps[layer][head], cmap='viridis', vmin=0, vmax=1)
        ax.set_xticks(range(len(src)), src, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(f'layer {layer + 1}, head {head + 1}', fontsize=8)
    fig.suptitle(
      f'{title}, per head (rows attend to columns): "{sentence}" -> '
      f'"{translation}"\n{workdir.name}, step {step}',
      fontsize=9,
    )
    fig.tight_layout()
    path = outdir / f'{name}.png'
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
  return paths


def next_token_table(model, tok, sentence: str, top: int = 5):
  """Per output position of the greedy translation: [(chosen token, [(token, p), ...])]."""
  import jax
  import jax.numpy as jnp

  from jdl.data.ding import BOS, EOS
  from jdl.models import decoding as decode
  from jdl.models.attention import padding_mask

  src = tok.encode(sentence)
  out = np.asarray(decode.greedy(model, np.asarray([src]), len(src) + 16))[0].tolist()
  out = out[: out.index(EOS) + 1] if EOS in out else out
  src_1xS = jnp.asarray([src])
  memory = model.encode(src_1xS, jnp.ones_like(src_1xS))
  logits = model.decode(
    jnp.asarray([[BOS, *out[:-1]]]), memory, cross_mask=padding_mask(jnp.ones_like(src_1xS))
  )
  probs_TxV = np.asarray(jax.nn.softmax(logits[0].astype(jnp.float32), axis=-1))
  rows = []
  for t, chosen in enumerate(out):
    best = np.argsort(-probs_TxV[t])[:top]
    rows.append(
      (_tokens(tok, [chosen])[0], [(_tokens(tok, [i])[0], float(probs_TxV[t, i])) for i in best])
    )
  return rows


def render_next_token(
  outdir: pathlib.Path, workdir: pathlib.Path = WORKDIR, sentence: str = SENTENCE
) -> list[pathlib.Path]:
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  task, model, step = _load(workdir)
  tok = task.tokenizer()
  rows = next_token_table(model, tok, sentence)
  header = ['position', 'output'] + [f'candidate {i + 1}' for i in range(len(rows[0][1]))]
  cells = [
    [str(t + 1), chosen] + [f'{w} ({p:.2f})' for w, p in cands]
    for t, (chosen, cands) in enumerate(rows)
  ]
  title = f'"{sentence}" -> next-token probabilities ({workdir.name}, step {step})'
  md = [f'{title}\n', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  md += ['| ' + ' | '.join(c) + ' |' for c in cells]
  md_path = outdir / 'next_token.md'
  md_path.write_text('\n'.join(md) + '\n')
  fig, ax = plt.subplots(figsize=(2.0 * len(header), 0.45 * len(cells) + 1.2))
  ax.axis('off')
  table = ax.table(cellText=cells, colLabels=header, loc='center', cellLoc='left')
  table.auto_set_font_size(False)
  table.set_fontsize(9)
  table.scale(1, 1.4)
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  png = outdir / 'next_token.png'
  fig.savefig(png, dpi=130)
  plt.close(fig)
  return [png, md_path]


def render_bleu_time(outdir: pathlib.Path, race_dirs: dict | None = None) -> list[pathlib.Path]:
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  race_dirs = race_dirs or RACE_DIRS
  runs = {
    name: json.loads((d / 'race.json').read_text())
    for name, d in race_dirs.items()
    if (d / 'race.json').is_file()
  }
  if not runs:
    raise FileNotFoundError(
      'no race.json in '
      + ', '.join(str(d) for d in race_dirs.values())
      + ': run `python -m jdl.transformer.race` (docs/transformer.md)'
    )
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for name, run in runs.items():
    curve = run['validation_curve']
    minutes = [0] + [r['train_seconds'] / 60 for r in curve]
    ax.plot(
      minutes,
      [0] + [r['bleu'] for r in curve],
      marker='o',
      label=f'{name}: test BLEU {run["test_greedy"]["bleu"]:.1f}',
    )
  ax.set_xlabel('training wall time (minutes; one thread each, run side by side)')
  ax.set_ylabel('validation BLEU (greedy)')
  model = next((run['model'] for run in runs.values() if 'model' in run), None)
  if model is None:  # runs from before race.json recorded the model: jdl's config.json has it
    configs = [d / 'config.json' for d in race_dirs.values() if (d / 'config.json').is_file()]
    model = json.loads(configs[0].read_text())['model'] if configs else None
  shape = (
    f', d_model {model["d_model"]}, {model["n_encoder_layers"]}+{model["n_decoder_layers"]} layers'
    if model
    else ''
  )
  direction = next(iter(runs.values()))['direction']
  ax.set_title(f'Ding {direction}{shape}: BLEU against training time')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  path = outdir / 'bleu_time.png'
  fig.savefig(path, dpi=130)
  plt.close(fig)
  return [path]
