"""Direct logit attribution and activation patching on a tiny random GPT, over IOI prompts whose
GPT-2 token ids are mapped onto a small vocabulary: the attribution adds up to the logit
difference, patches that change nothing have no effect, the last residual of the corrupted run
gives the corrupted logit difference (effect -1), and the vmapped head sweep is the one-by-one
patching."""

import numpy as np
import pytest
from flax import nnx

from jdl.data import ioi, tokenizers
from jdl.interp import patching
from jdl.models import hooks
from jdl.models.gpt import GPT, GPTConfig
from jdl.models.hooks import Patch
from tests.interp import tiny

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest

L, H = tiny.L, tiny.H


@pytest.fixture(scope='module')
def setup():
  return tiny.setup()


def test_direct_logit_attribution_adds_up_to_the_logit_difference(setup):
  model, d = setup
  args = (d['mixed'], d['mixed_end'], d['mixed_io'], d['mixed_s'])
  assert len(set(d['mixed_end'].tolist())) > 1  # prompts of different lengths, right-padded
  attr = patching.direct_logit_attribution(model, *args)
  assert attr.heads.shape == (8, L, H) and attr.mlps.shape == (8, L) and attr.embed.shape == (8,)
  logits = model(d['mixed'])
  direct = patching.logit_diff(logits, *args[1:])
  assert np.abs(direct).max() > 0.1  # not a trivial 0 = 0
  np.testing.assert_allclose(attr.total(), direct, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(patching.logit_diffs(model, *args), direct, rtol=1e-4, atol=1e-4)
  # every kind of component contributes: the sum is not carried by one term
  for part in (attr.heads, attr.mlps, attr.attn_bias, attr.embed, attr.ln_bias):
    assert np.abs(part).max() > 1e-3


def test_a_heads_attribution_is_its_share_of_the_final_layer_norm(setup):
  """Removing head h's direct path from the final residual (its output at the end, sigma
  fixed) lowers the logit difference by exactly its attribution."""
  model, d = setup
  args = (d['mixed'], d['mixed_end'], d['mixed_io'], d['mixed_s'])
  attr = patching.direct_logit_attribution(model, *args)
  _, cache = hooks.run_with_cache(model, d['mixed'])
  b = np.arange(8)
  x = np.asarray(cache[f'blocks.{L - 1}.resid_post'], np.float64)[b, d['mixed_end']]
  z = np.asarray(cache['blocks.0.attn.z'], np.float64)[b, d['mixed_end'], 2]  # layer 0 head 2
  head = z @ np.asarray(model.blocks[0].attn.out_kernel[...], np.float64)[2]
  sigma = np.sqrt(x.var(-1, keepdims=True) + 1e-5)
  gamma, beta = (np.asarray(p[...], np.float64) for p in (model.ln_f.scale, model.ln_f.bias))
  wte = np.asarray(model.wte[...], np.float64)
  direction = wte[d['mixed_io']] - wte[d['mixed_s']]

  def ld(x):
    return (((x - x.mean(-1, keepdims=True)) / sigma * gamma + beta) * direction).sum(-1)

  np.testing.assert_allclose(ld(x) - ld(x - head), attr.heads[:, 0, 2], rtol=1e-4, atol=1e-5)


def test_residual_patching_no_effect_before_the_names_and_minus_one_at_the_end(setup):
  model, d = setup
  args = (d['clean'], d['bad'], d['end'], d['io'], d['s'])
  r = patching.patch_residual(model, *args, where='resid_post')
  T = d['clean'].shape[1]
  end, first_name = int(d['end'][0]), int(d['slots'].min())
  assert r.effect.shape == (L, T) and (d['end'] == end).all()
  assert abs(float(r.clean - r.corrupted)) > 0.05  # the normalisation is well defined
  # before the first name the corrupted prompt is the clean one: its activations are the clean
  # ones, and patching them in changes nothing
  np.testing.assert_allclose(r.effect[:, :first_name], 0.0, atol=1e-5)
  # the last block's output: at the end it is the corrupted run (-1), elsewhere nothing reads it
  np.testing.assert_allclose(r.effect[L - 1, end], -1.0, rtol=1e-4)
  np.testing.assert_allclose(r.patched[L - 1, end], r.corrupted, rtol=1e-4)
  np.testing.assert_allclose(np.delete(r.effect[L - 1], end), 0.0, atol=1e-5)
  assert np.abs(r.effect[0, first_name:end]).max() > 1e-3  # the names matter somewhere
  # resid_pre of layer 0 at the end is the embedding of ' to', the same in both runs; by layer
  # 1 attention has brought the corrupted names there
  pre = patching.patch_residual(model, *args)
  np.testing.assert_allclose(pre.effect[0, end], 0.0, atol=1e-5)
  assert abs(pre.effect[1, end]) > 1e-3
  np.testing.assert_allclose(pre.effect[:, :first_name], 0.0, atol=1e-5)


def test_head_sweep_is_one_by_one_noising_and_a_clean_source_does_nothing(setup):
  model, d = setup
  args = (d['end'], d['io'], d['s'])
  sweep = patching.patch_heads(model, d['clean'], d['bad'], *args)
  assert sweep.effect.shape == (L, H) and np.abs(sweep.effect).max() > 1e-3
  _, bad = hooks.run_with_cache(model, d['bad'])
  clean_ld = patching.logit_diff(model(d['clean']), *args).mean()
  bad_ld = patching.logit_diff(model(d['bad']), *args).mean()
  np.testing.assert_allclose([sweep.clean, sweep.corrupted], [clean_ld, bad_ld], rtol=1e-4)
  for layer, head in ((0, 1), (1, 3)):
    z = f'blocks.{layer}.attn.z'
    logits = hooks.run_with_patches(model, d['clean'], {z: Patch(bad[z], head=head)})
    patched = patching.logit_diff(logits, *args).mean()
    expected = (patched - clean_ld) / (clean_ld - bad_ld)
    np.testing.assert_allclose(sweep.effect[layer, head], expected, rtol=1e-3, atol=1e-5)
  # the clean run's own activations as the source: every patched run is the clean run
  same = patching.patch_heads(model, d['clean'], d['clean'], *args)
  np.testing.assert_allclose(same.patched, np.full((L, H), same.clean), rtol=1e-5)
  # only at the positions before the names, the corrupted heads are the clean ones: effect 0
  early = patching.patch_heads(model, d['clean'], d['bad'], *args, pos=[0, 1])
  np.testing.assert_allclose(early.effect, 0.0, atol=1e-5)


def test_bad_requests_are_refused(setup):
  model, d = setup
  args = (d['end'], d['io'], d['s'])
  with pytest.raises(ValueError, match="where: 'resid_pre', 'resid_mid' or 'resid_post'"):
    patching.patch_residual(model, d['clean'], d['bad'], *args, where='resid')
  with pytest.raises(ValueError, match=r'clean \(8, 15\) and corrupted \(8, 14\) prompts differ'):
    patching.patch_heads(model, d['clean'], d['bad'][:, :-1], *args)
  post = GPT(
    GPTConfig(8, context=4, n_layer=1, n_head=2, d_model=8, post_ln=True), rngs=nnx.Rngs(0)
  )
  with pytest.raises(ValueError, match='a pre-LN GPT only'):
    patching.direct_logit_attribution(post, np.zeros((1, 3), np.int32), [2], [1], [0])


def test_logit_diff_is_the_difference_of_the_two_logits_at_the_end():
  tok = tokenizers.gpt2()
  p = ioi.prompts(tok, 6, seed=4)
  cfg = GPTConfig(vocab_size=tok.n_vocab, context=24, n_layer=1, n_head=2, d_model=16)
  model = GPT(cfg, rngs=nnx.Rngs(0))  # the GPT-2 vocabulary, no mapping
  logits = np.asarray(model(p.tokens), np.float64)
  direct = [logits[b, p.end[b], p.io[b]] - logits[b, p.end[b], p.s[b]] for b in range(6)]
  got = patching.logit_diff(logits, p.end, p.io, p.s)
  assert got.shape == (6,) and np.abs(direct).max() > 1e-3
  np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-6)
