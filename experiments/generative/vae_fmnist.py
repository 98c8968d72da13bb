"""The variational autoencoder (Kingma and Welling 2014) on Fashion-MNIST: MLP encoder and
decoder (784-512-256 and back), a 20-dimensional Gaussian latent, a Bernoulli decoder on
dynamically binarised images; Adam 1e-3, batch 128, 30 epochs (20 for the 2-d latent).

Launch:
  jdl train --config experiments/generative/vae_fmnist.py --workdir runs/generative/vae_fmnist
  jdl train --config experiments/generative/vae_fmnist.py:2d --workdir runs/generative/vae2d_fmnist

Expected: the test negative ELBO (`test_loss`, nats per image, reported as `test_reconstruction`
+ `test_kl`) near 240 for the 20-d latent and 260 for the 2-d one (docs/generative.md has the
measured numbers). `:2d` has a 2-dimensional latent, for the latent manifold and scatter figures
(`jdl figures generative`). `:smoke` (and `:2d:smoke`) train a few steps, for the tests.
"""

from jdl.config import base_config


def get_config(arg: str | None = None):
  args = set(arg.split(':')) if arg else set()
  if args - {'2d', 'smoke'}:
    raise ValueError(f'vae_fmnist: unknown variant {arg!r} (2d, smoke)')
  c = base_config()
  c.task = 'vae'
  c.data.name = 'fashion_mnist'
  c.data.kwargs = {'validation_rows': 5000}
  c.data.binarize = True
  c.model.name = 'vae'
  c.model.latent_dim = 2 if '2d' in args else 20
  c.model.hidden = (512, 256)
  c.model.image_shape = (28, 28, 1)
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.num_epochs = 20 if '2d' in args else 30
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.steps_per_call = 13  # an MLP: several steps per compiled call pay off on CPU (429 = 33 x 13)
  if 'smoke' in args:
    c.num_epochs = 0
    c.num_train_steps = 20
    c.steps_per_call = 1
    c.batch_size = 64
    c.log_every_steps = 10
    c.eval_every_steps = -1
    c.checkpoint_every_steps = -1
    c.data.kwargs = {'validation_rows': 5000, 'eval_rows': 1000}
  return c
