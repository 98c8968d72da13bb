"""Finding what a GPT uses for a logit difference: direct logit attribution and activation
patching, on jdl.models.hooks.

The metric throughout is the logit difference of each prompt's answer, logit(IO) - logit(S)
at its last position `end`, for a pre-LN GPT with tied embeddings (W_U = W_e^T):

    LD = LN_f(x) . d,   d = W_U[:, IO] - W_U[:, S],   x the residual stream leaving the last block

**Direct logit attribution.** x is a sum of what wrote into the stream,

    x = (W_e[t] + W_pos[p]) + sum_l ( sum_h z_{l,h} W_O^{l,h} + b_O^l + MLP_l ),

and LN_f(x) = (x - mean(x)) / sigma(x) * gamma + beta. With sigma fixed at the clean run's value
(the cached scale) LN_f is affine, and each component c contributes
(c - mean(c)) . (gamma * d) / sigma = c . u / sigma with u = gamma * d - mean(gamma * d) (the
centred direction), beta . d being the constant. The contributions add up to LD exactly.

**Activation patching, noising.** Activations of the corrupted run (p_ABC: the same templates
with three other names) replace the clean run's at one place, the clean run goes on from there,
and the effect on the mean logit difference is normalised

    effect = (LD_patched - LD_clean) / (LD_clean - LD_corrupted)

0: the place carries nothing the metric needs; -1: patching it alone gives the corrupted run's
logit difference. (The paper's path patching is noising too.) Positions are token indices, the
same for every prompt of the batch: meaningful when the prompts share a template (their words
then sit at the same positions); clean and corrupted prompts must have the same shape.

Each sweep is one compiled program: a Python loop over layers, `jax.vmap` over the heads or
positions of a layer. Under jit the logits of the patched runs are not computed: only the final
LayerNorm's output at `end` is read (XLA drops the unused unembedding).

Shape suffixes: B prompts, T positions, L layers, H heads, K head width, D d_model.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models import hooks
from jdl.models.gpt import GPT
from jdl.models.hooks import Patch


def _final_name(model: GPT) -> str:
  return f'blocks.{model.cfg.n_layer - 1}.resid_post' if model.cfg.post_ln else 'ln_final'


def _at_end(x_BxTx_: jax.Array, end_B: jax.Array) -> jax.Array:
  return x_BxTx_[jnp.arange(x_BxTx_.shape[0]), end_B]


def answer_direction(model: GPT, io_B: jax.Array, s_B: jax.Array) -> jax.Array:
  """W_U[:, IO] - W_U[:, S] per prompt, [B, D] float32 (the tied embedding's rows)."""
  wte_VxD = model.wte[...].astype(jnp.float32)
  return wte_VxD[io_B] - wte_VxD[s_B]


def logit_diffs(model: GPT, tokens_BxT, end_B, io_B, s_B, patches=None) -> jax.Array:
  """logit(IO) - logit(S) at `end` [B] float32 of a run with `patches` (jdl.models.hooks),
  from the final LayerNorm's output (the logits themselves are not needed)."""
  name = _final_name(model)
  _, cache = hooks.run_with_cache(model, tokens_BxT, names=(name,), patches=patches)
  final_BxD = _at_end(cache[name], end_B).astype(jnp.float32)
  return jnp.sum(final_BxD * answer_direction(model, io_B, s_B), axis=-1)


# ---- direct logit attribution ------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Attribution:
  """Each component's direct contribution to each prompt's logit difference: `heads` [B, L, H],
  `attn_bias` and `mlps` [B, L], `embed` [B] (token + position), `ln_bias` [B] (beta . d).
  `total()` is their sum: the logit difference."""

  heads: jax.Array
  attn_bias: jax.Array
  mlps: jax.Array
  embed: jax.Array
  ln_bias: jax.Array

  def total(self) -> jax.Array:
    return (
      self.heads.sum((1, 2)) + self.attn_bias.sum(1) + self.mlps.sum(1) + self.embed + self.ln_bias
    )


@nnx.jit
def direct_logit_attribution(model: GPT, tokens_BxT, end_B, io_B, s_B) -> Attribution:
  """Per head (its output at `end` through W_O), per MLP, per attention bias, embeddings:
  c . u / sigma with the centred direction u = gamma * d - mean(gamma * d) and sigma the final
  LayerNorm's scale in the clean run (module docstring). Pre-LN models only."""
  cfg = model.cfg
  if cfg.post_ln:
    raise ValueError('direct logit attribution reads the final LayerNorm: a pre-LN GPT only')
  model = hooks.unscanned(model)
  L = cfg.n_layer
  names = ['blocks.0.resid_pre', f'blocks.{L - 1}.resid_post']
  names += [f'blocks.{i}.{n}' for i in range(L) for n in ('attn.z', 'mlp_out')]
  _, cache = hooks.run_with_cache(model, tokens_BxT, names=names)
  at_end = lambda name: _at_end(cache[name], end_B).astype(jnp.float32)  # noqa: E731

  x_BxD = at_end(f'blocks.{L - 1}.resid_post')
  sigma_Bx1 = jnp.sqrt(jnp.var(x_BxD, axis=-1, keepdims=True) + cfg.ln_epsilon)
  d_BxD = answer_direction(model, io_B, s_B)
  u_BxD = model.ln_f.scale[...] * d_BxD
  u_BxD = (u_BxD - u_BxD.mean(-1, keepdims=True)) / sigma_Bx1

  heads, attn_bias, mlps = [], [], []
  for i, block in enumerate(model.blocks):
    out_HxKxD = block.attn.out_kernel[...].astype(jnp.float32)
    z_BxHxK = at_end(f'blocks.{i}.attn.z')
    heads.append(jnp.einsum('bhk,hkd,bd->bh', z_BxHxK, out_HxKxD, u_BxD))
    attn_bias.append(u_BxD @ block.attn.out_bias[...])
    mlps.append(jnp.sum(at_end(f'blocks.{i}.mlp_out') * u_BxD, -1))
  return Attribution(
    heads=jnp.stack(heads, 1),
    attn_bias=jnp.stack(attn_bias, 1),
    mlps=jnp.stack(mlps, 1),
    embed=jnp.sum(at_end('blocks.0.resid_pre') * u_BxD, -1),
    ln_bias=d_BxD @ model.ln_f.bias[...],
  )


# ---- activation patching (noising) -------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Patching:
  """`effect` (normalised, module docstring) and `patched` (the mean logit difference of each
  patched run), both [L, H] or [L, T]; `clean` and `corrupted`: the unpatched runs' means."""

  effect: jax.Array
  patched: jax.Array
  clean: jax.Array
  corrupted: jax.Array


def _sweep(model, clean_BxT, corrupted_BxT, end_B, io_B, s_B, name, count, patch_at) -> Patching:
  """For every layer i and every index j < count: the clean run with `patch_at(value, j)` at
  blocks.{i}.{name}, value being the corrupted run's activation there."""
  if clean_BxT.shape != corrupted_BxT.shape:
    raise ValueError(
      f'clean {clean_BxT.shape} and corrupted {corrupted_BxT.shape} prompts differ in shape'
    )
  model = hooks.unscanned(model)
  L = model.cfg.n_layer
  names = [f'blocks.{i}.{name}' for i in range(L)]
  _, bad = hooks.run_with_cache(model, corrupted_BxT, names=names)
  clean = logit_diffs(model, clean_BxT, end_B, io_B, s_B).mean()
  corrupted = logit_diffs(model, corrupted_BxT, end_B, io_B, s_B).mean()
  graphdef, state = nnx.split(model)

  def one(state, hook, value, j):
    patches = {hook: patch_at(value, j)}
    return logit_diffs(nnx.merge(graphdef, state), clean_BxT, end_B, io_B, s_B, patches).mean()

  rows = [
    jax.vmap(one, in_axes=(None, None, None, 0))(state, hook, bad[hook], jnp.arange(count))
    for hook in names
  ]
  patched = jnp.stack(rows)
  return Patching(
    effect=(patched - clean) / (clean - corrupted),
    patched=patched,
    clean=clean,
    corrupted=corrupted,
  )


@nnx.jit(static_argnames='where')
def patch_residual(
  model: GPT, clean_BxT, corrupted_BxT, end_B, io_B, s_B, where: str = 'resid_pre'
) -> Patching:
  """Noising the residual stream, per layer and position: effect [L, T] of the corrupted run's
  blocks.{l}.{where} at position t (`where`: resid_pre, resid_mid or resid_post)."""
  if where not in ('resid_pre', 'resid_mid', 'resid_post'):
    raise ValueError(f"where: 'resid_pre', 'resid_mid' or 'resid_post', not {where!r}")
  T = clean_BxT.shape[1]
  return _sweep(
    model, clean_BxT, corrupted_BxT, end_B, io_B, s_B, where, T, lambda v, t: Patch(v, pos=t)
  )


@nnx.jit
def patch_heads(model: GPT, clean_BxT, corrupted_BxT, end_B, io_B, s_B, pos=None) -> Patching:
  """Noising each head's output z (before W_O): effect [L, H] of the corrupted run's z of head h
  in layer l, at every position (pos=None) or at `pos` (an index or several)."""
  H = model.cfg.n_head
  return _sweep(
    model,
    clean_BxT,
    corrupted_BxT,
    end_B,
    io_B,
    s_B,
    'attn.z',
    H,
    lambda v, h: Patch(v, head=h, pos=pos),
  )


@jax.jit
def logit_diff(logits_BxTxV: jax.Array, end_B, io_B, s_B) -> jax.Array:
  """logit(IO) - logit(S) at each prompt's last position, [B] float32."""
  b = jnp.arange(logits_BxTxV.shape[0])
  final_BxV = logits_BxTxV[b, end_B].astype(jnp.float32)
  return final_BxV[b, io_B] - final_BxV[b, s_B]
