"""The one plotting helper: matplotlib without a display, image grids, and figure saving.

Tasks' reports and every system's figures draw through it.
"""

from __future__ import annotations

import io

import numpy as np
from etils import epath


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


def save_grid(images: np.ndarray, path: epath.PathLike, title: str, columns: int = 8) -> None:
  p = pyplot()
  rows = -(-len(images) // columns)
  fig, axes = p.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), squeeze=False)
  for i, ax in enumerate(axes.flat):
    if i < len(images):
      show(ax, images[i])
    ax.axis('off')
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  save(fig, path)


def save(fig, path: epath.PathLike, dpi: int = 100, **kwargs) -> epath.Path:
  """Writes a figure (PNG, SVG or PDF by the suffix) to a local or remote path and closes it."""
  path = epath.Path(path)
  buffer = io.BytesIO()
  fig.savefig(buffer, format=path.suffix.lstrip('.') or 'png', dpi=dpi, **kwargs)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(buffer.getvalue())
  pyplot().close(fig)
  return path
