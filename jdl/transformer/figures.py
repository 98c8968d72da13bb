"""The lecture's Transformer figures, from a trained run (by default jdl's side of the equal-time
race on the Spanish-English Bible verses, runs/transformer/race_es_en_jdl_s0):

- `attention`: encoder self-attention and decoder cross-attention weights, one heatmap per head
  and layer, for a test sentence and the model's own (greedy) translation of it;
- `next_token`: the output distribution at each position of a short sentence's translation
  (the lecture's "je suis etudiant" -> "I am a student" table): the top candidate tokens and
  their probabilities, as PNG and Markdown;
- `bleu_time`: validation BLEU against wall time, jdl beside PyTorch (`jdl.transformer.race`),
  one line per framework and seed;
- `translation_length`: test BLEU and chrF by source length for the recurrent encoder-decoder,
  the attentive one and the Transformer (the lecture's "problems with long sequences").

Train the runs first (the equal-time race also writes a checkpoint):
  python -m jdl.transformer.race --framework jdl --config \
      experiments/transformer/bible_es_en.py:race,small --threads 1 --eval-sentences 100 \
      --workdir runs/transformer/race_es_en_jdl_s0
"""

from __future__ import annotations

import pathlib

import numpy as np

from jdl import plots
from jdl.paths import ROOT

WORKDIR = ROOT / 'runs/transformer/race_es_en_jdl_s0'
RACE_DIRS = {
  'jdl (JAX)': ROOT / 'runs/transformer/race_es_en_jdl_s0',
  'PyTorch nn.Transformer': ROOT / 'runs/transformer/race_es_en_torch_s0',
}
# The lecture's "je suis étudiant" in each corpus's own words (the Bible has no students).
SENTENCES = {
  'de-en': 'Ich bin Student.',
  'es-en': 'Yo soy tu siervo.',
  'en-es': 'I am your servant.',
}


def _load(workdir):
  from jdl.train.run import load_run

  try:
    return load_run(workdir)
  except FileNotFoundError as e:
    raise FileNotFoundError(
      f"{e}\n(the lecture's run: python -m jdl.transformer.race --framework jdl --config "
      'experiments/transformer/bible_es_en.py:race,small --threads 1 --eval-sentences 100 '
      f'--workdir {workdir})'
    ) from None


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


def render_attention(outdir, workdir=WORKDIR) -> list[pathlib.Path]:
  plt = plots.pyplot()
  outdir = pathlib.Path(outdir)
  run = _load(workdir)
  tok = run.task.tokenizer()
  sentence = run.task.data_module().test_set(run.config.data.kwargs)[0][3]  # short, held out
  src, out, translation, enc, cross = attention_maps(run.model, tok, sentence)
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
      f'{title}, per head (rows attend to columns); {run.workdir.name}, step {run.step}\n'
      f'"{sentence}"\n-> "{translation}"',
      fontsize=9,
    )
    fig.tight_layout()
    path = outdir / f'{name}.png'
    plots.save(fig, path, dpi=100)
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


def render_next_token(outdir, workdir=WORKDIR, sentence: str | None = None) -> list[pathlib.Path]:
  outdir = pathlib.Path(outdir)
  run = _load(workdir)
  sentence = sentence or SENTENCES[run.config.data.kwargs.direction]
  rows = next_token_table(run.model, run.task.tokenizer(), sentence)
  header = ['position', 'output'] + [f'candidate {i + 1}' for i in range(len(rows[0][1]))]
  cells = [
    [str(t + 1), chosen] + [f'{w} ({p:.2f})' for w, p in cands]
    for t, (chosen, cands) in enumerate(rows)
  ]
  title = f'"{sentence}" -> next-token probabilities ({run.workdir.name}, step {run.step})'
  md = [f'{title}\n', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  md += ['| ' + ' | '.join(c) + ' |' for c in cells]
  md_path = outdir / 'next_token.md'
  md_path.write_text('\n'.join(md) + '\n')
  fig, ax = plots.pyplot().subplots(figsize=(2.0 * len(header), 0.45 * len(cells) + 1.2))
  ax.axis('off')
  table = ax.table(cellText=cells, colLabels=header, loc='center', cellLoc='left')
  table.auto_set_font_size(False)
  table.set_fontsize(9)
  table.scale(1, 1.4)
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  png = outdir / 'next_token.png'
  plots.save(fig, png, dpi=100)
  return [png, md_path]


def render_bleu_time(outdir, race_dirs: dict | None = None, **runs) -> list[pathlib.Path]:
  """The curves of `race_dirs` (label -> workdir), or of the runs given by keyword:
  `jdl_run`, `torch_run` (seed 0) and `jdl_run_1`, `torch_run_1` (seed 1), each optional."""
  from jdl.tasks import translation
  from jdl.train.run import load_config, read_metrics

  if race_dirs is None:
    runs = runs or {'jdl_run': RACE_DIRS['jdl (JAX)']}
    names = {
      'jdl_run': 'jdl (JAX), seed 0',
      'torch_run': 'PyTorch nn.Transformer, seed 0',
      'jdl_run_1': 'jdl (JAX), seed 1',
      'torch_run_1': 'PyTorch nn.Transformer, seed 1',
    }
    race_dirs = {names[k]: d for k, d in runs.items() if d is not None}
  curves = {}
  for name, workdir in race_dirs.items():
    try:
      curves[name] = [r for r in read_metrics(workdir) if 'validation_bleu' in r]
    except FileNotFoundError:
      continue
  if not curves:
    raise FileNotFoundError(
      'no race run in '
      + ', '.join(str(d) for d in race_dirs.values())
      + ': run `python -m jdl.transformer.race` (docs/transformer.md)'
    )
  fig, ax = plots.pyplot().subplots(figsize=(7, 4.3))
  for name, curve in curves.items():
    results = translation.read_results(race_dirs[name])
    torch_side = 'PyTorch' in name
    ax.plot(
      [0] + [r['seconds'] / 60 for r in curve],
      [0] + [r['validation_bleu'] for r in curve],
      marker='s' if torch_side else 'o',
      color='tab:orange' if torch_side else 'tab:blue',
      linestyle='--' if name.endswith('seed 1') else '-',
      label=name + (f': test BLEU {results["bleu"]:.1f}' if results else ''),
    )
  ax.set_xlabel('wall time (minutes; compilation and evaluation included)')
  ax.set_ylabel('validation BLEU (greedy)')
  config = load_config(race_dirs[next(iter(curves))])
  m = config.model
  corpus = {'ding': 'Ding', 'bible_pairs': 'Bible verses'}.get(config.data.name, config.data.name)
  ax.set_title(
    f'{corpus} {config.data.kwargs.direction}, d_model {m.d_model}, '
    f'{m.n_encoder_layers}+{m.n_decoder_layers} layers: BLEU against wall time',
    fontsize=10,
  )
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  path = pathlib.Path(outdir) / 'bleu_time.png'
  plots.save(fig, path, dpi=100)
  return [path]


LENGTH_RUNS = {
  'LSTM encoder-decoder': ROOT / 'runs/transformer/rnn_es_en',
  'attentive LSTM encoder-decoder': ROOT / 'runs/transformer/attn_es_en',
  'Transformer': RACE_DIRS['jdl (JAX)'],
}
LENGTH_BUCKETS = (0, 10, 20, 30, 40, 60)  # source words; the last bucket is open


def length_scores(sources, hypotheses, references, edges=LENGTH_BUCKETS) -> list[dict]:
  """Corpus BLEU and chrF (sacrebleu) of the sentences whose source has [lo, hi) words, per
  bucket; buckets without sentences are left out."""
  from jdl.tasks.translation import corpus_scores

  words = np.array([len(s.split()) for s in sources])
  bounds = list(zip(edges, [*edges[1:], None]))
  out = []
  for lo, hi in bounds:
    idx = np.flatnonzero((words >= lo) & (words < (hi if hi is not None else np.inf)))
    if idx.size:
      scores = corpus_scores([hypotheses[i] for i in idx], [references[i] for i in idx])
      label = f'{lo}-{hi - 1}' if hi is not None else f'{lo}+'
      out.append({'bucket': label, 'sentences': int(idx.size), **scores})
  return out


def render_translation_length(
  outdir, *, rnn_run=None, attention_run=None, transformer_run=None
) -> list[pathlib.Path]:
  """Test BLEU and chrF by source length (words) of each run's results.json translations (the
  whole test set, as the report of `jdl train` wrote them); a missing run is left out."""
  import importlib

  from jdl.tasks import translation
  from jdl.train.run import load_config

  runs = dict(zip(LENGTH_RUNS, (rnn_run, attention_run, transformer_run)))
  curves = {}
  for label, workdir in runs.items():
    results = translation.read_results(workdir) if workdir is not None else None
    if not results or 'hypotheses' not in results:
      continue
    config = load_config(workdir)
    data = importlib.import_module(f'jdl.data.{config.data.name}')
    sources, references = data.test_set(config.data.kwargs)
    n = len(results['hypotheses'])
    curves[label] = length_scores(sources[:n], results['hypotheses'], references[:n])
    how = 'greedy' if results['beam_size'] == 0 else f'beam {results["beam_size"]}'
    curves[label + f' ({how}, step {results["step"]}, BLEU {results["bleu"]:.1f})'] = curves.pop(
      label
    )
  if not curves:
    raise FileNotFoundError(
      'no translation run with test translations in '
      + ', '.join(str(d) for d in runs.values() if d is not None)
      + ': train them first (docs/transformer.md, "Spanish-English")'
    )
  fig, axes = plots.pyplot().subplots(1, 2, figsize=(11, 4))
  for label, buckets in curves.items():
    x = [b['bucket'] for b in buckets]
    axes[0].plot(x, [b['bleu'] for b in buckets], marker='o', label=label)
    axes[1].plot(x, [b['chrf'] for b in buckets], marker='o', label=label)
  counts = next(iter(curves.values()))
  for ax, metric in zip(axes, ('BLEU', 'chrF')):
    ax.set_xlabel(
      'source length (words); sentences: ' + ', '.join(str(b['sentences']) for b in counts)
    )
    ax.set_ylabel(f'test {metric} (sacrebleu)')
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle("Translation quality by source length: the encoder-decoder's fixed-size vector")
  fig.tight_layout()
  path = pathlib.Path(outdir) / 'translation_length.png'
  plots.save(fig, path, dpi=100)
  md = pathlib.Path(outdir) / 'translation_length.md'
  lines = ['| model | ' + ' | '.join(b['bucket'] for b in counts) + ' |']
  lines.append('|---' * (len(counts) + 1) + '|')
  for label, buckets in curves.items():
    lines.append(
      f'| {label} | ' + ' | '.join(f'{b["bleu"]:.1f} / {b["chrf"]:.1f}' for b in buckets) + ' |'
    )
  md.write_text('BLEU / chrF by source length (words)\n\n' + '\n'.join(lines) + '\n')
  return [path, md]


def render_translation_examples(
  outdir, *, jdl_run=RACE_DIRS['jdl (JAX)'], torch_run=None, n: int = 10
) -> list[pathlib.Path]:
  """`n` test sentences spread evenly over the test set (every len/n-th, so short and long ones
  and many books appear): source, reference and each run's translation from its results.json
  (the translations its report made), as a Markdown table."""
  from jdl.tasks import translation
  from jdl.train.run import load_config

  runs = {'jdl': jdl_run, 'PyTorch nn.Transformer': torch_run}
  results = {}
  for label, workdir in runs.items():
    found = translation.read_results(workdir) if workdir is not None else None
    if found and 'hypotheses' in found:
      results[label] = found
  if 'jdl' not in results:
    raise FileNotFoundError(f'no test translations in {jdl_run}: train it first ({__doc__})')
  config = load_config(jdl_run)
  sources, references = translation.Task(config).data_module().test_set(config.data.kwargs)
  count = min(len(r['hypotheses']) for r in results.values())
  picks = np.linspace(0, count - 1, n).round().astype(int)
  header = [
    '#',
    'source',
    'reference',
    *(f'{label} (step {r["step"]})' for label, r in results.items()),
  ]
  cell = lambda text: text.replace('|', '\\|')
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for i in picks:
    row = [str(i + 1), sources[i], references[i], *(r['hypotheses'][i] for r in results.values())]
    lines.append('| ' + ' | '.join(cell(t) for t in row) + ' |')
  how = ', '.join(
    f'{label}: BLEU {r["bleu"]:.1f} over all {r["sentences"]}, '
    + ('greedy' if r['beam_size'] == 0 else f'beam {r["beam_size"]}')
    for label, r in results.items()
  )
  path = pathlib.Path(outdir) / 'translation_examples.md'
  path.write_text(
    f'{config.data.kwargs.direction} test sentences {", ".join(str(i + 1) for i in picks)} of '
    f'{count} ({how})\n\n' + '\n'.join(lines) + '\n'
  )
  return [path]
