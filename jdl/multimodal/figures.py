"""`jdl figures multimodal`: a trained CLIP run (runs/multimodal/clip_s0) drawn three ways.

multimodal_similarity.png  the cosine between one test image of each class and one description
                           of each class (CLIP's figure 3, at this size)
multimodal_zero_shot.png   test images with the zero-shot probabilities of their top classes,
                           held-out classes marked
multimodal_projection.png  the image and the class-text embeddings in the shared space, on
                           their first two principal components (fitted on both together)
"""

from __future__ import annotations

import pathlib

import numpy as np
from etils import epath

from jdl import plots

WORKDIR = 'runs/multimodal/clip_s0'


def _short(text: str, n: int = 48) -> str:
  return text if len(text) <= n else text[: n - 3] + '...'


def render(outdir, workdir: epath.PathLike = WORKDIR) -> list[pathlib.Path]:
  """Needs a trained run: `jdl train --config experiments/multimodal/clip_fmnist.py --workdir
  runs/multimodal/clip_s0` (about 10 min on 2 shared CPU cores)."""
  from jdl.data import descriptions, fashion_mnist
  from jdl.tasks import clip as task
  from jdl.train.run import load_run

  outdir = pathlib.Path(outdir)
  run = load_run(workdir)
  model, config = run.model, run.config
  model.eval()
  held = list(config.data.kwargs.held_out)
  names = [c + (' *' if i in held else '') for i, c in enumerate(descriptions.CLASSES)]
  images, labels = fashion_mnist.arrays('t10k')
  classes = descriptions.load()
  class_emb, per_class = task.class_embeddings(model, config)
  plt = plots.pyplot()
  paths = []

  # 1. one image and one description (its first, WordNet's core sense) per class
  pick = np.array([np.flatnonzero(labels == c)[0] for c in range(10)])
  image_emb = task.embed_images(model, images[pick])
  text_emb = np.stack([e[0] for e in per_class])
  sim = text_emb @ image_emb.T
  fig = plt.figure(figsize=(11, 6.6))
  grid = fig.add_gridspec(2, 10, height_ratios=[1, 8], hspace=0.05, left=0.42, right=0.98)
  for c in range(10):
    ax = fig.add_subplot(grid[0, c])
    plots.show(ax, images[pick[c]] / 255.0)
  ax = fig.add_subplot(grid[1, :])
  ax.imshow(sim, cmap='viridis', aspect='auto')
  for i in range(10):
    for j in range(10):
      ax.text(
        j,
        i,
        f'{sim[i, j]:.2f}',
        ha='center',
        va='center',
        fontsize=7,
        color='white' if sim[i, j] < sim.max() - 0.4 * np.ptp(sim) else 'black',
      )
  ax.set_yticks(
    range(10), [f'{names[c]}: {_short(classes[c][0]["text"])}' for c in range(10)], fontsize=7
  )
  ax.set_xticks(range(10), names, rotation=45, ha='right', fontsize=7)
  fig.suptitle(
    'Cosine similarity of test images (columns) and class descriptions (rows); '
    '* held out of training',
    fontsize=9,
  )
  paths.append(plots.save(fig, outdir / 'multimodal_similarity.png', dpi=110))

  # 2. zero-shot predictions among all ten classes
  rng = np.random.default_rng(0)
  show = np.concatenate(
    [rng.choice(np.flatnonzero(labels == c), 4, replace=False) for c in held]
    + [rng.choice(np.flatnonzero(~np.isin(labels, held)), 8, replace=False)]
  )
  emb = task.embed_images(model, images[show])
  logits = float(model.logit_scale()) * emb @ class_emb.T
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  fig, axes = plt.subplots(4, 8, figsize=(14, 7), gridspec_kw={'height_ratios': [1, 1, 1, 1]})
  for k, i in enumerate(show):
    ax_img, ax_bar = axes[2 * (k // 8), k % 8], axes[2 * (k // 8) + 1, k % 8]
    plots.show(ax_img, images[i] / 255.0)
    ax_img.set_title(f'true: {names[labels[i]]}', fontsize=7)
    top = np.argsort(-probs[k])[:3][::-1]
    colors = ['tab:green' if t == labels[i] else 'tab:gray' for t in top]
    ax_bar.barh(range(3), probs[k][top], color=colors)
    ax_bar.set_yticks(range(3), [names[t] for t in top], fontsize=6)
    ax_bar.set_xlim(0, 1)
    ax_bar.tick_params(axis='x', labelsize=6)
  fig.suptitle(
    'Zero-shot among all 10 classes (class text = mean of its descriptions); top-3 '
    'probabilities, green = true class; * held out of training',
    fontsize=9,
  )
  fig.tight_layout()
  paths.append(plots.save(fig, outdir / 'multimodal_zero_shot.png', dpi=100))

  # 3. the shared space: 2,000 test images and the ten class texts, PCA of both together
  sub = rng.choice(len(labels), 2000, replace=False)
  emb = task.embed_images(model, images[sub])
  both = np.concatenate([emb, class_emb])
  centred = both - both.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  xy = centred @ vt[:2].T
  fig, ax = plt.subplots(figsize=(8, 7))
  for c in range(10):
    rows = labels[sub] == c
    color = f'C{c}'
    ax.scatter(*xy[:2000][rows].T, s=4, alpha=0.4, color=color, marker='x' if c in held else 'o')
    ax.scatter(*xy[2000 + c], s=180, marker='*', color=color, edgecolor='black')
    ax.annotate(names[c], xy[2000 + c], fontsize=8, xytext=(4, 4), textcoords='offset points')
  ax.set(
    xlabel='PC 1',
    ylabel='PC 2',
    title='Image embeddings (dots; x = held-out class) and class-text embeddings (stars)',
  )
  ax.title.set_fontsize(9)
  paths.append(plots.save(fig, outdir / 'multimodal_projection.png', dpi=100))
  return paths
