"""`jdl figures ioi`: the IOI circuit of the trained model (runs/interp/ioi_gpt), as the paper
draws GPT-2 small's.

1. ioi_patching.png: head-by-layer maps of direct logit attribution, activation patching (each
   head's output from the corrupted run) and path patching at each stage (to the logits, to the
   name movers' queries, to the S-inhibition heads' values), and residual-stream patching by
   layer and position for one template.
2. ioi_attention.png: where the name movers (and the S-inhibition heads) look, on one prompt.
3. ioi_circuit.png: the circuit: its heads by class and layer, the paths between the classes,
   and how faithful it is.
ioi_circuit.json holds every number behind them.
"""

from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np

from jdl import plots

PROMPTS = 200
COLORS = {
  'name mover': '#d62728',
  'S suppression': '#e377c2',
  'negative name mover': '#9467bd',
  'S-inhibition': '#1f77b4',
  'induction': '#2ca02c',
  'duplicate token': '#ff7f0e',
  'previous token': '#8c564b',
}
# The paths between classes (the paper's figure 2): who writes what each class reads.
EDGES = (
  ('previous token', 'induction'),
  ('induction', 'S-inhibition'),
  ('duplicate token', 'S-inhibition'),
  ('S-inhibition', 'name mover'),
  ('S-inhibition', 'negative name mover'),
)


def analyse(model, tokenizer, n: int = PROMPTS, threshold: float = 0.1) -> dict:
  """Everything the figures show, on prompts of the training names and templates in new
  combinations (a model trained from scratch has untrained embeddings for the held-out names)."""
  from jdl.interp import circuit, patching

  data = circuit.prompt_data(tokenizer, n)
  c = data.clean
  found = circuit.find(model, data, threshold)
  attribution = patching.direct_logit_attribution(model, c.tokens, c.end, c.io, c.s)
  heads = patching.patch_heads(model, *data.args)
  one = c.template == c.template[0]  # one template: positions line up for the residual sweep
  resid = patching.patch_residual(
    model, c.tokens[one], data.bad.tokens[one], c.end[one], c.io[one], c.s[one]
  )
  out = {
    'evaluate': circuit.evaluate(model, c),
    **circuit.to_json(found),
    'judge': circuit.judge(model, data, found['classes']),
    'direct_logit_attribution': np.round(np.asarray(attribution.heads).mean(0), 5).tolist(),
    'head_patching': np.round(np.asarray(heads.effect), 5).tolist(),
    'residual_patching': np.round(np.asarray(resid.effect), 5).tolist(),
    'residual_tokens': [tokenizer.decode([t]) for t in c.tokens[one][0][: c.end[one][0] + 1]],
    'example': c.texts[0],
  }
  return out


def _heatmap(ax, values, title, cmap='RdBu', symmetric=True, label='effect'):
  values = np.asarray(values)
  limit = np.abs(values).max() or 1.0
  kw = dict(vmin=-limit, vmax=limit) if symmetric else {}
  im = ax.imshow(values, cmap=cmap, aspect='auto', **kw)
  ax.set_title(title, fontsize=9)
  ax.set_xlabel('head')
  ax.set_ylabel('layer')
  ax.set_xticks(range(values.shape[1]))
  ax.set_yticks(range(values.shape[0]))
  ax.figure.colorbar(im, ax=ax, fraction=0.046, label=label)


def render_patching(a: dict, path: pathlib.Path) -> pathlib.Path:
  fig, axes = plots.pyplot().subplots(2, 3, figsize=(15, 8))
  maps = [
    (a['direct_logit_attribution'], 'direct logit attribution (logit diff units)', 'logits'),
    (a['head_patching'], 'activation patching, head output z\n(all positions; -1 = corrupted)', ''),
    (a['effects']['logits'], 'path patching: head -> logits\n(name movers < 0)', ''),
  ]
  for key, title in (
    ('name mover queries', "path patching: head -> name movers' queries at END\n(S-inhibition)"),
    ('S-inhibition values', 'path patching: head -> S-inhibition values at S2\n(induction, dup.)'),
  ):
    if key in a['effects']:
      maps.append((a['effects'][key], title, ''))
  for ax, (values, title, unit) in zip(axes.flat, maps, strict=False):
    _heatmap(ax, values, title, label=unit or 'normalised effect')
  ax = axes.flat[5]
  resid = np.asarray(a['residual_patching'])
  T = len(a['residual_tokens'])
  im = ax.imshow(resid[:, :T], cmap='RdBu', vmin=-1, vmax=1, aspect='auto')
  ax.set_xticks(range(T))
  ax.set_xticklabels(a['residual_tokens'], rotation=90, fontsize=7)
  ax.set_yticks(range(resid.shape[0]))
  ax.set_ylabel('layer (resid_pre)')
  ax.set_title('residual stream patching, one template', fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.046)
  for ax in list(axes.flat)[len(maps) : 5]:
    ax.axis('off')
  fig.suptitle(
    'IOI on new prompts of the training names and templates: '
    f'logit diff {a["evaluate"]["logit_diff"]:.2f}, '
    f'IO > S {a["evaluate"]["io_over_s"]:.0%} ({a["evaluate"]["prompts"]} prompts); '
    'effects normalised to the clean - corrupted (p_ABC) gap'
  )
  fig.tight_layout()
  return plots.save(fig, path)


def render_attention(model, tokenizer, a: dict, path: pathlib.Path) -> pathlib.Path:
  from jdl.models import hooks

  heads = [('name mover', h) for h in a['classes']['name mover'][:3]]
  heads += [('S-inhibition', h) for h in a['classes']['S-inhibition'][:2]]
  if not heads:  # no circuit found: show the heads with the largest direct effect
    dla = np.asarray(a['direct_logit_attribution'])
    heads = [('top DLA', list(np.unravel_index(dla.argmax(), dla.shape)))]
  tokens = tokenizer.encode(a['example'])
  words = [tokenizer.decode([t]) for t in tokens]
  names = sorted({f'blocks.{h[0]}.attn.pattern' for _, h in heads})
  _, cache = hooks.run_with_cache(model, jnp.asarray(tokens)[None], names=names)
  fig, axes = plots.pyplot().subplots(1, len(heads), figsize=(5.2 * len(heads), 5), squeeze=False)
  for ax, (kind, (layer, head)) in zip(axes[0], heads, strict=True):
    pattern = np.asarray(cache[f'blocks.{layer}.attn.pattern'])[0, head]
    ax.imshow(pattern, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(len(words)))
    ax.set_xticklabels(words, rotation=90, fontsize=7)
    ax.set_yticks(range(len(words)))
    ax.set_yticklabels(words, fontsize=7)
    ax.set_title(f'{kind} {layer}.{head}', fontsize=10)
    ax.set_xlabel('attends to')
  fig.suptitle('Attention patterns on one prompt (row: the position that reads)')
  fig.tight_layout()
  return plots.save(fig, path)


def render_circuit(a: dict, path: pathlib.Path) -> pathlib.Path:
  classes = {k: v for k, v in a['classes'].items() if v}
  order = [k for k in COLORS if k in classes]
  fig, ax = plots.pyplot().subplots(figsize=(10, 6))
  if not order:
    ax.text(0.5, 0.5, 'no head passed the threshold', ha='center', transform=ax.transAxes)
    ax.axis('off')
    return plots.save(fig, path)
  place = {}
  for x, name in enumerate(order):
    heads = classes[name]
    for j, (layer, head) in enumerate(heads):
      xy = (x + 0.18 * (j - (len(heads) - 1) / 2), layer)
      place.setdefault(name, []).append(xy)
      ax.scatter(*xy, s=900, color=COLORS[name], zorder=3)
      ax.annotate(f'{layer}.{head}', xy, ha='center', va='center', color='white', fontsize=8)
  for src, dst in EDGES:
    if src in place and dst in place:
      (x0, y0), (x1, y1) = np.mean(place[src], 0), np.mean(place[dst], 0)
      ax.annotate(
        '', (x1, y1), (x0, y0), arrowprops=dict(arrowstyle='->', color='gray', lw=2), zorder=1
      )
  ax.set_xticks(range(len(order)))
  ax.set_xticklabels(order)
  layers = a['judge'].get('layers') or 1 + max(h[0] for v in classes.values() for h in v)
  ax.set_ylim(-0.7, layers - 0.3)
  ax.set_ylabel('layer')
  ax.set_xlim(-0.6, len(order) - 0.4)
  j = a['judge']
  ax.set_title(
    f'The IOI circuit found by path patching: {j["heads"]} heads; faithfulness '
    f'F(C)/F(M) = {j["F(C)"]:.2f}/{j["F(M)"]:.2f} = {j["faithfulness"]:.0%} '
    f'(all heads mean-ablated: {j["F(empty)"]:.2f})',
    fontsize=10,
  )
  fig.tight_layout()
  return plots.save(fig, path)


def render(outdir: pathlib.Path, workdir) -> list[pathlib.Path]:
  from jdl.interp.cli import load_model

  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  model, tokenizer = load_model(str(workdir), None)
  a = analyse(model, tokenizer)
  a['judge']['layers'] = model.cfg.n_layer
  (outdir / 'ioi_circuit.json').write_text(json.dumps(a, indent=1))
  return [
    render_patching(a, outdir / 'ioi_patching.png'),
    render_attention(model, tokenizer, a, outdir / 'ioi_attention.png'),
    render_circuit(a, outdir / 'ioi_circuit.png'),
    outdir / 'ioi_circuit.json',
  ]
