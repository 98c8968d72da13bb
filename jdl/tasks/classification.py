"""Image classification with softmax cross-entropy: the simple convnet and GoogLeNet on
Fashion-MNIST here, GoogLeNet on ImageNet on TPU. GoogLeNet's auxiliary heads add 0.3 times
their losses in training, as in the paper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx

from jdl import plots
from jdl.config import ConfigError
from jdl.models.cnn import SimpleConvNet
from jdl.models.googlenet import TABLE1_PARAMS_K, GoogLeNet
from jdl.train import task as base

AUX_WEIGHT = 0.3


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    if config.model.name not in ('simple_cnn', 'googlenet'):
      raise ConfigError(
        f"config.model.name: 'simple_cnn' or 'googlenet', not {config.model.name!r}"
      )

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    if m.name == 'simple_cnn':
      return SimpleConvNet(
        m.num_classes, m.in_channels, m.image_size, dtype=self.compute_dtype, rngs=rngs
      )
    return GoogLeNet(
      m.num_classes,
      m.in_channels,
      m.image_size,
      variant=m.variant,
      stem=m.stem,
      aux_heads=m.aux_heads,
      dtype=self.compute_dtype,
      rngs=rngs,
    )

  def images(self, batch) -> jax.Array:
    """uint8 pixels -> float in [0, 1], normalised by the config's per-channel mean and std."""
    x = batch['image'].astype(jnp.float32) / 255.0
    mean, std = self.config.data.get('mean'), self.config.data.get('std')
    if mean is not None:
      x = (x - jnp.asarray(mean)) / jnp.asarray(std)
    return x.astype(self.compute_dtype)

  def loss(self, model, batch, key, train):
    if train:
      model.train()
    else:
      model.eval()
    rngs = nnx.Rngs(dropout=key) if key is not None else None
    out = model(self.images(batch), train=train, rngs=rngs)
    logits, aux = out if isinstance(out, tuple) else (out, {})
    logits = logits.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    loss = base.masked_mean(ce, batch)
    metrics = {
      'loss': loss,
      'accuracy': base.masked_mean(
        (logits.argmax(-1) == batch['label']).astype(jnp.float32), batch
      ),
    }
    for name, aux_logits in aux.items():
      aux_ce = base.masked_mean(
        optax.softmax_cross_entropy_with_integer_labels(
          aux_logits.astype(jnp.float32), batch['label']
        ),
        batch,
      )
      metrics[f'aux_{name}_loss'] = aux_ce
      loss = loss + AUX_WEIGHT * aux_ce
    metrics['total_loss'] = loss
    return loss, metrics

  def params_report(self, params) -> str | None:
    """GoogLeNet: the paper's Table 1 per stage beside the exact count."""
    if self.config.model.name != 'googlenet':
      return None
    count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
    stages = {'stem': count([params[k] for k in ('stem_conv', 'stem_reduce', 'stem_conv3')])}
    stages.update({name: count(block) for name, block in params['blocks'].items()})
    stages['classifier'] = count(params['classifier'])
    lines = [f'{"stage":12s} {"jdl (exact)":>14s} {"Table 1":>10s}']
    for name, n in stages.items():
      lines.append(f'{name:12s} {n:14,d} {TABLE1_PARAMS_K[name]:9,.1f}K')
    main = sum(stages.values())
    lines.append(f'{"main total":12s} {main:14,d} {sum(TABLE1_PARAMS_K.values()):9,.1f}K')
    if 'aux' in params and params['aux'] is not None:
      for name, head in params['aux'].items():
        lines.append(f'{"aux " + name:12s} {count(head):14,d} {"(not in Table 1)":>10s}')
    return '\n'.join(lines)

  def report(self, plan, state, history, workdir, data):
    final = history[-1] if history else {}
    for split in data.evals:
      if f'{split}_accuracy' in final:
        print(
          f'{split} accuracy {100 * final[f"{split}_accuracy"]:.2f}% '
          f'(loss {final[f"{split}_loss"]:.4f})'
        )
    curves = [h for h in history if 'loss' in h]
    if curves:
      plot_curves(curves, epath.Path(workdir) / 'curves.png')

  def batch_spec(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """tfds images (ImageNet) are remote: the crops jdl.data.tfds_images makes, uint8."""
    if self.config.data.name != 'tfds_images':
      return super().batch_spec(batch_size)
    size, channels = self.config.data.kwargs.image_size, self.config.model.in_channels
    return {
      'image': jax.ShapeDtypeStruct((batch_size, size, size, channels), jnp.uint8),
      'label': jax.ShapeDtypeStruct((batch_size,), jnp.int32),
    }

  def batch_units(self, batch) -> tuple[str, int]:
    return 'images', batch['image'].shape[0]


def plot_curves(history: list[dict], path: epath.PathLike) -> None:
  epochs = [h['epoch'] for h in history]
  fig, (left, right) = plots.pyplot().subplots(1, 2, figsize=(10, 4))
  # One colour per split in both panels.
  train, valid = (
    {'label': 'training', 'color': 'tab:blue'},
    {'label': 'validation', 'color': 'tab:orange'},
  )
  left.plot(epochs, [h['loss'] for h in history], **train)
  right.plot(epochs, [100 * h['accuracy'] for h in history], **train)
  if 'validation_loss' in history[-1]:
    val = [h for h in history if 'validation_loss' in h]
    left.plot([h['epoch'] for h in val], [h['validation_loss'] for h in val], **valid)
    right.plot([h['epoch'] for h in val], [100 * h['validation_accuracy'] for h in val], **valid)
  left.set(xlabel='epoch', ylabel='cross-entropy', title='loss')
  right.set(xlabel='epoch', ylabel='accuracy (%)', title='accuracy')
  for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  plots.save(fig, path, dpi=120)
