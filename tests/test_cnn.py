"""The vision models: shapes, parameter counts, auxiliary heads, preprocessing, smoke runs on
the real Fashion-MNIST files and on tfds mock ImageNet under 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.data import fashion_mnist, tfds_images
from jdl.models.cnn import SimpleConvNet
from jdl.models.googlenet import GoogLeNet
from jdl.train import loop
from tests.conftest import ROOT, run_jdl


def n_params(model_fn):
  state = jax.eval_shape(lambda: nnx.to_pure_dict(nnx.state(model_fn(), nnx.Param)))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))


def test_simple_convnet_shape_and_count():
  model = SimpleConvNet(rngs=nnx.Rngs(0))
  assert model(jnp.zeros((3, 28, 28, 1))).shape == (3, 10)
  assert n_params(lambda: SimpleConvNet(rngs=nnx.Rngs(0))) == 34_826  # Keras' model.summary()


@pytest.mark.parametrize(
  'variant,main_total',
  [
    ('paper', 6_998_552),  # biases and true 5x5 convolutions; Table 1's column sums to 6,797.7K
    ('batchnorm', 6_624_904),  # equals torchvision's GoogLeNet (BN, 3x3 in the 5x5 branch)
  ],
)
def test_googlenet_counts_at_1000_classes(variant, main_total):
  build = lambda aux: GoogLeNet(1000, variant=variant, aux_heads=aux, rngs=nnx.Rngs(0))
  assert n_params(lambda: build(False)) == main_total
  assert n_params(lambda: build(True)) - main_total == (
    6_379_728 if variant == 'paper' else 6_379_984
  )


def apply_abstractly(build, x, train=False):
  """Output shapes of a model call, traced without running it (GoogLeNet runs slowly op by op)."""
  return jax.eval_shape(lambda: build()(x, train=train, rngs=nnx.Rngs(dropout=0)))


def test_googlenet_aux_heads_only_in_training():
  build = lambda: GoogLeNet(10, 1, 28, stem='small', variant='batchnorm', rngs=nnx.Rngs(0))
  x = jnp.zeros((2, 28, 28, 1))
  assert apply_abstractly(build, x, train=False).shape == (2, 10)
  logits, aux = apply_abstractly(build, x, train=True)
  assert logits.shape == (2, 10) and sorted(aux) == ['4a', '4d']
  assert all(a.shape == (2, 10) for a in aux.values())


def test_googlenet_imagenet_shape():
  build = lambda: GoogLeNet(1000, rngs=nnx.Rngs(0))
  assert apply_abstractly(build, jnp.zeros((1, 224, 224, 3))).shape == (1, 1000)


def test_params_cli_prints_table1_beside_the_count():
  proc = run_jdl('params', '--config', ROOT / 'experiments/cnn/googlenet_imagenet.py', check=True)
  assert 'main total' in proc.stdout and '6,998,552' in proc.stdout and '6,797.7K' in proc.stdout
  assert 'aux 4a' in proc.stdout


def test_preprocessing_crops_to_size():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (47, 93, 3), dtype=np.uint8)
  assert tfds_images.random_resized_crop(image, 32, rng).shape == (32, 32, 3)
  assert tfds_images.center_crop(image, 32).shape == (32, 32, 3)
  grey = rng.integers(0, 255, (28, 28, 1), dtype=np.uint8)
  assert tfds_images.center_crop(grey, 24).shape == (24, 24, 1)


def test_fashion_mnist_real_files():
  data = fashion_mnist.load()
  assert data.train['image'].shape == (55_000, 28, 28, 1)
  assert data.evals['test']['image'].shape == (10_000, 28, 28, 1)
  assert data.train['image'].dtype == np.uint8
  assert np.bincount(data.evals['test']['label']).tolist() == [1000] * 10


def test_missing_data_names_the_install_command(tmp_path):
  proc = run_jdl(
    'train',
    '--config',
    ROOT / 'experiments/cnn/simple_fmnist.py:smoke',
    '--workdir',
    tmp_path,
    env={'JDL_FASHION_MNIST_DIR': str(tmp_path / 'none')},
  )
  assert proc.returncode == 2
  assert 'apt-get install -y dataset-fashion-mnist' in proc.stderr


# GoogLeNet's smoke run is mostly compilation (about 200 s on 2 loaded cores): second tier.
@pytest.mark.parametrize(
  'name', ['simple_fmnist', pytest.param('googlenet_fmnist', marks=pytest.mark.integration)]
)
def test_smoke_training_on_fashion_mnist(name, tmp_path):
  config = config_lib.load(str(ROOT / f'experiments/cnn/{name}.py') + ':smoke')
  result = loop.train_and_evaluate(config, tmp_path)
  final = result['final']
  assert np.isfinite(final['loss']) and 0 <= final['test_accuracy'] <= 1
  if name == 'simple_fmnist':
    losses = [h['loss'] for h in result['history'] if 'loss' in h]
    assert losses[-1] < losses[0]
    assert final['test_accuracy'] > 0.5  # 30 steps: far above chance (0.1)
  else:  # the auxiliary heads train too, and evaluation runs the main head alone
    assert 'aux_4a_loss' in final and 'aux_4d_loss' in final
    assert 'test_aux_4a_loss' not in final


@pytest.mark.integration
def test_imagenet_smoke_on_mock_data_under_8_devices(tmp_path):
  import tensorflow_datasets as tfds

  config = config_lib.load(str(ROOT / 'experiments/cnn/googlenet_imagenet.py') + ':smoke')
  with tfds.testing.mock_data(num_examples=40):
    result = loop.train_and_evaluate(config, tmp_path)
  assert jax.device_count() == 8
  assert result['step'] == 8
  assert np.isfinite(result['final']['validation_loss'])
  kernel = result['state'].params['classifier']['kernel']
  assert len(kernel.sharding.device_set) == 8


def test_reshape_max_pool_equals_reduce_window_in_values_and_gradients():
  """Equal except in how a tie shares its gradient (one winner in select-and-scatter, split by
  jnp.max); in the network ties come from ReLU's zeros, whose gradient ReLU zeroes: equal again."""
  from jdl.models.cnn import max_pool

  z = jax.random.normal(jax.random.key(0), (2, 11, 11, 3))  # odd: 'VALID' drops the last row
  ours = lambda x: max_pool(x, 2, 2)
  ref = lambda x: nnx.max_pool(x, (2, 2), (2, 2), 'VALID')
  np.testing.assert_array_equal(ours(z), ref(z))
  w = jax.random.normal(jax.random.key(1), (2, 5, 5, 3))
  for f in (lambda x: x, jax.nn.relu):  # no ties; then ReLU's ties
    np.testing.assert_allclose(
      jax.grad(lambda z: (ours(f(z)) * w).sum())(z),
      jax.grad(lambda z: (ref(f(z)) * w).sum())(z),
      atol=1e-7,
    )
