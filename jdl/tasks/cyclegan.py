"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

Generators G: A -> B and F: B -> A, discriminators D_A and D_B, with the paper's objective:
  generators     LSGAN(D_B(G(a)), 1) + LSGAN(D_A(F(b)), 1)
                 + lambda_cycle (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)          (lambda_cycle = 10)
                 + lambda_identity (|G(b) - b|_1 + |F(a) - a|_1)             (0.5 x 10 = 5)
  discriminators 0.5 (LSGAN(D_B(b), 1) + LSGAN(D_B(pool_B(G(a))), 0)) + the same for D_A
where LSGAN(s, t) is the mean squared distance of the patch scores s to the target t (Mao et al.
2017: least squares instead of the log loss, which the paper found more stable). The
discriminators judge generated images drawn through the pool of the last 50 (see
`jdl.models.cyclegan.query_pool`); the pool lives in the train state, so the step stays pure and
a resumed run continues with the pool it had. Adam (lr 2e-4, beta1 0.5) with the rate held for
the first half of training and decayed linearly to zero over the second (the config's
`optimizer.schedule = 'linear'`, `optimizer.decay_fraction = 0.5`), one optimizer per network
as the base task's NETWORKS give them.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.models.cyclegan import CycleGAN, query_pool
from jdl.plots import pyplot, save, show
from jdl.tasks.gan import EVAL_KEY_SEED, to_unit_range
from jdl.train import task as base


def lsgan(scores: jax.Array, target: float, batch) -> jax.Array:
  """Mean squared distance of every patch score to the target (1 real, 0 generated)."""
  per_image = jnp.square(scores.astype(jnp.float32) - target).reshape(scores.shape[0], -1)
  return base.masked_mean(per_image.mean(-1), batch)


def l1(x: jax.Array, y: jax.Array, batch) -> jax.Array:
  diff = jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)).reshape(x.shape[0], -1)
  return base.masked_mean(diff.mean(-1), batch)


class Task(base.Task):
  NETWORKS = ('generator', 'discriminator')  # each pair: G and F, D_A and D_B

  def __init__(self, config):
    super().__init__(config)
    if config.model.name != 'cyclegan':
      raise ConfigError(
        f"config.model.name: the cyclegan task has model 'cyclegan', not {config.model.name!r}"
      )

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return CycleGAN(
      m.channels,
      m.image_size,
      m.gen_features,
      m.gen_blocks,
      m.disc_features,
      m.disc_downsamplings,
      self.config.gan.pool_size,
      dtype=self.compute_dtype,
      rngs=rngs,
    )

  def losses(self, model, batch, key, train):
    model.train() if train else model.eval()
    key = key if key is not None else jax.random.key(EVAL_KEY_SEED)
    gan = self.config.gan
    real_a = to_unit_range(batch['image_a']).astype(self.compute_dtype)
    real_b = to_unit_range(batch['image_b']).astype(self.compute_dtype)
    g, f = model.generator['a_to_b'], model.generator['b_to_a']
    d_a, d_b = model.discriminator['a'], model.discriminator['b']

    fake_b, fake_a = g(real_a), f(real_b)
    cycle = l1(f(fake_b), real_a, batch) + l1(g(fake_a), real_b, batch)
    identity = l1(g(real_b), real_b, batch) + l1(f(real_a), real_a, batch)
    adversarial_g = lsgan(d_b(fake_b), 1.0, batch) + lsgan(d_a(fake_a), 1.0, batch)
    g_loss = adversarial_g + gan.lambda_cycle * cycle + gan.lambda_identity * identity

    # The discriminators see generated images as data (no gradient into the generators), drawn
    # through the pools in training; evaluation judges the current generators' images alone.
    judged = {'a': jax.lax.stop_gradient(fake_a), 'b': jax.lax.stop_gradient(fake_b)}
    if train and gan.pool_size > 0:
      for i, d in enumerate('ab'):
        pool, count, judged[d] = query_pool(
          model.pool[d].get_value(),
          model.pool_count[d].get_value(),
          judged[d],
          jax.random.fold_in(key, i),
        )
        model.pool[d].set_value(pool)
        model.pool_count[d].set_value(count)
    d_loss_a = 0.5 * (lsgan(d_a(real_a), 1.0, batch) + lsgan(d_a(judged['a']), 0.0, batch))
    d_loss_b = 0.5 * (lsgan(d_b(real_b), 1.0, batch) + lsgan(d_b(judged['b']), 0.0, batch))
    d_loss = d_loss_a + d_loss_b
    metrics = {
      'loss': g_loss + d_loss,
      'g_loss': g_loss,
      'd_loss': d_loss,
      'g_adversarial': adversarial_g,
      'cycle': cycle,
      'identity': identity,
      'd_loss_a': d_loss_a,
      'd_loss_b': d_loss_b,
    }
    return {'discriminator': d_loss, 'generator': g_loss}, metrics

  def translate(
    self, model: nnx.Module, images_u8: np.ndarray, direction: str
  ) -> tuple[np.ndarray, np.ndarray]:
    """(translations, reconstructions) in [0, 1] of uint8 images of the source domain;
    direction 'a_to_b' (G, then F back) or 'b_to_a' (F, then G back)."""
    model.eval()
    back = 'b_to_a' if direction == 'a_to_b' else 'a_to_b'

    def run(x_u8):
      fake = model.generator[direction](to_unit_range(x_u8))
      rec = model.generator[back](fake)
      return (fake.astype(jnp.float32) + 1) / 2, (rec.astype(jnp.float32) + 1) / 2

    run = jax.jit(run)
    outs = [run(images_u8[i : i + 250]) for i in range(0, len(images_u8), 250)]
    return (
      np.concatenate([np.asarray(o[0]) for o in outs]),
      np.concatenate([np.asarray(o[1]) for o in outs]),
    )

  def report(self, plan, state, history, workdir, data):
    final = history[-1] if history else {}
    print(
      f'final: G loss {final.get("g_loss", float("nan")):.4f} (cycle '
      f'{final.get("cycle", float("nan")):.4f}), D loss '
      f'{final.get("d_loss", float("nan")):.4f}'
    )
    test = data.evals['test']
    batch = test.batch(np.arange(8))
    path = epath.Path(workdir) / 'translations.png'
    save_translation_rows(
      self,
      plan.merge(state.params, state.model_state),
      batch['image_a'],
      batch['image_b'],
      path,
      f'CycleGAN at step {int(state.step)}',
    )
    (epath.Path(workdir) / 'report.json').write_text(
      json.dumps({'step': int(state.step), **final}, indent=1)
    )
    print(f'translations: {path}')

  def batch_spec(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """tfds domains (horse2zebra) are remote: the crops jdl.data.unpaired makes, uint8."""
    kwargs = self.config.data.kwargs
    if kwargs.get('source') != 'tfds':
      return super().batch_spec(batch_size)
    shape = (batch_size, kwargs.image_size, kwargs.image_size, self.config.model.channels)
    return {k: jax.ShapeDtypeStruct(shape, jnp.uint8) for k in ('image_a', 'image_b')}

  def batch_units(self, batch) -> tuple[str, int]:
    return 'image pairs', batch['image_a'].shape[0]


def save_translation_rows(
  task: Task,
  model: nnx.Module,
  images_a: np.ndarray,
  images_b: np.ndarray,
  path: epath.PathLike,
  title: str,
  names=('A', 'B'),
) -> None:
  """Rows of input, translation and reconstruction in both directions, like the paper's
  horse-to-zebra panel."""
  rows = []
  for direction, images, (src, dst) in (
    ('a_to_b', images_a, names),
    ('b_to_a', images_b, names[::-1]),
  ):
    fake, rec = task.translate(model, images, direction)
    rows += [
      (f'{src}\n(input)', images / 255.0),
      (f'{src}\n-> {dst}', fake),
      (f'{src}\n-> {dst}\n-> {src}', rec),
    ]
  p = pyplot()
  columns = len(images_a)
  fig, axes = p.subplots(
    len(rows), columns, figsize=(columns * 1.1, len(rows) * 1.15), squeeze=False
  )
  for r, (label, images) in enumerate(rows):
    for c in range(columns):
      show(axes[r, c], np.asarray(images[c], np.float32))
    axes[r, 0].set_ylabel(label, fontsize=7)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path)
