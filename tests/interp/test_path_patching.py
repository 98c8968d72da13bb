"""Path patching on a tiny random GPT: the three steps done by hand for one sender give the
swept value; a sender after its receivers has no effect; to the logits, a last-layer head's path
is its whole effect (activation patching); a clean source changes nothing."""

import numpy as np
import pytest

from jdl.interp import patching, path_patching
from jdl.models import hooks
from jdl.models.hooks import Patch
from tests.interp import tiny

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest

L, H = tiny.L, tiny.H


@pytest.fixture(scope='module')
def setup():
  return tiny.setup()


def by_hand(model, d, sender, receivers, kind, pos_B):
  """The paper's three steps for one sender, written out with run_with_cache/run_with_patches."""
  args = (d['end'], d['io'], d['s'])
  _, clean = hooks.run_with_cache(model, d['clean'])
  _, bad = hooks.run_with_cache(model, d['bad'])
  frozen = {}
  for i in range(L):
    z = np.array(clean[f'blocks.{i}.attn.z'])
    if i == sender[0]:
      z[:, :, sender[1]] = np.asarray(bad[f'blocks.{i}.attn.z'])[:, :, sender[1]]
    frozen[f'blocks.{i}.attn.z'] = Patch(z)
  _, step2 = hooks.run_with_cache(model, d['clean'], patches=frozen)
  patches = {}
  for layer, head in receivers:
    name = f'blocks.{layer}.attn.{kind}'
    value = np.array(clean[name])
    rows = np.arange(len(pos_B))
    value[rows, pos_B, head] = np.asarray(step2[name])[rows, pos_B, head]
    patches.setdefault(name, []).append(Patch(value, head=head))
  ld = patching.logit_diff(hooks.run_with_patches(model, d['clean'], patches), *args).mean()
  clean_ld = patching.logit_diff(model(d['clean']), *args).mean()
  bad_ld = patching.logit_diff(model(d['bad']), *args).mean()
  return (ld - clean_ld) / (clean_ld - bad_ld)


@pytest.mark.parametrize('kind', ['q', 'v'])
def test_the_sweep_is_the_three_steps_by_hand(setup, kind):
  model, d = setup
  receivers = ((1, 0), (1, 3))
  pos_B = d['end'] if kind == 'q' else d['slots'][:, 2]  # queries at the end, values at S2
  sweep = path_patching.path_patch_heads(
    model, d['clean'], d['bad'], d['end'], d['io'], d['s'], receivers, kind, pos_B
  )
  assert sweep.effect.shape == (L, H)
  for sender in ((0, 0), (0, 2)):
    expected = by_hand(model, d, sender, receivers, kind, pos_B)
    np.testing.assert_allclose(sweep.effect[sender], expected, rtol=1e-3, atol=1e-5)
  assert np.abs(sweep.effect[0]).max() > 1e-4  # layer 0 reaches the receivers
  np.testing.assert_allclose(sweep.effect[1], 0.0, atol=1e-5)  # a head cannot reach its layer


def test_to_the_logits_a_last_layer_heads_path_is_its_whole_effect(setup):
  model, d = setup
  args = (d['clean'], d['bad'], d['end'], d['io'], d['s'])
  path = path_patching.path_patch_heads(model, *args)
  whole = patching.patch_heads(model, *args)
  np.testing.assert_allclose(path.effect[L - 1], whole.effect[L - 1], rtol=1e-3, atol=1e-5)
  # an earlier head's direct path is not its whole effect: later heads read it in `whole`
  assert np.abs(path.effect[0] - whole.effect[0]).max() > 1e-4
  same = path_patching.path_patch_heads(model, d['clean'], *args[:1], *args[2:])
  np.testing.assert_allclose(same.patched, np.full((L, H), same.clean), rtol=1e-5)


def test_bad_receivers_are_refused(setup):
  model, d = setup
  args = (d['clean'], d['bad'], d['end'], d['io'], d['s'])
  with pytest.raises(ValueError, match='receiver head 5.0'):
    path_patching.path_patch_heads(model, *args, ((5, 0),), 'q')
  with pytest.raises(ValueError, match="receiver_input: one of \\('q', 'k', 'v'\\)"):
    path_patching.path_patch_heads(model, *args, ((1, 0),), 'z')
