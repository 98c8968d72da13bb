"""Generated images scored by a Fashion-MNIST classifier, as the issue asks: quality measured,
not eyeballed.

The classifier is the simple convnet of `experiments/cnn/simple_fmnist.py`, trained in
`runs/simple_fmnist` (restored with `jdl.train.run.load_run`). Its features are the
penultimate layer: the 5x5x64 = 1,600 flattened convolutional features that its Dense layer
reads (`SimpleConvNet.features`).

  class distribution  the fraction of samples the classifier puts in each class (Fashion-MNIST's
                      test set is uniform: 10% each)
  Frechet distance    ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) between Gaussians
                      fitted to the features of real test images and of samples (Heusel et al.
                      2017's FID, in this classifier's feature space instead of Inception's);
                      the distance between 10,000 real training images and the test set is the
                      floor that finite samples give
  target fraction     CycleGAN: the fraction of translated test images classified as the target
                      domain's class
  cycle error         CycleGAN: mean absolute pixel error of x -> translation -> back, in [0, 1]
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from jdl.paths import ROOT

CLASSIFIER_CONFIG = ROOT / 'experiments/cnn/simple_fmnist.py'
CLASSIFIER_WORKDIR = ROOT / 'runs/simple_fmnist'


class Classifier:
  """The trained simple convnet: logits and penultimate features of images in [0, 1]."""

  def __init__(self, workdir: pathlib.Path = CLASSIFIER_WORKDIR):
    from jdl.train.run import checkpoint_steps, load_run

    if not checkpoint_steps(workdir):  # a local or a gs:// workdir
      raise FileNotFoundError(
        f'the scores need the trained Fashion-MNIST classifier in {workdir}: train it with '
        f'`jdl train --config {CLASSIFIER_CONFIG} --workdir {workdir}`'
      )
    run = load_run(workdir)
    self.step = run.step
    model = run.model
    model.eval()

    def run(x):
      features = model.features(x)
      return model.head(features).argmax(-1), features

    self._run = jax.jit(run)

  def __call__(self, images: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes [N], features [N, 1600]) of images [N, 28, 28, 1] in [0, 1]."""
    images = np.asarray(images, np.float32)
    outs = [self._run(images[i : i + batch]) for i in range(0, len(images), batch)]
    return (
      np.concatenate([np.asarray(o[0]) for o in outs]),
      np.concatenate([np.asarray(o[1], np.float64) for o in outs]),
    )


def class_distribution(predictions: np.ndarray, num_classes: int = 10) -> np.ndarray:
  return np.bincount(predictions, minlength=num_classes) / len(predictions)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """The Frechet distance between Gaussians fitted to two feature sets [N, D].

  Tr((S_a S_b)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
  symmetric S_a^(1/2) S_b S_a^(1/2), which has the same spectrum: two symmetric eigensolves
  instead of `scipy.linalg.sqrtm` of a non-symmetric product (minutes at D = 1,600 on a busy
  CPU, and complex round-off besides).
  """
  mu_a, mu_b = features_a.mean(0), features_b.mean(0)
  cov_a = np.cov(features_a, rowvar=False)
  cov_b = np.cov(features_b, rowvar=False)
  eigvals_a, eigvecs_a = np.linalg.eigh(cov_a)
  root_a = (eigvecs_a * np.sqrt(np.clip(eigvals_a, 0, None))) @ eigvecs_a.T
  middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
  trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def score_samples(classifier: Classifier, samples: np.ndarray, real_features: np.ndarray) -> dict:
  """Class distribution and Frechet distance of generated images [N, 28, 28, 1] in [0, 1]."""
  predictions, features = classifier(samples)
  return {
    'samples': len(samples),
    'class_distribution': class_distribution(predictions).round(4).tolist(),
    'frechet_distance': frechet_distance(real_features, features),
  }


def score_translations(
  classifier: Classifier,
  translations: np.ndarray,
  reconstructions: np.ndarray,
  inputs_u8: np.ndarray,
  target: int,
) -> dict:
  """The fraction of translations classified as `target`, and the cycle error."""
  predictions, _ = classifier(translations)
  cycle = np.abs(reconstructions - inputs_u8.astype(np.float32) / 255).mean()
  source_predictions, _ = classifier(inputs_u8.astype(np.float32) / 255)
  return {
    'images': len(translations),
    'target_class': target,
    'target_fraction': float((predictions == target).mean()),
    'inputs_in_target_class': float((source_predictions == target).mean()),
    'cycle_l1': float(cycle),
  }
