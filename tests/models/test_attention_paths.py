"""Every attention implementation that can run here gives the reference's outputs and gradients
(jdl.models.fused_attention): the blocked causal path, jax.nn.dot_product_attention's XLA path,
and the TPU's splash kernel in Pallas' interpreter; a GPT trains to the same losses with them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jdl.config import ConfigError
from jdl.models import attention, fused_attention
from jdl.models.gpt import GPT, GPTConfig


def qkv(B, T, H, K, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return tuple(jax.random.normal(k, (B, T, H, K), jnp.float32) for k in keys)


def reference(q, k, v, mask=None):
  T = q.shape[1]
  causal = attention.causal_mask(jnp.arange(T), jnp.arange(T))
  return attention.dot_product_attention(q, k, v, attention.combine_masks(mask, causal))


def value_and_grads(f, q, k, v):
  """f's output and the gradients of a fixed random projection of it, the backward pass's test."""
  w = jax.random.normal(jax.random.key(9), q.shape[:2] + (q.shape[2] * v.shape[3],))
  loss = lambda q, k, v: jnp.sum(f(q, k, v).reshape(w.shape) * w)
  both = jax.jit(lambda q, k, v: (f(q, k, v), jax.grad(loss, argnums=(0, 1, 2))(q, k, v)))
  return both(q, k, v)


def assert_same(got, want, tol):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    scale = float(jnp.max(jnp.abs(w)))
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=tol * scale)


@pytest.mark.parametrize('T', [256, 100])  # whole blocks, and a last block of 36 rows
def test_blocked_causal_equals_the_reference(T):
  q, k, v = qkv(2, T, 3, 16)
  got = value_and_grads(fused_attention.blocked_causal, q, k, v)
  assert_same(got, value_and_grads(reference, q, k, v), 1e-6)


def test_blocked_causal_applies_a_padding_mask_on_top():
  q, k, v = qkv(2, 128, 2, 8, seed=1)
  valid = jnp.arange(128)[None, :] < jnp.array([[128], [77]])  # row 1: keys from 77 on padded
  pad = attention.padding_mask(valid)
  got = value_and_grads(lambda q, k, v: fused_attention.blocked_causal(q, k, v, pad), q, k, v)
  want = value_and_grads(lambda q, k, v: reference(q, k, v, pad), q, k, v)
  # Fully masked rows do not occur (key 0 is valid for every query), so all rows compare.
  assert_same(got, want, 1e-6)


def test_jax_dot_product_attention_equals_the_reference():
  q, k, v = qkv(2, 96, 3, 16, seed=2)
  f = lambda q, k, v: fused_attention.jax_dot_product(q, k, v, None, True, 'xla')
  assert_same(value_and_grads(f, q, k, v), value_and_grads(reference, q, k, v), 2e-6)


def test_splash_attention_in_the_pallas_interpreter_equals_the_reference():
  # The TPU kernel, interpreted on the CPU: context 128 (one block of the kernel's 128 x 128
  # tiles would skip nothing), so 256 with 2 x 2 blocks, of which the upper-right one is skipped.
  q, k, v = qkv(1, 256, 2, 64, seed=3)
  f = lambda q, k, v: fused_attention.splash_causal(q, k, v, interpret=True)
  assert_same(value_and_grads(f, q, k, v), value_and_grads(reference, q, k, v), 2e-6)


def test_cudnn_refuses_float32_and_unknown_names_are_config_errors():
  base = dict(vocab_size=16, context=8, n_layer=1, n_head=2, d_model=8)
  with pytest.raises(ConfigError, match="'cudnn'.*bfloat16 or float16, not float32"):
    GPTConfig(**base, attention='cudnn')
  with pytest.raises(ConfigError, match='config.model.attention'):
    GPTConfig(**base, attention='flash')
  GPTConfig(**base, attention='cudnn', dtype='bfloat16')  # accepted (runs on NVIDIA GPUs)


CFG = dict(vocab_size=40, context=160, n_layer=2, n_head=2, d_model=32)


def train_losses(impl: str, steps: int = 3) -> list[float]:
  """Losses of `steps` AdamW steps of a GPT at context 160 (blocks of 64, 64 and 32 rows)."""
  model = GPT(GPTConfig(**CFG, attention=impl), rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = jax.random.randint(jax.random.key(1), (2, CFG['context'] + 1), 0, CFG['vocab_size'])
  opt = optax.adamw(1e-2)

  def loss_fn(params):
    logits = nnx.merge(graphdef, params)(tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  @jax.jit
  def step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state, losses = opt.init(params), []
  for _ in range(steps):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  return losses


def test_gpt_trains_to_the_same_losses_with_each_cpu_path():
  want = train_losses('einsum')
  for impl in ('blocked', 'xla'):
    np.testing.assert_allclose(train_losses(impl), want, rtol=2e-6, err_msg=impl)
  assert want[-1] < want[0] - 0.1  # it trains: the comparison is not of three equal numbers


def test_hooks_and_kv_caches_take_the_reference_path_bitwise():
  ref = GPT(GPTConfig(**CFG), rngs=nnx.Rngs(0))
  fast = GPT(GPTConfig(**CFG, attention='blocked'), rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(2), (1, 100), 0, CFG['vocab_size'])
  cache = ref.init_cache(1)
  np.testing.assert_array_equal(
    fast(tokens, cache=cache)[0], ref(tokens, cache=cache)[0]
  )  # decoding (prefill) uses the reference
  hook = lambda name, x: x
  np.testing.assert_array_equal(fast(tokens, hooks=hook), ref(tokens, hooks=hook))
  # Without either, 'blocked' is a different program with the same result.
  np.testing.assert_allclose(fast(tokens), ref(tokens), rtol=0, atol=2e-5)
