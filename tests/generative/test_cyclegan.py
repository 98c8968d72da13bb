"""CycleGAN: the image pool, the unpaired domains, the sub-pixel upsampling, and smoke runs on
Fashion-MNIST and on tfds mock horse2zebra under 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.data import fashion_mnist, unpaired
from jdl.models.cyclegan import CycleGAN, query_pool
from jdl.models.gan import depth_to_space
from jdl.train import loop
from tests.conftest import ROOT

CONFIG = str(ROOT / 'experiments/generative/cyclegan_fmnist.py')
HORSE2ZEBRA = str(ROOT / 'experiments/generative/cyclegan_horse2zebra.py')


def tagged(values):
  """Images [N, 2, 2, 1] whose every pixel is the image's tag, so identities can be followed."""
  return jnp.broadcast_to(
    jnp.asarray(values, jnp.float32)[:, None, None, None], (len(values), 2, 2, 1)
  )


def tags(images):
  return np.asarray(images[:, 0, 0, 0]).tolist()


def test_pool_stores_and_returns_new_images_until_full():
  pool, count = jnp.zeros((10, 2, 2, 1)), jnp.zeros((), jnp.int32)
  pool, count, out = query_pool(pool, count, tagged([1, 2, 3, 4]), jax.random.key(0))
  assert tags(out) == [1, 2, 3, 4] and int(count) == 4
  assert tags(pool) == [1, 2, 3, 4, 0, 0, 0, 0, 0, 0]
  pool, count, out = query_pool(pool, count, tagged(range(5, 11)), jax.random.key(1))
  assert tags(out) == list(range(5, 11)) and tags(pool) == list(range(1, 11))
  pool, count, _ = query_pool(pool, count, tagged([11, 12]), jax.random.key(2))
  assert int(count) == 10  # saturates at the pool's size


def test_full_pool_swaps_half_the_time_and_loses_no_image():
  size = 50
  before = tagged(range(100, 100 + size))
  new = tagged(range(-1, -1001, -1))  # 1,000 new images
  pool, count, out = query_pool(before, jnp.asarray(size), new, jax.random.key(0))
  assert int(count) == size
  # Every image handed back is the new one or came out of the pool, which took a new one in
  # its place: pool and output together hold exactly the old pool and the new images.
  assert sorted(tags(pool) + tags(out)) == sorted(tags(before) + tags(new))
  from_pool = np.mean([o != n for o, n in zip(tags(out), tags(new))])
  assert 0.45 < from_pool < 0.55  # probability 1/2
  # Deterministic given the key (a resumed run continues the same way).
  again = query_pool(before, jnp.asarray(size), new, jax.random.key(0))
  assert tags(again[2]) == tags(out)


def test_pool_is_state_not_parameters():
  def build():
    model = CycleGAN(1, 28, 4, 1, 4, 2, pool_size=7, rngs=nnx.Rngs(0))
    _, params, rest = nnx.split(model, nnx.Param, ...)
    fake = model.generator['a_to_b'](jnp.zeros((2, 28, 28, 1)))
    return (nnx.to_pure_dict(params), nnx.to_pure_dict(rest), fake, model.discriminator['b'](fake))

  params, rest, fake, scores = jax.eval_shape(build)  # shapes only: nothing runs
  assert rest['pool']['a'].shape == (7, 28, 28, 1) and rest['pool_count']['b'].shape == ()
  assert set(params) == {'generator', 'discriminator'}
  assert fake.shape == (2, 28, 28, 1)
  assert scores.shape == (2, 5, 5)  # 5x5 patch scores at 28x28


def test_depth_to_space_upsampling_spans_a_transposed_convolution():
  """A 3x3 convolution to 4x the channels, then depth-to-space, reproduces DCGAN's 4x4 stride-2
  transposed convolution exactly (least squares over the 3x3 patches leaves no residual)."""
  x = jax.random.normal(jax.random.key(0), (4, 6, 6, 2))
  transposed = nnx.ConvTranspose(
    2, 1, (4, 4), strides=(2, 2), padding='SAME', use_bias=False, rngs=nnx.Rngs(0)
  )
  y = np.asarray(transposed(x))  # [4, 12, 12, 1]
  target = y.reshape(4, 6, 2, 6, 2, 1).transpose(0, 1, 3, 2, 4, 5).reshape(-1, 4)
  assert np.array_equal(np.asarray(depth_to_space(jnp.asarray(target.reshape(4, 6, 6, 4)))), y)
  patches = jax.lax.conv_general_dilated_patches(
    x, (3, 3), (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  design = np.asarray(patches).reshape(-1, 18)
  weights, *_ = np.linalg.lstsq(design, target, rcond=None)
  assert np.abs(design @ weights - target).max() < 1e-4 * np.abs(target).max()


def test_unpaired_domains_are_shuffled_separately():
  data = unpaired.load(classes=(7, 9))
  x, y = fashion_mnist.arrays('train')
  train = data.train
  assert len(train.images_a) > 5000 and len(train.images_b) > 5000
  sneaker_rows = {r.tobytes() for r in x[y == 7]}
  boot_rows = {r.tobytes() for r in x[y == 9]}
  batch = train.batch(np.arange(32), np.random.default_rng(0))
  assert all(r.tobytes() in sneaker_rows for r in batch['image_a'])
  assert all(r.tobytes() in boot_rows for r in batch['image_b'])
  # The same A rows meet other B images in another batch: no pairing exists.
  other = train.batch(np.arange(32), np.random.default_rng(1))
  assert np.array_equal(other['image_a'], batch['image_a'])
  assert not np.array_equal(other['image_b'], batch['image_b'])
  test = data.evals['test']
  assert len(test) == 1000 and np.array_equal(
    test.batch(np.arange(4))['image_b'], test.batch(np.arange(4))['image_b']
  )


def test_smoke_run_on_fashion_mnist(tmp_path):
  config = config_lib.load(CONFIG + ':smoke:tshirt_shirt')
  assert config.data.kwargs.classes == (0, 6)
  result = loop.train_and_evaluate(config, tmp_path)
  final = result['final']
  for key in ('cycle', 'identity', 'g_adversarial', 'd_loss', 'test_cycle'):
    assert np.isfinite(final[key])
  state = result['state']
  assert int(state.model_state['pool_count']['a']) == config.gan.pool_size  # 6 x 8 > 10 seen
  assert np.abs(np.asarray(state.model_state['pool']['b'])).sum() > 0
  assert (tmp_path / 'translations.png').is_file()


@pytest.mark.integration
def test_horse2zebra_smoke_on_mock_data_under_8_devices(tmp_path):
  import tensorflow_datasets as tfds

  config = config_lib.load(HORSE2ZEBRA + ':smoke')
  with tfds.testing.mock_data(num_examples=16):
    batch = unpaired.load(**config.data.kwargs.to_dict()).train.batch(
      np.arange(2), np.random.default_rng(0)
    )
    assert batch['image_a'].shape == batch['image_b'].shape == (2, 64, 64, 3)
    result = loop.train_and_evaluate(config, tmp_path)
  assert jax.device_count() == 8 and result['step'] == 2
  assert np.isfinite(result['final']['test_cycle'])
  kernel = result['state'].params['generator']['a_to_b']['stem']['kernel']
  assert kernel.shape == (7, 7, 3, 4)


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match='unknown variant'):
    config_lib.load(CONFIG + ':horse')
