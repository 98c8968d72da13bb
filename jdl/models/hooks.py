"""Reading and replacing a GPT's internal activations: the interpretability toolkit's base.

    logits, cache = run_with_cache(model, tokens)                  every activation, by name
    logits = run_with_patches(model, tokens, {name: Patch(...)})   some replaced

Both are plain functions of the model and the tokens, so they run under `jax.jit` / `nnx.jit`
and `jax.vmap` (a patch's head and position may be traced: one compiled program sweeps every
head). They pass a hook to `GPT.__call__` (`hooks=`): at each named point it records the value
and applies the patches there, and the patched value flows on downstream. Without a hook the
model's program is the one it always was; with an empty patch set it is that program too (the
tests compare the jaxprs).

Names, for block i of n_layer (the shapes: B batch, T positions, S key positions, H heads,
K = d_model / H, D d_model):

    blocks.{i}.resid_pre       [B, T, D]     the residual stream entering the block
    blocks.{i}.attn.q|k|v      [B, T, H, K]  queries, keys, values per head
    blocks.{i}.attn.pattern    [B, H, T, S]  softmax(q k^T / sqrt(K)), float32
    blocks.{i}.attn.z          [B, T, H, K]  each head's output before the output projection
    blocks.{i}.attn_out        [B, T, D]     sum_h z_h W_O[h] + b_O
    blocks.{i}.resid_mid       [B, T, D]     the stream between attention and MLP
    blocks.{i}.mlp_out         [B, T, D]
    blocks.{i}.resid_post      [B, T, D]     the stream leaving the block
    ln_final                   [B, T, D]     after the final LayerNorm (pre-LN models only)

logits = ln_final W_e^T. A scanned model (`scan_layers`) is run through `unscanned` first: the
hooks need the Python loop over layers.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.models.gpt import GPT, GPTConfig

# Each hook's (position axis, head axis or None); the pattern's positions are its queries.
BLOCK_HOOKS = {
  'resid_pre': (1, None),
  'attn.q': (1, 2),
  'attn.k': (1, 2),
  'attn.v': (1, 2),
  'attn.pattern': (2, 1),
  'attn.z': (1, 2),
  'attn_out': (1, None),
  'resid_mid': (1, None),
  'mlp_out': (1, None),
  'resid_post': (1, None),
}
FINAL_HOOKS = {'ln_final': (1, None)}


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Patch:
  """A replacement for (part of) one activation. `value` broadcasts to the activation's shape
  (a whole activation from another run's cache, a mean over a batch [1, T, ...], a 0); `head`
  and `pos` (an index, a list of them, or None for all) say which heads and positions take it,
  the rest keep the running values. All three may be traced arrays."""

  value: jax.Array
  head: jax.Array | int | Sequence[int] | None = None
  pos: jax.Array | int | Sequence[int] | None = None


def hook_names(cfg: GPTConfig) -> list[str]:
  names = [f'blocks.{i}.{n}' for i in range(cfg.n_layer) for n in BLOCK_HOOKS]
  return names + ([] if cfg.post_ln else list(FINAL_HOOKS))


def _axes(name: str) -> tuple[int, int | None]:
  return FINAL_HOOKS.get(name) or BLOCK_HOOKS[name.split('.', 2)[2]]


def _check_names(names: Iterable[str], cfg: GPTConfig) -> None:
  known = hook_names(cfg)
  for name in names:
    if name not in known:
      close = difflib.get_close_matches(name, known, n=1)
      hint = f"; did you mean '{close[0]}'?" if close else ''
      per_block = ', '.join(BLOCK_HOOKS)
      final = '' if cfg.post_ln else ', ' + ', '.join(FINAL_HOOKS)
      raise ValueError(
        f"unknown hook '{name}'{hint} (available: blocks.{{0..{cfg.n_layer - 1}}}."
        f'{{{per_block}}}{final})'
      )


def _selected(shape: tuple[int, ...], axis: int, index) -> jax.Array:
  """Boolean [1, .., n, .., 1] (n on `axis`): True at `index` (an int, several, traced or not)."""
  chosen = jnp.reshape(jnp.asarray(index), (1, -1))
  hit = jnp.any(jnp.arange(shape[axis])[:, None] == chosen, axis=1)
  return jnp.reshape(hit, [shape[axis] if a == axis else 1 for a in range(len(shape))])


def _apply(name: str, x: jax.Array, patch: Patch) -> jax.Array:
  value = jnp.asarray(patch.value, x.dtype)
  try:
    fits = np.broadcast_shapes(value.shape, x.shape) == x.shape
  except ValueError:
    fits = False
  if not fits:
    raise ValueError(f'patch of {name}: a value of shape {value.shape} does not fit {x.shape}')
  value = jnp.broadcast_to(value, x.shape)
  pos_axis, head_axis = _axes(name)
  where = None
  if patch.head is not None:
    if head_axis is None:
      raise ValueError(f'patch of {name}: it has no head axis (heads: attn.q|k|v|pattern|z)')
    where = _selected(x.shape, head_axis, patch.head)
  if patch.pos is not None:
    at_pos = _selected(x.shape, pos_axis, patch.pos)
    where = at_pos if where is None else where & at_pos
  return value if where is None else jnp.where(where, value, x)


def unscanned(model: GPT) -> GPT:
  """The same GPT with a Python loop over its layers (scan_layers=False): the stacked block
  weights [L, ...] become L blocks. A model that is not scanned is returned as it is."""
  if not model.cfg.scan_layers:
    return model
  cfg = dataclasses.replace(model.cfg, scan_layers=False)
  out = nnx.eval_shape(lambda: GPT(cfg, sharding_rules=model.rules, rngs=nnx.Rngs(0)))
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  blocks = params['blocks']
  params['blocks'] = {i: jax.tree.map(lambda x, i=i: x[i], blocks) for i in range(cfg.n_layer)}
  state = nnx.state(out, nnx.Param)
  nnx.replace_by_pure_dict(state, params)
  nnx.update(out, state)
  return out


def run_with_cache(
  model: GPT,
  tokens_BxT: jax.Array,
  names: Iterable[str] | None = None,
  patches: Mapping[str, Patch | jax.Array | Sequence[Patch]] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(logits [B, T, V], {name: activation}) of one forward pass without dropout; `names`
  (default: every hook) chooses what is kept. With `patches`, the cache holds the patched
  values and what follows from them. An unknown name is a ValueError listing the known ones."""
  cfg = model.cfg
  wanted = set(hook_names(cfg) if names is None else names)
  patches = {
    name: [
      p if isinstance(p, Patch) else Patch(p)
      for p in (ps if isinstance(ps, list | tuple) else [ps])
    ]
    for name, ps in (patches or {}).items()
  }
  _check_names([*sorted(wanted), *patches], cfg)
  cache = {}

  def hook(name: str, x: jax.Array) -> jax.Array:
    for patch in patches.get(name, ()):
      x = _apply(name, x, patch)
    if name in wanted:
      cache[name] = x
    return x

  logits_BxTxV = unscanned(model)(tokens_BxT, hooks=hook)
  return logits_BxTxV, cache


def run_with_patches(
  model: GPT,
  tokens_BxT: jax.Array,
  patches: Mapping[str, Patch | jax.Array | Sequence[Patch]],
) -> jax.Array:
  """Logits [B, T, V] with the activations named in `patches` replaced: per name, a Patch, a
  list of them (applied in order), or an array (the whole activation). With no patches this is
  `model(tokens)`, bitwise."""
  return run_with_cache(model, tokens_BxT, names=(), patches=patches)[0]
