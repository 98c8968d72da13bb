"""Contrastive image-text pretraining (CLIP) on Fashion-MNIST images and the dictionary
descriptions of their classes (jdl.data.descriptions), with two classes held out entirely.

Loss: jdl.models.clip.contrastive_loss over the global batch (multi-positive symmetric InfoNCE).
Metrics: `loss`, `accuracy` (image -> text: the text with the largest logit describes the image's
class), `logit_scale`. After training, `report` evaluates zero-shot classification on the test
images (`zero_shot`): a class's embedding is the normalised mean of its descriptions' embeddings
(CLIP's prompt ensembling), an image goes to the class of largest cosine; on the two held-out
classes (a choice between their descriptions), on the eight seen ones and on all ten; and a
linear probe (logistic regression) on the same image features as the reference. It writes
results.json in the workdir.

Config fields (experiments/multimodal/clip_fmnist.py): model.{embed_dim, image_width, d_model,
n_heads, d_ff, n_layers, max_len, dropout, init_temperature, max_logit_scale} (vocab_size is
set from data.kwargs.vocab_size); data.kwargs.{held_out, vocab_size, max_len, train_rows,
eval_rows}; probe_rows (training images the linear probe fits on).
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.data import descriptions
from jdl.models.clip import Clip, ClipConfig, contrastive_loss
from jdl.train import task as base


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    if config.model.name != 'clip':
      raise ConfigError(
        f"config.model.name: the clip task has model 'clip', not {config.model.name!r}"
      )
    held = tuple(config.data.kwargs.held_out)
    if len(set(held)) != len(held) or not set(held) <= set(range(10)) or len(held) >= 9:
      raise ConfigError(
        f'config.data.kwargs.held_out: distinct classes of 0-9, at most 8, not {held}'
      )
    model = config.model.to_dict()
    model['vocab_size'] = config.data.kwargs.vocab_size
    model['max_len'] = config.data.kwargs.max_len
    self.model_config = ClipConfig.from_config(model, config.dtype)
    self.held_out = held

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return Clip(self.model_config, rngs=rngs)

  def load_data(self) -> base.Splits:
    return descriptions.load_pairs(**self.config.data.kwargs.to_dict())

  def tokenizer(self):
    k = self.config.data.kwargs
    return descriptions.tokenizer(tuple(k.held_out), k.vocab_size)

  def loss(self, model, batch, key, train):
    images = batch['image'].astype(jnp.float32) / 255.0
    image_BxE, text_BxE, scale = model(images, batch['text'], key if train else None)
    loss, logits_BxB = contrastive_loss(
      image_BxE, text_BxE, batch['label'], scale, batch.get('mask')
    )
    best = logits_BxB.argmax(-1)
    correct = (batch['label'][best] == batch['label']).astype(jnp.float32)
    return loss, {'loss': loss, 'accuracy': base.masked_mean(correct, batch), 'logit_scale': scale}

  def batch_units(self, batch) -> tuple[str, int]:
    return 'pairs', batch['image'].shape[0]

  def report(self, plan, state, history, workdir, data):
    model = plan.merge(state.params, state.model_state)
    results = evaluate(model, self.config)
    results['step'] = int(state.step)
    (epath.Path(workdir) / 'results.json').write_text(json.dumps(results, indent=1))
    print(format_results(results))


# ---- evaluation: zero-shot and the linear probe -------------------------------------------------


def _batched(fn, x, size):
  """fn over chunks of `size` rows, the last one padded: one compiled shape for any count."""
  out = []
  for i in range(0, len(x), size):
    chunk = x[i : i + size]
    pad = size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    out.append(np.asarray(fn(chunk))[: size - pad])
  return np.concatenate(out)


def embed_images(model, images_u8: np.ndarray, features: bool = False) -> np.ndarray:
  """[N, E] unit embeddings (or [N, W] features before the projection) of uint8 images."""
  step = nnx.jit(lambda m, x: (m.image_features if features else m.embed_images)(x / 255.0))
  size = min(1000, len(images_u8))
  return _batched(lambda x: step(model, jnp.asarray(x, jnp.float32)), images_u8, size)


def embed_texts(model, tokens: np.ndarray) -> np.ndarray:
  step = nnx.jit(lambda m, t: m.embed_texts(t))
  return _batched(lambda t: step(model, jnp.asarray(t)), tokens, 32)


def class_embeddings(model, config) -> tuple[np.ndarray, list[np.ndarray]]:
  """([10, E] the normalised mean of each class's description embeddings, the per-description
  embeddings of each class)."""
  k = config.data.kwargs
  tok = descriptions.tokenizer(tuple(k.held_out), k.vocab_size)
  per_class = [
    embed_texts(model, descriptions.encode(tok, [d['text'] for d in found], k.max_len))
    for found in descriptions.load()
  ]
  means = np.stack([e.mean(0) for e in per_class])
  return means / np.linalg.norm(means, axis=1, keepdims=True), per_class


def zero_shot_accuracy(image_NxE, labels_N, class_KxE, classes, per_class=False):
  """Accuracy of argmax cosine among `classes`, over the images of those classes (per_class:
  the accuracy of each of them)."""
  classes = np.asarray(classes)
  rows = np.isin(labels_N, classes)
  scores = image_NxE[rows] @ class_KxE[classes].T
  right = classes[scores.argmax(1)] == labels_N[rows]
  if per_class:
    return [float(right[labels_N[rows] == c].mean()) for c in classes]
  return float(right.mean())


def linear_probe(train_x, train_y, test_x, test_y, classes) -> float:
  """Logistic regression (L2, C=1, lbfgs; standardised features) fitted on the training images of
  `classes`, accuracy on their test images."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  tr, te = np.isin(train_y, classes), np.isin(test_y, classes)
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
  probe.fit(train_x[tr], train_y[tr])
  return float(probe.score(test_x[te], test_y[te]))


def evaluate(model, config, test_rows: int | None = None) -> dict:
  from jdl.data import fashion_mnist

  held = list(config.data.kwargs.held_out)
  seen = [c for c in range(10) if c not in held]
  x_test, y_test = fashion_mnist.arrays('t10k')
  x_train, y_train = fashion_mnist.arrays('train')
  test_rows = test_rows or config.get('test_rows')
  if test_rows:
    x_test, y_test = x_test[:test_rows], y_test[:test_rows]
  probe_rows = config.get('probe_rows', 10_000)
  x_train, y_train = x_train[:probe_rows], y_train[:probe_rows]
  model.eval()
  image = embed_images(model, x_test)
  class_emb, _ = class_embeddings(model, config)
  f_train, f_test = embed_images(model, x_train, True), embed_images(model, x_test, True)
  counts = descriptions.counts(descriptions.load())
  return {
    'held_out': held,
    'held_out_names': [descriptions.CLASSES[c] for c in held],
    'test_images': len(y_test),
    'zero_shot_held_out': zero_shot_accuracy(image, y_test, class_emb, held),
    'zero_shot_seen': zero_shot_accuracy(image, y_test, class_emb, seen),
    'zero_shot_all': zero_shot_accuracy(image, y_test, class_emb, list(range(10))),
    'zero_shot_held_out_per_class': zero_shot_accuracy(image, y_test, class_emb, held, True),
    'zero_shot_all_per_class': zero_shot_accuracy(image, y_test, class_emb, range(10), True),
    'chance_held_out': 1 / len(held),
    'chance_seen': 1 / len(seen),
    'chance_all': 0.1,
    'probe_held_out': linear_probe(f_train, y_train, f_test, y_test, held),
    'probe_all': linear_probe(f_train, y_train, f_test, y_test, list(range(10))),
    'probe_train_images': int(len(y_train)),
    'descriptions_per_class': [c['total'] for c in counts],
    'logit_scale': float(model.logit_scale()),
  }


def format_results(r: dict) -> str:
  lines = [
    f'{"test accuracy (%)":28s} {"zero-shot":>10s} {"linear probe":>13s} {"chance":>7s}',
    f'{"held out " + "+".join(r["held_out_names"]):28s} {100 * r["zero_shot_held_out"]:10.2f} '
    f'{100 * r["probe_held_out"]:13.2f} {100 * r["chance_held_out"]:7.1f}',
    f'{"the 8 seen classes":28s} {100 * r["zero_shot_seen"]:10.2f} {"":>13s} '
    f'{100 * r["chance_seen"]:7.1f}',
    f'{"all 10 classes":28s} {100 * r["zero_shot_all"]:10.2f} {100 * r["probe_all"]:13.2f} '
    f'{100 * r["chance_all"]:7.1f}',
  ]
  return '\n'.join(lines)
