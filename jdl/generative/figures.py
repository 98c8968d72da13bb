"""`jdl figures generative`: the VAE's 2-D latent manifold and latent scatter, VAE and GAN samples
(the GAN's at several points of training), CycleGAN's input / translation / reconstruction rows in
both directions, the loss curves of all runs, and the classifier-based scores
(`generative_scores.json` and `.md`; see jdl.generative.scoring).

It reads the trained runs in runs/generative/ (the commands are in docs/generative.md) and the
Fashion-MNIST classifier in runs/simple_fmnist, or the workdir named by $JDL_SCORING_CLASSIFIER.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from jdl.generative import scoring
from jdl.paths import ROOT
from jdl.plots import pyplot, save_grid, show

RUNS = ROOT / 'runs/generative'
EXPERIMENTS = ROOT / 'experiments/generative'
# name -> (config spec, workdir)
RUN_SPECS = {
  'vae': (f'{EXPERIMENTS}/vae_fmnist.py', RUNS / 'vae_fmnist'),
  'vae2d': (f'{EXPERIMENTS}/vae_fmnist.py:2d', RUNS / 'vae2d_fmnist'),
  'gan': (f'{EXPERIMENTS}/gan_fmnist.py', RUNS / 'gan_fmnist'),
  'cyclegan_sneaker_boot': (
    f'{EXPERIMENTS}/cyclegan_fmnist.py:sneaker_boot',
    RUNS / 'cyclegan_sneaker_boot',
  ),
  'cyclegan_tshirt_shirt': (
    f'{EXPERIMENTS}/cyclegan_fmnist.py:tshirt_shirt',
    RUNS / 'cyclegan_tshirt_shirt',
  ),
}
SAMPLES = 10_000


class Run:
  """A trained run: its config, task, metrics history and checkpoints."""

  def __init__(self, name: str):
    from jdl import config as config_lib
    from jdl.train import loop

    spec, self.workdir = RUN_SPECS[name]
    if not (self.workdir / 'checkpoints').is_dir():
      raise FileNotFoundError(
        f'jdl figures generative: no trained run in {self.workdir}; train '
        f'it with `jdl train --config {pathlib.Path(spec).relative_to(ROOT)}'
        f' --workdir {self.workdir.relative_to(ROOT)}`'
      )
    self.name = name
    self.config = config_lib.load(spec)
    self.task = loop.get_task(self.config)
    self.mesh = loop.make_mesh(self.config)
    self.step, self.state = loop.restore_latest(
      self.task, self.mesh, self.workdir, log=lambda _: None
    )
    lines = (self.workdir / 'metrics.jsonl').read_text().splitlines()
    self.history = [json.loads(line) for line in lines]

  def checkpoint_steps(self) -> list[int]:
    return sorted(int(p.name) for p in (self.workdir / 'checkpoints').iterdir() if p.name.isdigit())

  def state_at(self, step: int):
    """The state of one saved step (not only the newest), for samples along training."""
    import orbax.checkpoint as ocp

    from jdl.train import loop
    from jdl.train.checkpoint import Checkpointer

    _, abstract, _, _ = loop.build(self.task, 1, self.mesh)
    checkpointer = Checkpointer(self.workdir, self.config.keep_checkpoints, async_save=False)
    try:
      return checkpointer.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
      ).state
    finally:
      checkpointer.close()

  def last(self, key: str) -> float:
    return next(h[key] for h in reversed(self.history) if key in h)


def render(outdir: pathlib.Path) -> list[pathlib.Path]:
  from jdl.data import fashion_mnist

  outdir = pathlib.Path(outdir)
  classifier_dir = pathlib.Path(
    os.environ.get('JDL_SCORING_CLASSIFIER', scoring.CLASSIFIER_WORKDIR)
  )
  classifier = scoring.Classifier(classifier_dir)
  data = fashion_mnist.load()
  test = data.evals['test']
  test_predictions, real_features = classifier(test['image'] / 255.0)
  _, train_features = classifier(data.train['image'][:SAMPLES] / 255.0)
  scores = {
    'classifier': {
      'workdir': str(
        classifier_dir.relative_to(ROOT) if classifier_dir.is_relative_to(ROOT) else classifier_dir
      ),
      'step': classifier.step,
      'test_accuracy': float((test_predictions == test['label']).mean()),
      'test_class_distribution': scoring.class_distribution(test_predictions).round(4).tolist(),
      'frechet_train_vs_test': scoring.frechet_distance(real_features, train_features),
    }
  }
  paths = []
  runs = {name: Run(name) for name in RUN_SPECS}

  # ---- VAE
  for name in ('vae', 'vae2d'):
    run = runs[name]
    samples = run.task.sample(run.state, SAMPLES)
    scores[name] = {
      'step': run.step,
      'latent_dim': run.config.model.latent_dim,
      'test_negative_elbo': run.last('test_loss'),
      'test_reconstruction': run.last('test_reconstruction'),
      'test_kl': run.last('test_kl'),
      'train_seconds': _train_seconds(run),
      **scoring.score_samples(classifier, samples, real_features),
    }
    path = outdir / f'generative_{name}_samples.png'
    save_grid(
      samples[:64],
      path,
      f'VAE ({run.config.model.latent_dim}-d latent) samples, '
      f'decoder means; test -ELBO {scores[name]["test_negative_elbo"]:.1f} nats/image',
    )
    paths.append(path)
  paths += _vae_latent_figures(runs['vae2d'], test, outdir)

  # ---- GAN
  run = runs['gan']
  samples = run.task.sample(run.state, SAMPLES)
  scores['gan'] = {
    'step': run.step,
    'train_seconds': _train_seconds(run),
    **scoring.score_samples(classifier, samples, real_features),
  }
  paths.append(_gan_progress(run, outdir))

  # ---- CycleGAN
  for name in ('cyclegan_sneaker_boot', 'cyclegan_tshirt_shirt'):
    run = runs[name]
    a, b = run.config.data.kwargs.classes
    source = run.task.load_data().evals['test']
    scores[name] = {'step': run.step, 'train_seconds': _train_seconds(run)}
    for direction, images, target in (
      ('a_to_b', source.images_a, b),
      ('b_to_a', source.images_b, a),
    ):
      fake, rec = run.task.translate(run.state, images, direction)
      src = a if direction == 'a_to_b' else b
      key = f'{fashion_mnist.CLASSES[src]} -> {fashion_mnist.CLASSES[target]}'
      scores[name][key] = scoring.score_translations(classifier, fake, rec, images, target)
    from jdl.tasks.cyclegan import save_translation_rows

    path = outdir / f'generative_{name}.png'
    save_translation_rows(
      run.task,
      run.state,
      source.images_a[:10],
      source.images_b[:10],
      path,
      f'CycleGAN {fashion_mnist.CLASSES[a]} <-> {fashion_mnist.CLASSES[b]}, '
      f'test images, step {run.step}',
      names=(fashion_mnist.CLASSES[a], fashion_mnist.CLASSES[b]),
    )
    paths.append(path)

  paths.append(_loss_curves(runs, outdir))
  path = outdir / 'generative_scores.json'
  path.write_text(json.dumps(scores, indent=1) + '\n')
  paths.append(path)
  path = outdir / 'generative_scores.md'
  path.write_text(scores_markdown(scores))
  paths.append(path)
  print(scores_markdown(scores))
  return paths


def _train_seconds(run: Run) -> float:
  """Wall time of the training steps, summed over the run's log intervals (resumes included;
  evaluation and compilation of the first call counted where they fell in an interval)."""
  steps = [h for h in run.history if 'steps_per_sec' in h]
  total, last = 0.0, 0
  for h in steps:
    if h['step'] > last:
      total += (h['step'] - last) / h['steps_per_sec']
      last = h['step']
  return total


def _vae_latent_figures(run: Run, test: dict, outdir: pathlib.Path) -> list[pathlib.Path]:
  import scipy.stats

  from jdl.data import fashion_mnist

  p = pyplot()
  # The manifold: the decoder's means on a grid of latents at the prior's quantiles, so equal
  # steps on the page are equal steps of probability under N(0, I), as in Kingma and Welling.
  n = 20
  quantiles = scipy.stats.norm.ppf(np.linspace(0.03, 0.97, n))
  z = np.array([[x, y] for y in quantiles[::-1] for x in quantiles], np.float32)
  import jax
  import jax.numpy as jnp

  model = run.task.merge(run.state.params, run.state.model_state)
  images = np.asarray(jax.jit(lambda z: jax.nn.sigmoid(model.decode(z)))(jnp.asarray(z)))
  canvas = images[..., 0].reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
  fig, ax = p.subplots(figsize=(8, 8))
  ax.imshow(canvas, cmap='gray_r', extent=(0, n, 0, n))
  ax.set_xticks(np.arange(n) + 0.5, [f'{q:.1f}' for q in quantiles], fontsize=6)
  ax.set_yticks(np.arange(n) + 0.5, [f'{q:.1f}' for q in quantiles], fontsize=6)
  ax.set(
    xlabel='z1', ylabel='z2', title='VAE 2-D latent manifold: decoder means at the prior quantiles'
  )
  fig.tight_layout()
  manifold = outdir / 'generative_vae2d_manifold.png'
  fig.savefig(manifold, dpi=110)
  p.close(fig)

  mu = run.task.encode(run.state, test['image'])
  fig, ax = p.subplots(figsize=(8.5, 7))
  cmap = p.get_cmap('tab10')
  for c in range(10):
    keep = test['label'] == c
    ax.scatter(mu[keep, 0], mu[keep, 1], s=2, color=cmap(c), label=fashion_mnist.CLASSES[c])
  ax.legend(markerscale=5, fontsize=8, loc='best')
  ax.set(
    xlabel='mu_1',
    ylabel='mu_2',
    title='VAE 2-D latent: posterior means of the 10,000 test images, by class',
  )
  fig.tight_layout()
  scatter = outdir / 'generative_vae2d_scatter.png'
  fig.savefig(scatter, dpi=110)
  p.close(fig)
  return [manifold, scatter]


def _gan_progress(run: Run, outdir: pathlib.Path) -> pathlib.Path:
  """The same 8 x 8 noise vectors through the generator of several checkpoints."""
  steps = run.checkpoint_steps()
  chosen = sorted({steps[round(i * (len(steps) - 1) / 4)] for i in range(5)})
  p = pyplot()
  fig, axes = p.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.6), squeeze=False)
  for ax, step in zip(axes[0], chosen):
    samples = run.task.sample(run.state_at(step), 64, seed=7)
    grid = samples[..., 0].reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(8 * 28, 8 * 28)
    ax.imshow(grid, cmap='gray_r', vmin=0, vmax=1)
    ax.set_title(f'step {step}')
    ax.axis('off')
  fig.suptitle('DCGAN on Fashion-MNIST: the same 64 noise vectors along training')
  fig.tight_layout()
  path = outdir / 'generative_gan_progress.png'
  fig.savefig(path, dpi=100)
  p.close(fig)
  return path


def _loss_curves(runs: dict[str, Run], outdir: pathlib.Path) -> pathlib.Path:
  panels = [
    ('vae', 'VAE (20-d): -ELBO terms, nats/image', ['loss', 'reconstruction', 'kl', 'test_loss']),
    ('vae2d', 'VAE (2-d): -ELBO terms, nats/image', ['loss', 'reconstruction', 'kl', 'test_loss']),
    ('gan', "GAN: players' losses", ['d_loss', 'g_loss']),
    (
      'cyclegan_sneaker_boot',
      'CycleGAN sneaker <-> boot',
      ['g_adversarial', 'cycle', 'identity', 'd_loss'],
    ),
    (
      'cyclegan_tshirt_shirt',
      'CycleGAN T-shirt <-> shirt',
      ['g_adversarial', 'cycle', 'identity', 'd_loss'],
    ),
  ]
  p = pyplot()
  fig, axes = p.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
  for ax, (name, title, keys) in zip(axes, panels):
    history = runs[name].history
    for key in keys:
      points = sorted({h['step']: h[key] for h in history if key in h}.items())
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, label=key, marker='o' if len(points) < 3 else None)
    ax.set(title=title, xlabel='step')
    if name.startswith('vae'):
      ax.set_yscale('log')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  path = outdir / 'generative_losses.png'
  fig.savefig(path, dpi=100)
  p.close(fig)
  return path


def scores_markdown(scores: dict) -> str:
  c = scores['classifier']
  lines = [
    f'Classifier: {c["workdir"]} at step {c["step"]}, test accuracy '
    f'{100 * c["test_accuracy"]:.2f}%; Frechet distance of 10,000 real training images to '
    f'the test set (the floor): {c["frechet_train_vs_test"]:.2f}',
    '',
    '| model | step | test -ELBO (nats/image) | Frechet distance | class distribution of '
    '10,000 samples (%) |',
    '|---|---|---|---|---|',
  ]
  for name in ('vae', 'vae2d', 'gan'):
    s = scores[name]
    elbo = f'{s["test_negative_elbo"]:.2f}' if 'test_negative_elbo' in s else '-'
    dist = ' '.join(f'{100 * f:.1f}' for f in s['class_distribution'])
    lines.append(f'| {name} | {s["step"]} | {elbo} | {s["frechet_distance"]:.2f} | {dist} |')
  lines += [
    '',
    '| CycleGAN | direction | translated into target class | inputs already in '
    'target class | cycle L1 error |',
    '|---|---|---|---|---|',
  ]
  for name in ('cyclegan_sneaker_boot', 'cyclegan_tshirt_shirt'):
    for key, s in scores[name].items():
      if isinstance(s, dict):
        lines.append(
          f'| {name} (step {scores[name]["step"]}) | {key} | '
          f'{100 * s["target_fraction"]:.1f}% | '
          f'{100 * s["inputs_in_target_class"]:.1f}% | {s["cycle_l1"]:.4f} |'
        )
  return '\n'.join(lines) + '\n'


__all__ = ['render', 'show']
