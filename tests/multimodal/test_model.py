"""The CLIP model and loss: the loss against NumPy (and against plain CLIP when every label is
distinct), the temperature's clip, the text encoder's padding, and the same loss on 1 and 8
devices through the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.models.clip import Clip, ClipConfig, contrastive_loss
from jdl.train import loop
from tests.multimodal import CONFIG


def numpy_loss(image, text, labels, scale, mask):
  """Symmetric multi-positive InfoNCE over the real rows, written out row by row."""
  real = np.flatnonzero(mask)
  logits = scale * image[real] @ text[real].T
  y = labels[real]

  def one_side(logits):
    total = 0.0
    for i in range(len(real)):
      log_p = logits[i] - np.log(np.exp(logits[i] - logits[i].max()).sum()) - logits[i].max()
      positives = np.flatnonzero(y == y[i])
      total += -log_p[positives].mean()
    return total / len(real)

  return (one_side(logits) + one_side(logits.T)) / 2


def unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_loss_matches_numpy_with_shared_classes_and_padding():
  rng = np.random.default_rng(0)
  image, text = unit(rng.normal(size=(12, 5))), unit(rng.normal(size=(12, 5)))
  labels = np.array([0, 1, 0, 2, 1, 0, 3, 3, 2, 0, 1, 4])  # several rows share a class
  mask = np.ones(12)
  mask[[4, 11]] = 0  # evaluation padding: neither query nor candidate
  got, _ = contrastive_loss(jnp.asarray(image), jnp.asarray(text), jnp.asarray(labels), 7.0, mask)
  np.testing.assert_allclose(float(got), numpy_loss(image, text, labels, 7.0, mask), rtol=1e-5)


def test_distinct_labels_give_clips_loss():
  rng = np.random.default_rng(1)
  image, text = unit(rng.normal(size=(8, 4))), unit(rng.normal(size=(8, 4)))
  logits = 3.0 * image @ text.T
  diagonal = np.arange(8)
  clip = (
    optax.softmax_cross_entropy_with_integer_labels(logits, diagonal).mean()
    + optax.softmax_cross_entropy_with_integer_labels(logits.T, diagonal).mean()
  ) / 2
  got, _ = contrastive_loss(jnp.asarray(image), jnp.asarray(text), jnp.arange(8), 3.0)
  np.testing.assert_allclose(float(got), float(clip), rtol=1e-6)


@pytest.fixture(scope='module')
def model():
  cfg = ClipConfig(
    vocab_size=50,
    embed_dim=8,
    image_width=16,
    d_model=16,
    n_heads=2,
    d_ff=32,
    n_layers=1,
    max_len=8,
    dropout=0.0,
  )
  with jax.set_mesh(None):  # not the mesh an earlier test's run left set (see no_mesh)
    return Clip(cfg, rngs=nnx.Rngs(0))


def test_temperature_is_learned_from_007_and_clipped_at_100(model):
  np.testing.assert_allclose(float(model.logit_scale()), 1 / 0.07, rtol=1e-6)

  def scale_and_grad(log_scale):
    model.log_scale[...] = jnp.asarray(log_scale, jnp.float32)
    grad = nnx.grad(lambda m: m.logit_scale())(model).log_scale[...]
    return float(model.logit_scale()), float(grad)

  scale, grad = scale_and_grad(np.log(50.0))
  np.testing.assert_allclose([scale, grad], [50.0, 50.0], rtol=1e-5)  # d exp(t)/dt = exp(t)
  scale, grad = scale_and_grad(10.0)  # exp(10) = 22,026: clipped
  assert scale == pytest.approx(100.0, rel=1e-6) and grad == 0.0
  model.log_scale[...] = jnp.asarray(np.log(1 / 0.07), jnp.float32)


def test_padding_tokens_do_not_change_a_texts_embedding(model):
  short = jnp.array([[5, 6, 7, 0, 0, 0, 0, 0]])
  other = jnp.array([[5, 6, 7, 0, 0, 0, 0, 0], [9, 9, 9, 9, 9, 9, 9, 9]])
  a, b = model.embed_texts(short), model.embed_texts(other)[:1]
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  assert abs(float(jnp.linalg.norm(a)) - 1) < 1e-5
  images = jnp.zeros((3, 28, 28, 1))
  assert model.embed_images(images).shape == (3, 8) and model.image_features(images).shape == (
    3,
    16,
  )


def smoke(mesh):
  config = config_lib.load(CONFIG + ':smoke')
  with config.unlocked():
    config.mesh.update(mesh)
  return config


def test_one_and_eight_devices_give_the_same_loss():
  """The [B, B] logits need every device's embeddings: with the batch split over 8 devices on
  'data', the loss and the steps must be those of one device holding the whole batch."""
  losses = []
  for mesh in (dict(data=1, fsdp=1, tensor=1), dict(data=8, fsdp=1, tensor=1)):
    trainer = loop.Trainer(smoke(mesh))
    state = trainer.init_state()
    batches = trainer.train_batches()
    for _ in range(3):
      batch = trainer.global_batch(next(batches))
      state, metrics = trainer.run_steps(state, batch)
      losses.append(float(metrics['loss'][0]))
    if mesh['data'] == 8:
      assert len(batch['image'].sharding.device_set) == 8
      assert batch['image'].sharding.spec[0] in ('data', ('data', 'fsdp'))
  np.testing.assert_allclose(losses[:3], losses[3:], rtol=2e-5)
  assert losses[0] != losses[2]  # the steps moved the model
