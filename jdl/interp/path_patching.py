"""Path patching (Wang et al. 2022, section 3.1 and appendix B): the effect of one head on the
logit difference through one path only, to the logits directly or to chosen inputs (queries,
keys or values) of chosen receiver heads.

For a sender head h and receivers R, with the clean prompts x and their corruptions x' (p_ABC):

  1. run x and x', caching every head's output z (before W_O);
  2. run x again with every head's z frozen at its clean value, except h's, which takes its x'
     value. MLPs are recomputed, so they pass the change on. The receivers' inputs (their q, k
     or v, computed from the changed residual stream) are recorded at the receiver positions;
  3. run x with only those receiver inputs replaced by step 2's, everything else computed as
     usual, and read the logit difference.

With the logits as the receiver, step 2's own output is the answer: h's direct effect plus what
the MLPs after it make of it. Heads are frozen in step 2, so nothing reaches a receiver through
another head: that is what makes it one path. The effect is normalised like activation
patching's (jdl.interp.patching): (LD_patched - LD_clean) / (LD_clean - LD_corrupted), -1 being
"as bad as the corrupted run".

Receiver positions are given per prompt (`receiver_pos_B`: the last position for name movers'
queries, the second S for S-inhibition heads' values), so prompts of different templates mix in
one batch; a receiver's input elsewhere keeps its clean value.

Every sender is swept in one compiled program (`jax.vmap` over L * H senders).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.interp.patching import Patching, logit_diffs
from jdl.models import hooks
from jdl.models.gpt import GPT
from jdl.models.hooks import Patch

RECEIVER_INPUTS = ('q', 'k', 'v')


def _grouped(receivers) -> dict[int, list[int]]:
  """((layer, head), ...) -> {layer: [heads]}."""
  out: dict[int, list[int]] = {}
  for layer, head in receivers:
    out.setdefault(int(layer), []).append(int(head))
  return out


@nnx.jit(static_argnames=('receivers', 'receiver_input'))
def path_patch_heads(
  model: GPT,
  clean_BxT: jax.Array,
  corrupted_BxT: jax.Array,
  end_B: jax.Array,
  io_B: jax.Array,
  s_B: jax.Array,
  receivers: tuple[tuple[int, int], ...] = (),
  receiver_input: str = 'q',
  receiver_pos_B: jax.Array | None = None,
) -> Patching:
  """Effect [L, H] of each sender head through its path to `receivers` ((layer, head) pairs;
  empty: the logits) at their `receiver_input` ('q', 'k' or 'v') at `receiver_pos_B` (None: every
  position). A sender in or after a receiver's layer cannot reach it: its effect there is 0."""
  if clean_BxT.shape != corrupted_BxT.shape:
    raise ValueError(f'clean {clean_BxT.shape} and corrupted {corrupted_BxT.shape} differ')
  if receiver_input not in RECEIVER_INPUTS:
    raise ValueError(f'receiver_input: one of {RECEIVER_INPUTS}, not {receiver_input!r}')
  model = hooks.unscanned(model)
  L, H = model.cfg.n_layer, model.cfg.n_head
  for layer, head in receivers:
    if not (0 <= layer < L and 0 <= head < H):
      raise ValueError(f'receiver head {layer}.{head} is not in a model of {L} x {H} heads')
  z_names = [f'blocks.{i}.attn.z' for i in range(L)]
  by_layer = _grouped(receivers)
  in_names = [f'blocks.{i}.attn.{receiver_input}' for i in sorted(by_layer)]
  _, clean = hooks.run_with_cache(model, clean_BxT, names=[*z_names, *in_names])
  _, bad = hooks.run_with_cache(model, corrupted_BxT, names=z_names)
  clean_ld = logit_diffs(model, clean_BxT, end_B, io_B, s_B).mean()
  corrupted_ld = logit_diffs(model, corrupted_BxT, end_B, io_B, s_B).mean()
  B, T = clean_BxT.shape
  if receiver_pos_B is None:
    at_pos_BxT = jnp.ones((B, T), bool)
  else:
    at_pos_BxT = jnp.arange(T)[None, :] == jnp.asarray(receiver_pos_B)[:, None]
  graphdef, state = nnx.split(model)

  def one(state, sender):
    m = nnx.merge(graphdef, state)
    layer, head = sender // H, sender % H
    frozen = {}
    for i, name in enumerate(z_names):  # step 2: all heads clean, the sender corrupted
      is_sender_H = (jnp.arange(H) == head) & (layer == i)
      frozen[name] = Patch(jnp.where(is_sender_H[None, None, :, None], bad[name], clean[name]))
    if not receivers:
      return logit_diffs(m, clean_BxT, end_B, io_B, s_B, frozen).mean()
    _, step2 = hooks.run_with_cache(m, clean_BxT, names=in_names, patches=frozen)
    patches = {}  # step 3: only the receivers' inputs, at the receiver positions
    for name, heads in zip(in_names, (by_layer[i] for i in sorted(by_layer)), strict=True):
      value = jnp.where(at_pos_BxT[:, :, None, None], step2[name], clean[name])
      patches[name] = Patch(value, head=heads)
    return logit_diffs(m, clean_BxT, end_B, io_B, s_B, patches).mean()

  patched_LxH = jax.vmap(one, in_axes=(None, 0))(state, jnp.arange(L * H)).reshape(L, H)
  return Patching(
    effect=(patched_LxH - clean_ld) / (clean_ld - corrupted_ld),
    patched=patched_LxH,
    clean=clean_ld,
    corrupted=corrupted_ld,
  )
