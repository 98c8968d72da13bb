"""jdl's per-head direct logit attribution and activation patching equal TransformerLens' on the
same weights (a tiny random GPT exported as a GPT-2 folder) and the same prompts, within
1e-4 of the largest value (+1e-6): the firm check of jdl.interp.peer_transformer_lens."""

import numpy as np
import pytest

from jdl.interp import patching
from jdl.interp import peer_transformer_lens as peer
from jdl.models import hf_gpt2
from tests.interp import tiny

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures('no_mesh')]


def assert_close(ours, theirs):
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  assert ours.shape == theirs.shape
  tolerance = 1e-4 * np.abs(theirs).max() + 1e-6
  worst = np.abs(ours - theirs).max()
  print(f'max |jdl - TransformerLens| {worst:.2e}, tolerance {tolerance:.2e}')
  assert worst <= tolerance, (worst, tolerance)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  model, d = tiny.setup()
  folder = hf_gpt2.save(model, tmp_path_factory.mktemp('tl') / 'hf')
  return model, peer.load(folder), d


def test_the_bridge_holds_the_unprocessed_weights(setup):
  import torch

  model, bridge, d = setup
  # no folded LayerNorm: gamma is still the final norm's weight, W_U the tied embedding
  np.testing.assert_array_equal(
    peer._ln_final_weight(bridge).detach().numpy(), np.asarray(model.ln_f.scale[...])
  )
  np.testing.assert_array_equal(bridge.W_U.detach().numpy().T, np.asarray(model.wte[...]))
  with torch.no_grad():
    theirs = bridge(torch.as_tensor(d['mixed'], dtype=torch.long)).numpy()
  np.testing.assert_allclose(theirs, np.asarray(model(d['mixed'])), rtol=1e-4, atol=1e-4)


def test_direct_logit_attribution_per_head_equals_transformer_lens(setup):
  model, bridge, d = setup
  for tokens, end, io, s in (
    (d['mixed'], d['mixed_end'], d['mixed_io'], d['mixed_s']),  # several lengths
    (d['clean'], d['end'], d['io'], d['s']),
  ):
    ours = patching.direct_logit_attribution(model, tokens, end, io, s).heads
    theirs = peer.direct_logit_attribution(bridge, tokens, end, io, s)
    assert theirs.shape == (8, tiny.L, tiny.H) and np.abs(theirs).max() > 1e-2
    assert_close(ours, theirs)


def test_head_patching_effects_equal_transformer_lens(setup):
  model, bridge, d = setup
  args = (d['clean'], d['bad'], d['end'], d['io'], d['s'])
  ours = patching.patch_heads(model, *args)
  theirs = peer.patch_heads(bridge, *args)
  assert abs(theirs['clean'] - theirs['corrupted']) > 0.05  # the normalisation is well defined
  assert np.abs(theirs['effect']).max() > 1e-2  # heads that matter, not 0 = 0
  assert_close(ours.effect, theirs['effect'])
  assert_close(ours.patched, theirs['patched'])
  theirs_means = [theirs['clean'], theirs['corrupted']]
  np.testing.assert_allclose([ours.clean, ours.corrupted], theirs_means, rtol=1e-5)
