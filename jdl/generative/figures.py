"""`jdl figures generative`: the VAE's 2-D latent manifold and latent scatter, VAE and GAN samples
(the GAN's at several points of training), CycleGAN's input / translation / reconstruction rows in
both directions, the loss curves of all runs, and the classifier-based scores
(`generative_scores.json` and `.md`; see jdl.generative.scoring).

It reads the trained runs in runs/generative/ (the commands are in docs/generative.md) and the
Fashion-MNIST classifier in runs/simple_fmnist, or the workdir named by $JDL_SCORING_CLASSIFIER;
`jdl figures generative --run NAME=DIR` reads a run from elsewhere (gs:// too). A run that is
missing leaves its panels out (`jdl figures` names the command that trains it), and without the
classifier the scores are left out.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from jdl.generative import scoring
from jdl.paths import ROOT
from jdl.plots import pyplot, save, save_grid, show
from jdl.train.run import Run, checkpoint_steps, load_run

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


def load(name: str, workdir=None) -> Run:
  """A trained run of RUN_SPECS (in its conventional workdir, or `workdir`), newest checkpoint;
  the message names the command if missing."""
  spec, default = RUN_SPECS[name]
  workdir = default if workdir is None else workdir
  if not checkpoint_steps(workdir):
    raise FileNotFoundError(
      f'jdl figures generative: no trained run in {workdir}; train it with `jdl train --config '
      f'{pathlib.Path(spec).relative_to(ROOT)} --workdir {workdir}`'
    )
  return load_run(workdir)


def last(history: list[dict], key: str) -> float:
  return next(h[key] for h in reversed(history) if key in h)


DEFAULT = object()  # a keyword not given: the run's conventional workdir


def render(
  outdir,
  vae=DEFAULT,
  vae2d=DEFAULT,
  gan=DEFAULT,
  cyclegan_sneaker_boot=DEFAULT,
  cyclegan_tshirt_shirt=DEFAULT,
  classifier=DEFAULT,
) -> list[pathlib.Path]:
  """The panels of every run given (a workdir, local or gs://; None leaves that run out), and
  the scores when the classifier is given too."""
  from jdl.data import fashion_mnist

  outdir = pathlib.Path(outdir)
  given = dict(
    vae=vae,
    vae2d=vae2d,
    gan=gan,
    cyclegan_sneaker_boot=cyclegan_sneaker_boot,
    cyclegan_tshirt_shirt=cyclegan_tshirt_shirt,
  )
  workdirs = {n: RUN_SPECS[n][1] if w is DEFAULT else w for n, w in given.items()}
  runs = {name: load(name, w) for name, w in workdirs.items() if w is not None}
  if not runs:
    raise FileNotFoundError('jdl figures generative: no run given')
  histories = {name: run.history() for name, run in runs.items()}
  if classifier is DEFAULT:
    classifier = os.environ.get('JDL_SCORING_CLASSIFIER', scoring.CLASSIFIER_WORKDIR)
  scores, score = {}, None
  if classifier is not None:
    score = scoring.Classifier(classifier)
    data = fashion_mnist.load()
    test = data.evals['test']
    test_predictions, real_features = score(test['image'] / 255.0)
    _, train_features = score(data.train['image'][:SAMPLES] / 255.0)
    scores['classifier'] = {
      'workdir': _shown(classifier),
      'step': score.step,
      'test_accuracy': float((test_predictions == test['label']).mean()),
      'test_class_distribution': scoring.class_distribution(test_predictions).round(4).tolist(),
      'frechet_train_vs_test': scoring.frechet_distance(real_features, train_features),
    }
  paths = []

  # ---- VAE
  for name in ('vae', 'vae2d'):
    if name not in runs:
      continue
    run, history = runs[name], histories[name]
    samples = run.task.sample(run.model, SAMPLES)
    scores[name] = {
      'step': run.step,
      'latent_dim': run.config.model.latent_dim,
      'test_negative_elbo': last(history, 'test_loss'),
      'test_reconstruction': last(history, 'test_reconstruction'),
      'test_kl': last(history, 'test_kl'),
      'train_seconds': _train_seconds(history),
    }
    if score:
      scores[name].update(scoring.score_samples(score, samples, real_features))
    path = outdir / f'generative_{name}_samples.png'
    save_grid(
      samples[:64],
      path,
      f'VAE ({run.config.model.latent_dim}-d latent) samples, '
      f'decoder means; test -ELBO {scores[name]["test_negative_elbo"]:.1f} nats/image',
    )
    paths.append(path)
  if 'vae2d' in runs:
    paths += _vae_latent_figures(runs['vae2d'], fashion_mnist.load().evals['test'], outdir)

  # ---- GAN
  if 'gan' in runs:
    run = runs['gan']
    scores['gan'] = {'step': run.step, 'train_seconds': _train_seconds(histories['gan'])}
    if score:
      samples = run.task.sample(run.model, SAMPLES)
      scores['gan'].update(scoring.score_samples(score, samples, real_features))
    paths.append(_gan_progress(run, outdir))

  # ---- CycleGAN
  for name in ('cyclegan_sneaker_boot', 'cyclegan_tshirt_shirt'):
    if name not in runs:
      continue
    run = runs[name]
    a, b = run.config.data.kwargs.classes
    source = run.trainer.data.evals['test']
    scores[name] = {'step': run.step, 'train_seconds': _train_seconds(histories[name])}
    for direction, images, target in (
      ('a_to_b', source.images_a, b),
      ('b_to_a', source.images_b, a),
    ):
      if not score:
        continue
      fake, rec = run.task.translate(run.model, images, direction)
      src = a if direction == 'a_to_b' else b
      key = f'{fashion_mnist.CLASSES[src]} -> {fashion_mnist.CLASSES[target]}'
      scores[name][key] = scoring.score_translations(score, fake, rec, images, target)
    from jdl.tasks.cyclegan import save_translation_rows

    path = outdir / f'generative_{name}.png'
    save_translation_rows(
      run.task,
      run.model,
      source.images_a[:10],
      source.images_b[:10],
      path,
      f'CycleGAN {fashion_mnist.CLASSES[a]} <-> {fashion_mnist.CLASSES[b]}, '
      f'test images, step {run.step}',
      names=(fashion_mnist.CLASSES[a], fashion_mnist.CLASSES[b]),
    )
    paths.append(path)

  paths.append(_loss_curves(histories, outdir))
  path = outdir / 'generative_scores.json'
  path.write_text(json.dumps(scores, indent=1) + '\n')
  paths.append(path)
  path = outdir / 'generative_scores.md'
  path.write_text(scores_markdown(scores))
  paths.append(path)
  print(scores_markdown(scores))
  return paths


def _shown(workdir) -> str:
  """A workdir as the scores name it: relative to the repository when inside it."""
  path = pathlib.Path(os.fspath(workdir))
  return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else workdir)


def _train_seconds(history: list[dict]) -> float:
  """Wall time of the training steps, summed over the run's log intervals (resumes included;
  evaluation and compilation of the first call counted where they fell in an interval)."""
  steps = [h for h in history if 'steps_per_sec' in h]
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

  model = run.model
  images = np.asarray(jax.jit(lambda z: jax.nn.sigmoid(model.decode(z)))(jnp.asarray(z)))
  canvas = images[..., 0].reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
  fig, ax = p.subplots(figsize=(6.6, 6.6))
  ax.imshow(canvas, cmap='gray_r', extent=(0, n, 0, n), interpolation='nearest')
  ax.set_xticks(np.arange(n) + 0.5, [f'{q:.1f}' for q in quantiles], fontsize=6)
  ax.set_yticks(np.arange(n) + 0.5, [f'{q:.1f}' for q in quantiles], fontsize=6)
  ax.set(
    xlabel='z1', ylabel='z2', title='VAE 2-D latent manifold: decoder means at the prior quantiles'
  )
  fig.tight_layout()
  manifold = outdir / 'generative_vae2d_manifold.png'
  save(fig, manifold, dpi=100, colors=64)  # 400 images of grey: 64 levels keep it small

  mu = run.task.encode(run.model, test['image'])
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
  save(fig, scatter, dpi=100)
  return [manifold, scatter]


def _gan_progress(run: Run, outdir: pathlib.Path) -> pathlib.Path:
  """The same 8 x 8 noise vectors through the generator of several checkpoints."""
  steps = checkpoint_steps(run.workdir)
  chosen = sorted({steps[round(i * (len(steps) - 1) / 4)] for i in range(5)})
  p = pyplot()
  fig, axes = p.subplots(1, len(chosen), figsize=(2.6 * len(chosen), 3.0), squeeze=False)
  for ax, step in zip(axes[0], chosen):
    samples = run.task.sample(load_run(run.workdir, step=step).model, 64, seed=7)
    grid = samples[..., 0].reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(8 * 28, 8 * 28)
    ax.imshow(grid, cmap='gray_r', vmin=0, vmax=1, interpolation='nearest')
    ax.set_title(f'step {step}')
    ax.axis('off')
  fig.suptitle('DCGAN on Fashion-MNIST: the same 64 noise vectors along training', fontsize=10)
  fig.tight_layout()
  path = outdir / 'generative_gan_progress.png'
  save(fig, path)
  return path


def _loss_curves(histories: dict[str, list[dict]], outdir: pathlib.Path) -> pathlib.Path:
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
  panels = [panel for panel in panels if panel[0] in histories]
  p = pyplot()
  fig, axes = p.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
  for ax, (name, title, keys) in zip(axes[0], panels):
    history = histories[name]
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
  save(fig, path)
  return path


def scores_markdown(scores: dict) -> str:
  c = scores.get('classifier')
  if c is None:
    lines = ['No classifier run (runs/simple_fmnist): the sample scores are left out.', '']
  else:
    lines = [
      f'Classifier: {c["workdir"]} at step {c["step"]}, test accuracy '
      f'{100 * c["test_accuracy"]:.2f}%; Frechet distance of 10,000 real training images to '
      f'the test set (the floor): {c["frechet_train_vs_test"]:.2f}',
      '',
    ]
  lines += [
    '| model | step | test -ELBO (nats/image) | Frechet distance | class distribution of '
    '10,000 samples (%) |',
    '|---|---|---|---|---|',
  ]
  for name in ('vae', 'vae2d', 'gan'):
    if name not in scores:
      continue
    s = scores[name]
    elbo = f'{s["test_negative_elbo"]:.2f}' if 'test_negative_elbo' in s else '-'
    dist = ' '.join(f'{100 * f:.1f}' for f in s.get('class_distribution', [])) or '-'
    frechet = f'{s["frechet_distance"]:.2f}' if 'frechet_distance' in s else '-'
    lines.append(f'| {name} | {s["step"]} | {elbo} | {frechet} | {dist} |')
  lines += [
    '',
    '| CycleGAN | direction | translated into target class | inputs already in '
    'target class | cycle L1 error |',
    '|---|---|---|---|---|',
  ]
  for name in ('cyclegan_sneaker_boot', 'cyclegan_tshirt_shirt'):
    for key, s in scores.get(name, {}).items():
      if isinstance(s, dict):
        lines.append(
          f'| {name} (step {scores[name]["step"]}) | {key} | '
          f'{100 * s["target_fraction"]:.1f}% | '
          f'{100 * s["inputs_in_target_class"]:.1f}% | {s["cycle_l1"]:.4f} |'
        )
  return '\n'.join(lines) + '\n'


__all__ = ['render', 'show']
