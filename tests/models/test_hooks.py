"""Hooks into jdl's GPT: the cache is the forward pass's own intermediates, an empty or clean
patch changes nothing (bitwise, and the same program), a patched head changes only what lies
downstream of it, and sweeps over heads run under jit and vmap."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl.models import hooks
from jdl.models.gpt import GPT, GPTConfig
from jdl.models.hooks import Patch

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest

CFG = GPTConfig(vocab_size=50, context=12, n_layer=3, n_head=4, d_model=32)
rng = np.random.default_rng(0)
CLEAN = rng.integers(0, 50, size=(2, 12))
CORRUPT = rng.integers(0, 50, size=(2, 12))


def perturbed(cfg: GPTConfig) -> GPT:
  """A random model whose biases and LayerNorms are away from their 0/1 init, so that the
  checks below see them."""
  model = GPT(cfg, rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  noise = np.random.default_rng(1)
  pure = jax.tree.map(
    lambda x: x + 0.05 * noise.standard_normal(x.shape, np.float32),
    nnx.to_pure_dict(state),
  )
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(model, state)
  return model


@pytest.fixture(scope='module')
def model():
  return perturbed(CFG)


@pytest.fixture(scope='module')
def clean(model):
  return hooks.run_with_cache(model, CLEAN)


@pytest.fixture(scope='module')
def corrupt(model):
  return hooks.run_with_cache(model, CORRUPT)


def test_empty_patches_are_the_plain_forward_bitwise_and_the_same_program(model, clean):
  plain = model(CLEAN)
  np.testing.assert_array_equal(hooks.run_with_patches(model, CLEAN, {}), plain)
  np.testing.assert_array_equal(clean[0], plain)  # caching reads, it does not change
  graphdef, state = nnx.split(model)
  programs = [
    jax.make_jaxpr(lambda s, t, f=f: f(nnx.merge(graphdef, s), t))(state, CLEAN)
    for f in (
      lambda m, t: m(t),
      lambda m, t: hooks.run_with_patches(m, t, {}),
      lambda m, t: hooks.run_with_cache(m, t, names=())[0],
    )
  ]
  # The hooks cost nothing unused: the traced program is the plain forward's, equation by equation.
  assert str(programs[1]) == str(programs[0]) and str(programs[2]) == str(programs[0])
  patched = jax.make_jaxpr(
    lambda s, t: hooks.run_with_patches(nnx.merge(graphdef, s), t, {'blocks.1.attn.z': 0.0})
  )(state, CLEAN)
  assert str(patched) != str(programs[0])  # (the comparison can fail)


def test_the_cache_is_the_forward_passs_intermediates(model, clean):
  logits, cache = clean
  L, H, K = CFG.n_layer, CFG.n_head, CFG.d_model // CFG.n_head
  assert sorted(cache) == sorted(hooks.hook_names(CFG)) and len(cache) == 10 * L + 1
  B, T = CLEAN.shape
  assert cache['blocks.0.attn.z'].shape == (B, T, H, K)
  assert cache['blocks.0.attn.pattern'].shape == (B, H, T, T)
  np.testing.assert_array_equal(
    cache['blocks.0.resid_pre'], (model.wte[...][CLEAN] + model.wpe[...][None, :T])
  )
  for i, block in enumerate(model.blocks):
    c = lambda name, i=i: cache[f'blocks.{i}.{name}']
    # each head's output, through its slice of W_O, summed over heads, plus the bias
    by_head = jnp.einsum('bthk,hkd->bthd', c('attn.z'), block.attn.out_kernel[...])
    np.testing.assert_allclose(
      by_head.sum(2) + block.attn.out_bias[...], c('attn_out'), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
      jnp.einsum('bhts,bshk->bthk', c('attn.pattern'), c('attn.v')), c('attn.z'), atol=1e-6
    )
    pattern = np.asarray(c('attn.pattern'))
    np.testing.assert_allclose(pattern.sum(-1), 1.0, rtol=1e-6)
    assert np.all(pattern[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)
    np.testing.assert_array_equal(c('resid_mid'), c('resid_pre') + c('attn_out'))
    np.testing.assert_array_equal(c('resid_post'), c('resid_mid') + c('mlp_out'))
    np.testing.assert_array_equal(c('mlp_out'), block.mlp(block.ln_2(c('resid_mid'))))
    if i + 1 < L:
      np.testing.assert_array_equal(c('resid_post'), cache[f'blocks.{i + 1}.resid_pre'])
  # the last residual, through the final LayerNorm and the tied unembedding, is the logits
  final = model.ln_f(cache[f'blocks.{L - 1}.resid_post'])
  np.testing.assert_array_equal(final, cache['ln_final'])
  np.testing.assert_array_equal(jnp.einsum('btd,vd->btv', final, model.wte[...]), logits)


def test_patching_the_clean_activations_is_a_no_op(model, clean):
  logits, cache = clean
  everything = {name: Patch(value) for name, value in cache.items()}
  patched_logits, patched = hooks.run_with_cache(model, CLEAN, patches=everything)
  np.testing.assert_array_equal(patched_logits, logits)
  for name in cache:
    np.testing.assert_array_equal(patched[name], cache[name], err_msg=name)
  one = {'blocks.1.attn.z': Patch(cache['blocks.1.attn.z'], head=2, pos=[3, 7])}
  np.testing.assert_array_equal(hooks.run_with_patches(model, CLEAN, one), logits)


def test_patching_one_head_changes_only_what_is_downstream(model, clean, corrupt):
  (logits, cache), (_, bad) = clean, corrupt
  z = 'blocks.1.attn.z'
  patched_logits, patched = hooks.run_with_cache(model, CLEAN, patches={z: Patch(bad[z], head=2)})
  upstream = [n for n in cache if n.startswith('blocks.0.')]
  upstream += [f'blocks.1.{n}' for n in ('resid_pre', 'attn.q', 'attn.k', 'attn.v', 'attn.pattern')]
  for name in upstream:
    np.testing.assert_array_equal(patched[name], cache[name], err_msg=name)
  others = [0, 1, 3]
  np.testing.assert_array_equal(patched[z][:, :, others], cache[z][:, :, others])
  np.testing.assert_array_equal(patched[z][:, :, 2], bad[z][:, :, 2])
  assert not np.allclose(patched['blocks.1.attn_out'], cache['blocks.1.attn_out'])
  assert not np.allclose(patched['blocks.2.resid_pre'], cache['blocks.2.resid_pre'])
  assert np.abs(np.asarray(patched_logits) - np.asarray(logits)).max() > 1e-3

  # One head at one position: earlier positions cannot see it (causal), that one does.
  at_5 = hooks.run_with_patches(model, CLEAN, {z: Patch(bad[z], head=2, pos=5)})
  np.testing.assert_array_equal(at_5[:, :5], logits[:, :5])
  assert not np.allclose(at_5[:, 5], logits[:, 5])


def test_a_head_sweep_runs_under_jit_and_vmap(model, corrupt):
  _, bad = corrupt
  z = 'blocks.2.attn.z'
  graphdef, state = nnx.split(model)

  def patched(state, head):
    return hooks.run_with_patches(nnx.merge(graphdef, state), CLEAN, {z: Patch(bad[z], head=head)})

  swept = jax.jit(jax.vmap(patched, in_axes=(None, 0)))(state, jnp.arange(CFG.n_head))
  assert swept.shape == (CFG.n_head, *CLEAN.shape, CFG.vocab_size)
  for h in (0, 3):
    one = hooks.run_with_patches(model, CLEAN, {z: Patch(bad[z], head=h)})
    np.testing.assert_allclose(swept[h], one, rtol=1e-5, atol=1e-5)
  # a mean ablation: the value broadcasts over the batch
  mean = Patch(bad[z].mean(0, keepdims=True), head=1)
  cached = nnx.jit(hooks.run_with_cache, static_argnames='names')
  logits, cache = cached(model, CLEAN, names=(z,), patches={z: mean})
  assert list(cache) == [z]
  np.testing.assert_allclose(cache[z][:, :, 1], np.broadcast_to(mean.value[:, :, 1], (2, 12, 8)))


def test_bad_names_and_patches_are_refused_by_name(model):
  with pytest.raises(ValueError) as e:
    hooks.run_with_cache(model, CLEAN, names=['blocks.0.attn.zz'])
  assert "unknown hook 'blocks.0.attn.zz'; did you mean 'blocks.0.attn.z'?" in str(e.value)
  assert 'blocks.{0..2}.{resid_pre, attn.q' in str(e.value) and 'ln_final' in str(e.value)
  with pytest.raises(ValueError, match="unknown hook 'blocks.3.mlp_out'"):
    hooks.run_with_patches(model, CLEAN, {'blocks.3.mlp_out': 0.0})
  with pytest.raises(ValueError, match='blocks.0.mlp_out: it has no head axis'):
    hooks.run_with_patches(model, CLEAN, {'blocks.0.mlp_out': Patch(0.0, head=1)})
  with pytest.raises(ValueError, match=r'does not fit \(2, 12, 4, 8\)'):
    hooks.run_with_patches(model, CLEAN, {'blocks.0.attn.z': jnp.zeros((2, 12, 32))})


def test_scanned_and_post_ln_models(model, clean):
  scanned_cfg = dataclasses.replace(CFG, scan_layers=True)
  scanned = GPT(scanned_cfg, rngs=nnx.Rngs(0))
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  pure['blocks'] = jax.tree.map(lambda *xs: jnp.stack(xs), *pure['blocks'].values())
  state = nnx.state(scanned, nnx.Param)
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(scanned, state)
  with pytest.raises(ValueError, match=r'hooks.unscanned\(model\)'):
    scanned(CLEAN, hooks=lambda name, x: x)
  # run_with_cache unstacks the layers itself: the same activations as the unscanned model
  logits, cache = hooks.run_with_cache(scanned, CLEAN, names=['blocks.2.attn.z'])
  np.testing.assert_array_equal(cache['blocks.2.attn.z'], clean[1]['blocks.2.attn.z'])
  np.testing.assert_allclose(logits, scanned(CLEAN), rtol=1e-5, atol=1e-5)

  post = perturbed(dataclasses.replace(CFG, post_ln=True))
  assert 'ln_final' not in hooks.hook_names(post.cfg)
  logits, cache = hooks.run_with_cache(post, CLEAN)
  np.testing.assert_array_equal(logits, post(CLEAN))
  last = cache['blocks.2.resid_post']
  np.testing.assert_array_equal(jnp.einsum('btd,vd->btv', last, post.wte[...]), logits)
