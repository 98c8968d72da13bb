"""A GAN with DCGAN's networks (Radford et al. 2016) on Fashion-MNIST, with the non-saturating
generator loss: generator z(64) -> 7x7x128 -> 14x14x64 -> 28x28 (batch norm, ReLU, tanh),
discriminator 28x28 -> 14x14x32 -> 7x7x64 -> logit (leaky ReLU). Both players train with Adam
(lr 2e-4, beta1 0.5, DCGAN's settings), batch 64, 2,500 steps (2.9 epochs), in one train state
and one jitted step.

Launch:
  jdl train --config experiments/generative/gan_fmnist.py --workdir runs/generative/gan_fmnist

A checkpoint every 250 steps, all kept, so that `jdl figures generative` can show samples at
several points of training. Expected: recognisable clothing of all ten classes (class histogram
and Frechet distance in docs/generative.md). `:smoke` trains a few steps, for the tests.
"""

import ml_collections

from jdl.config import base_config


def get_config(arg: str | None = None):
  c = base_config()
  c.task = 'gan'
  c.data.name = 'fashion_mnist'
  c.data.kwargs = {'validation_rows': 5000}
  c.model.name = 'dcgan'
  c.model.latent_dim = 64
  c.model.features = 32
  c.model.channels = 1
  c.batch_size = 64
  c.eval_batch_size = 1000
  c.num_epochs = 0
  c.num_train_steps = 2500
  c.log_every_steps = 100
  c.eval_every_steps = -1
  c.checkpoint_every_steps = 250
  c.keep_checkpoints = 100
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-4
  c.optimizer.kwargs = {'b1': 0.5}
  # Each network's own optimizer: these sections override the shared fields above for one
  # network (e.g. --config.optimizer.discriminator.learning_rate=1e-4).
  c.optimizer.generator = ml_collections.ConfigDict({'learning_rate': 2e-4})
  c.optimizer.discriminator = ml_collections.ConfigDict({'learning_rate': 2e-4})
  c.steps_per_call = 1
  if arg == 'smoke':
    c.num_train_steps = 8
    c.batch_size = 16
    c.model.features = 8
    c.model.latent_dim = 8
    c.log_every_steps = 4
    c.checkpoint_every_steps = 4
    c.data.kwargs = {'validation_rows': 5000, 'eval_rows': 64}
    c.eval_batch_size = 32
  elif arg is not None:
    raise ValueError(f'gan_fmnist: unknown variant {arg!r} (smoke)')
  return c
