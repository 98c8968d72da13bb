"""The one plotting helper: matplotlib without a display, image grids, and figure saving.

Tasks' reports and every system's figures draw through it.
"""

from __future__ import annotations

import pathlib

import numpy as np


def pyplot():
  """matplotlib.pyplot on the Agg backend (files only, no display)."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as pyplot

  return pyplot


def show(ax, image_HxWxC: np.ndarray) -> None:
  """One image in [0, 1]: grey images dark on light, as the Fashion-MNIST figures show them."""
  if image_HxWxC.shape[-1] == 1:
    ax.imshow(image_HxWxC[..., 0], cmap='gray_r', vmin=0, vmax=1)
  else:
    ax.imshow(np.clip(image_HxWxC, 0, 1))
  ax.set_xticks([])
  ax.set_yticks([])


def save_grid(images: np.ndarray, path: pathlib.Path, title: str, columns: int = 8) -> None:
  p = pyplot()
  rows = -(-len(images) // columns)
  fig, axes = p.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), squeeze=False)
  for i, ax in enumerate(axes.flat):
    if i < len(images):
      show(ax, images[i])
    ax.axis('off')
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  p.close(fig)
