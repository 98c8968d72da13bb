"""VAE: the ELBO's terms against NumPy, the reparameterised sample's gradient, and smoke runs of
both latent sizes on the real Fashion-MNIST files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.models.vae import VAE
from jdl.tasks import vae
from jdl.train import loop
from tests.conftest import ROOT

CONFIG = str(ROOT / 'experiments/generative/vae_fmnist.py')


def test_bernoulli_reconstruction_term_against_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 3, (3, 4, 4, 1))
  x = (rng.random((3, 4, 4, 1)) < 0.5).astype(np.float64)
  p = 1 / (1 + np.exp(-logits))
  reference = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(
    vae.bernoulli_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32)),
    reference,
    rtol=1e-5,
  )


def log_normal(z, mu, log_var):
  return -0.5 * (np.log(2 * np.pi) + log_var + (z - mu) ** 2 / np.exp(log_var)).sum(-1)


def test_gaussian_kl_against_numpy():
  rng = np.random.default_rng(1)
  mu_q, log_var_q = rng.normal(size=(2, 3)), rng.normal(0, 0.5, (2, 3))
  mu_p, log_var_p = rng.normal(size=(2, 3)), rng.normal(0, 0.5, (2, 3))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  # Against the prior N(0, I): the paper's 0.5 sum(mu^2 + sigma^2 - 1 - log sigma^2).
  paper = 0.5 * (mu_q**2 + np.exp(log_var_q) - 1 - log_var_q).sum(-1)
  np.testing.assert_allclose(vae.gaussian_kl(f32(mu_q), f32(log_var_q)), paper, rtol=1e-5)
  # Between two general diagonal Gaussians: a Monte Carlo estimate of E_q[log q - log p].
  exact = np.asarray(vae.gaussian_kl(f32(mu_q), f32(log_var_q), f32(mu_p), f32(log_var_p)))
  z = mu_q + np.exp(0.5 * log_var_q) * rng.normal(size=(200_000, 2, 3))
  log_ratio = log_normal(z, mu_q, log_var_q) - log_normal(z, mu_p, log_var_p)
  stderr = log_ratio.std(0) / np.sqrt(len(z))
  assert np.all(np.abs(log_ratio.mean(0) - exact) < 4 * stderr + 1e-4)
  # The KL of identical Gaussians is 0; so is that of the prior to itself.
  np.testing.assert_allclose(
    vae.gaussian_kl(f32(mu_q), f32(log_var_q), f32(mu_q), f32(log_var_q)), 0, atol=1e-6
  )
  assert float(vae.gaussian_kl(jnp.zeros(4), jnp.zeros(4))) == 0.0


def test_reparameterised_sample_passes_gradients_to_mu_and_sigma():
  model = VAE(2, (16,), (4, 4, 1), rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).random((5, 4, 4, 1)), jnp.float32)
  graphdef, params = nnx.split(model)

  def loss(params):
    logits, mu, log_var = nnx.merge(graphdef, params)(x, jax.random.key(0))
    return vae.bernoulli_nll(logits, x).mean()

  grads = nnx.to_pure_dict(jax.grad(loss)(params))
  # The reconstruction term alone reaches both heads only through z = mu + sigma * eps.
  assert np.abs(grads['to_mu']['kernel']).sum() > 0
  assert np.abs(grads['to_log_var']['kernel']).sum() > 0


def test_test_set_binarisation_is_fixed_and_follows_intensity():
  images = np.random.default_rng(0).integers(0, 256, (200, 28, 28, 1)).astype(np.uint8)
  a, b = vae.binarize(images, 0), vae.binarize(images, 0)
  assert np.array_equal(a, b) and set(np.unique(a)) <= {0, 255}
  assert abs((a > 0).mean() - (images / 255).mean()) < 0.01


def test_2d_variant_has_a_2d_latent():
  assert config_lib.load(f'{CONFIG}:2d').model.latent_dim == 2
  assert config_lib.load(f'{CONFIG}:2d:smoke').model.latent_dim == 2
  with pytest.raises(ValueError, match='unknown variant'):
    config_lib.load(f'{CONFIG}:3d')


@pytest.mark.parametrize('variant', ['smoke'])  # the 2-d latent runs the same code
def test_smoke_runs(variant, tmp_path):
  config = config_lib.load(f'{CONFIG}:{variant}')
  result = loop.train_and_evaluate(config, tmp_path)
  final = result['final']
  losses = [h['loss'] for h in result['history'] if 'loss' in h]
  assert losses[-1] < losses[0]
  assert final['test_loss'] == pytest.approx(
    final['test_reconstruction'] + final['test_kl'], rel=1e-5
  )
  assert 0 < final['test_kl'] and final['test_loss'] < 784 * np.log(2)  # beats a coin per pixel
  assert (tmp_path / 'samples.png').is_file()
  assert result['state'].params['to_mu']['kernel'].shape[-1] == (2 if '2d' in variant else 20)
