"""Vision figures: `jdl figures cnn` (a trained convnet's curves, predictions and confusion
matrix on the Fashion-MNIST test set) and `jdl figures tensors` (the lecture's tensor examples,
with the shapes and dtypes of real batches from jdl's loaders)."""

from __future__ import annotations

import pathlib

import numpy as np
from etils import epath

from jdl import plots
from jdl.paths import ROOT

CNN_WORKDIR = ROOT / 'runs/simple_fmnist'
GOOGLENET_WORKDIR = ROOT / 'runs/googlenet_fmnist'


def render_cnn(outdir, workdir: epath.PathLike = CNN_WORKDIR) -> list[pathlib.Path]:
  """Needs a trained run: `jdl train --config experiments/cnn/simple_fmnist.py --workdir
  runs/simple_fmnist` (about half an hour on 2 CPU cores)."""
  return _render_classifier(outdir, workdir, 'cnn', 'Simple convnet')


def render_googlenet(outdir, workdir: epath.PathLike = GOOGLENET_WORKDIR) -> list[pathlib.Path]:
  """Needs a trained run: `jdl train --config experiments/cnn/googlenet_fmnist.py --workdir
  runs/googlenet_fmnist` (hours on 2 CPU cores, 90 s on one H100)."""
  return _render_classifier(outdir, workdir, 'googlenet', 'GoogLeNet')


def _render_classifier(outdir, workdir, prefix: str, title: str) -> list[pathlib.Path]:
  """A trained Fashion-MNIST classifier's curves, first 32 test predictions and confusion
  matrix, as PREFIX_curves.png, PREFIX_predictions.png and PREFIX_confusion.png."""
  import jax

  from jdl.data import fashion_mnist, pipeline
  from jdl.tasks.classification import plot_curves
  from jdl.train.run import load_run

  outdir = pathlib.Path(outdir)
  run = load_run(workdir)
  model = run.model
  model.eval()
  test = run.trainer.data.evals['test']
  predict = jax.jit(lambda batch: model(run.task.images(batch), train=False).argmax(-1))
  predictions = np.concatenate(
    [np.asarray(predict(b))[b['mask'] > 0] for b in pipeline.eval_batches(test, 1000)]
  )
  labels = test['label']
  accuracy = float((predictions == labels).mean())
  plt = plots.pyplot()
  paths = []

  path = outdir / f'{prefix}_curves.png'
  plot_curves([h for h in run.history() if 'loss' in h], path)
  paths.append(path)

  fig, axes = plt.subplots(4, 8, figsize=(12, 7))
  for ax, i in zip(axes.flat, range(32)):
    ax.imshow(test['image'][i, ..., 0], cmap='gray_r')
    ok = predictions[i] == labels[i]
    ax.set_title(
      f'{fashion_mnist.CLASSES[predictions[i]]}\n(true: {fashion_mnist.CLASSES[labels[i]]})',
      fontsize=7,
      color='tab:green' if ok else 'tab:red',
    )
    ax.axis('off')
  fig.suptitle(
    f'{title}, step {run.step}: the first 32 test images, predicted (true); '
    f'test accuracy {100 * accuracy:.2f}%'
  )
  fig.tight_layout()
  path = outdir / f'{prefix}_predictions.png'
  plots.save(fig, path, dpi=100)
  paths.append(path)

  confusion = np.zeros((10, 10), int)
  np.add.at(confusion, (labels, predictions), 1)
  fig, ax = plt.subplots(figsize=(7.5, 6.5))
  im = ax.imshow(confusion, cmap='Blues')
  for r in range(10):
    for c in range(10):
      ax.text(
        c,
        r,
        confusion[r, c],
        ha='center',
        va='center',
        fontsize=7,
        color='white' if confusion[r, c] > confusion.max() / 2 else 'black',
      )
  ax.set_xticks(range(10), fashion_mnist.CLASSES, rotation=45, ha='right', fontsize=8)
  ax.set_yticks(range(10), fashion_mnist.CLASSES, fontsize=8)
  ax.set(
    xlabel='predicted',
    ylabel='true',
    title=f'Confusion matrix, 10,000 test images ({100 * accuracy:.2f}% correct)',
  )
  fig.colorbar(im)
  fig.tight_layout()
  path = outdir / f'{prefix}_confusion.png'
  plots.save(fig, path, dpi=100)
  paths.append(path)
  return paths


def render_tensors(outdir) -> list[pathlib.Path]:
  """The lecture's ranks 2 to 5, each a real batch from jdl's loaders."""
  from jdl.data import diabetes, fashion_mnist, pipeline

  tabular = next(iter(pipeline.train_dataset(diabetes.load().train, 32, 0)))['x']
  images = next(iter(pipeline.train_dataset(fashion_mnist.load().train, 128, 0)))['image']
  sequences = images[..., 0].astype(np.float32) / 255  # rows as time steps (issue: row-wise LSTM)
  test = fashion_mnist.load().evals['test']['image']
  video = np.stack([test[i : i + 8] for i in range(0, 16 * 8, 8)])  # 16 clips of 8 frames
  examples = [
    (
      'tabular (2-D)',
      '{instances, features}',
      tabular,
      'diabetes: 32 patients x 10 standardized features',
    ),
    (
      'sequences (3-D)',
      '{instances, time, features}',
      sequences,
      'Fashion-MNIST read row by row: 28 steps of 28 pixels',
    ),
    ('images (4-D)', '{instances, height, width, colour}', images, 'Fashion-MNIST training batch'),
    (
      'video (5-D)',
      '{instances, frames, height, width, colour}',
      video,
      'no video set installs offline: 8 consecutive test images stacked as frames',
    ),
  ]
  fig, axes = plots.pyplot().subplots(1, 4, figsize=(16, 4.2))
  for ax, (name, axes_names, x, source) in zip(axes, examples):
    if x.ndim == 2:
      ax.imshow(x[:16], cmap='coolwarm', aspect='auto')
    elif x.ndim == 3:
      ax.imshow(x[0], cmap='gray_r', aspect='auto')
      ax.set_ylabel('time step')
    elif x.ndim == 4:
      ax.imshow(np.concatenate(list(x[:4, ..., 0]), axis=1), cmap='gray_r')
    else:
      ax.imshow(np.concatenate(list(x[0, :6, ..., 0]), axis=1), cmap='gray_r')
    ax.set_title(f'{name}: {axes_names}\nshape {tuple(x.shape)}, {x.dtype}', fontsize=9)
    ax.set_xlabel(source, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle("Tensors of rank 2 to 5, as batches from jdl's own loaders")
  fig.tight_layout()
  path = pathlib.Path(outdir) / 'tensors.png'
  plots.save(fig, path, dpi=100)
  for name, axes_names, x, source in examples:
    print(f'{name:16s} {axes_names:44s} shape {str(tuple(x.shape)):22s} {x.dtype}  ({source})')
  return [path]
