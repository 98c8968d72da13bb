"""CycleGAN (Zhu et al. 2017) on horse2zebra at 256x256, exactly as the paper trains it, for TPU:
ResNet generators with 9 blocks and f = 64, 70x70 PatchGAN discriminators, least squares loss,
cycle weight 10, identity weight 5, a pool of 50, Adam lr 2e-4 beta1 0.5, 100 epochs at that rate
and 100 decaying linearly to zero, batch 1 (1,067 horses: 213,400 steps). Images are resized to
286x286, randomly cropped to 256x256 and flipped.

Launch (the data prepared once with `tfds build cycle_gan/horse2zebra`):
  jdl train --multihost --config experiments/generative/cyclegan_horse2zebra.py \
      --workdir gs://BUCKET/cyclegan_horse2zebra
With several devices, raise batch_size to the number of data-parallel devices (instance norm
makes each image's forward pass independent of its batch).

`:smoke` runs two steps of a tiny model at 64x64, on `tfds.testing.mock_data` in the tests.
"""

import ml_collections

from jdl.config import base_config

HORSES = 1067  # trainA of cycle_gan/horse2zebra; trainB has 1,334 zebras


def get_config(arg: str | None = None):
  c = base_config()
  c.task = 'cyclegan'
  c.data.name = 'unpaired'
  c.data.kwargs = {
    'source': 'tfds',
    'name': 'cycle_gan/horse2zebra',
    'image_size': 256,
    'load_size': 286,
  }
  c.model.name = 'cyclegan'
  c.model.channels = 3
  c.model.image_size = 256
  c.model.gen_features = 64
  c.model.gen_blocks = 9
  c.model.disc_features = 64
  c.model.disc_downsamplings = 3
  c.gan = ml_collections.ConfigDict({'lambda_cycle': 10.0, 'lambda_identity': 5.0, 'pool_size': 50})
  c.batch_size = 1
  c.eval_batch_size = 1
  c.num_epochs = 0
  c.num_train_steps = 200 * HORSES
  c.log_every_steps = HORSES
  c.eval_every_steps = -1
  c.checkpoint_every_steps = 5 * HORSES
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-4
  c.optimizer.kwargs = {'b1': 0.5}
  # The rate held for the first half, then linear to zero (the paper's 100 + 100 epochs).
  c.optimizer.schedule = 'linear'
  c.optimizer.decay_fraction = 0.5
  c.mesh.data = 1
  if arg == 'smoke':
    c.data.kwargs = {
      'source': 'tfds',
      'name': 'cycle_gan/horse2zebra',
      'image_size': 64,
      'load_size': 72,
    }
    c.model.image_size = 64
    c.model.gen_features = 4
    c.model.gen_blocks = 1
    c.model.disc_features = 4
    c.gan.pool_size = 4
    c.batch_size = 8
    c.eval_batch_size = 8
    c.mesh.data = -1
    c.num_train_steps = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
  elif arg is not None:
    raise ValueError(f'cyclegan_horse2zebra: unknown variant {arg!r} (smoke)')
  return c
