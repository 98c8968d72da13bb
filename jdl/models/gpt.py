"""Decoder-only GPT: token + learned position embeddings, a stack of Transformer blocks with
causal self-attention, and logits through the tied token embedding.

    GPT-2/3 (pre-LN):  x = x + Attn(LN(x));  x = x + MLP(LN(x));  ...;  logits = LN(x) W_e^T
    GPT-1 (post-LN):   x = LN(x + Attn(x));  x = LN(x + MLP(x));  ...;  logits = x W_e^T

MLP(x) = GELU(x W_1 + b_1) W_2 + b_2 with width 4d. Every weight names its logical axes ('vocab',
'embed', 'heads', 'kv', 'mlp'), so data parallel, FSDP and tensor parallel are config choices.
Large configs turn on `scan_layers` (one compiled block, stacked weights [L, ...]) and `remat`
(recompute activations in the backward pass instead of storing them).

`hooks` (jdl.models.hooks: run_with_cache, run_with_patches) sees every block's activations by
name; without it the computation is the same program as before hooks existed. Hooks need the
Python loop over layers (scan_layers=False; `hooks.unscanned` converts a scanned model).

Shape suffixes: B batch, T positions, D d_model, F MLP width, V vocabulary, L layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models import attention, fused_attention, layers
from jdl.models.attention import Hooks, constrain


def _no_hook(name: str, x: jax.Array) -> jax.Array:
  return x


@dataclasses.dataclass(frozen=True)
class GPTConfig:
  vocab_size: int
  context: int  # number of learned positions
  n_layer: int
  n_head: int
  d_model: int
  d_ff: int = 0  # 0: 4 * d_model, as in every GPT
  dropout: float = 0.0  # on embeddings and on each residual branch, as GPT-2
  post_ln: bool = False  # GPT-1's arrangement (and no final LayerNorm)
  ln_epsilon: float = 1e-5
  scan_layers: bool = False
  remat: bool = False
  dtype: str = 'float32'  # compute dtype; parameters stay float32
  # How causal self-attention is computed (jdl.models.fused_attention): 'einsum' (the reference,
  # materialised weights), 'blocked' (skips the masked blocks: the CPU's fast path), 'xla',
  # 'cudnn' (GPU, bfloat16/float16), 'splash' (TPU). Hooks and KV caches use the reference.
  attention: str = 'einsum'

  def __post_init__(self):
    try:
      fused_attention.check(self.attention, self.dtype)
    except ValueError as e:
      from jdl.config import ConfigError

      raise ConfigError(f'config.model.attention: {e}') from None

  @property
  def ff(self) -> int:
    return self.d_ff or 4 * self.d_model

  @classmethod
  def from_config(cls, model, dtype: str = 'float32') -> GPTConfig:
    """From a ConfigDict `config.model`; a key that is not a field is a ConfigError."""
    return layers.config_from_section(cls, model, dtype)


class Block(nnx.Module):
  """One Transformer decoder block (causal self-attention and MLP, each with a residual)."""

  def __init__(self, cfg: GPTConfig, *, sharding_rules: Sequence | None = None, rngs: nnx.Rngs):
    self.cfg, self.rules = cfg, tuple(sharding_rules) if sharding_rules else None
    self.dtype = jnp.dtype(cfg.dtype)
    normal = nnx.initializers.normal(0.02)
    # GPT-2 scales the init of the projections that write into the residual stream by
    # 1/sqrt(2L), so the stream's variance does not grow with depth.
    residual = nnx.initializers.normal(0.02 / (2 * cfg.n_layer) ** 0.5)
    zeros = nnx.initializers.zeros_init()
    self.ln_1 = layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs)
    self.attn = attention.MultiHeadAttention(
      cfg.d_model,
      cfg.n_head,
      dtype=self.dtype,
      kernel_init=normal,
      out_init=residual,
      sharding_rules=sharding_rules,
      implementation=cfg.attention,
      rngs=rngs,
    )
    self.ln_2 = layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs)
    self.fc_kernel = layers.param(rngs, normal, (cfg.d_model, cfg.ff), ('embed', 'mlp'))
    self.fc_bias = layers.param(rngs, zeros, (cfg.ff,), ('mlp',))
    self.proj_kernel = layers.param(rngs, residual, (cfg.ff, cfg.d_model), ('mlp', 'embed'))
    self.proj_bias = layers.param(rngs, zeros, (cfg.d_model,), ('embed',))

  def mlp(self, x_BxTxD: jax.Array) -> jax.Array:
    dt = self.dtype
    h_BxTxF = x_BxTxD.astype(dt) @ self.fc_kernel[...].astype(dt) + self.fc_bias[...].astype(dt)
    h_BxTxF = constrain(h_BxTxF, ('batch', None, 'mlp'), self.rules)
    # GPT-2's GELU is the tanh approximation (Hugging Face's "gelu_new").
    h_BxTxF = jax.nn.gelu(h_BxTxF, approximate=True)
    return h_BxTxF @ self.proj_kernel[...].astype(dt) + self.proj_bias[...].astype(dt)

  def __call__(
    self,
    x_BxTxD: jax.Array,
    dropout_key: jax.Array | None = None,
    cache: dict | None = None,
    cache_index: jax.Array | int = 0,
    hooks: Hooks | None = None,
  ):
    """`hooks` sees 'resid_pre', the attention's 'attn.q', 'attn.k', 'attn.v', 'attn.pattern'
    and 'attn.z', 'attn_out', 'resid_mid' (between the two sublayers), 'mlp_out', 'resid_post'."""
    hook = hooks or _no_hook
    attn_hooks = None if hooks is None else (lambda name, x: hooks(f'attn.{name}', x))
    rate = self.cfg.dropout
    k1, k2 = (None, None) if dropout_key is None else tuple(jax.random.split(dropout_key))
    x_BxTxD = hook('resid_pre', x_BxTxD)
    if self.cfg.post_ln:
      a_BxTxD, cache = self.attn(
        x_BxTxD, causal=True, cache=cache, cache_index=cache_index, hooks=attn_hooks
      )
      a_BxTxD = hook('attn_out', a_BxTxD)
      x_BxTxD = self.ln_1(x_BxTxD + layers.dropout(a_BxTxD, rate, k1)).astype(self.dtype)
      x_BxTxD = hook('resid_mid', x_BxTxD)
      m_BxTxD = hook('mlp_out', self.mlp(x_BxTxD))
      x_BxTxD = self.ln_2(x_BxTxD + layers.dropout(m_BxTxD, rate, k2)).astype(self.dtype)
    else:
      a_BxTxD, cache = self.attn(
        self.ln_1(x_BxTxD).astype(self.dtype),
        causal=True,
        cache=cache,
        cache_index=cache_index,
        hooks=attn_hooks,
      )
      a_BxTxD = hook('attn_out', a_BxTxD)
      x_BxTxD = hook('resid_mid', x_BxTxD + layers.dropout(a_BxTxD, rate, k1))
      m_BxTxD = hook('mlp_out', self.mlp(self.ln_2(x_BxTxD).astype(self.dtype)))
      x_BxTxD = x_BxTxD + layers.dropout(m_BxTxD, rate, k2)
    x_BxTxD = constrain(x_BxTxD, ('batch', None, 'embed'), self.rules)
    return hook('resid_post', x_BxTxD), cache


def _run_block(block: Block, x, key, cache, index, hooks=None):
  return block(x, key, cache, index, hooks)


class GPT(nnx.Module):
  def __init__(self, cfg: GPTConfig, *, sharding_rules: Sequence | None = None, rngs: nnx.Rngs):
    self.cfg = cfg
    self.rules = tuple(sharding_rules) if sharding_rules else None
    self.dtype = jnp.dtype(cfg.dtype)
    self.wte = layers.param(
      rngs, nnx.initializers.normal(0.02), (cfg.vocab_size, cfg.d_model), ('vocab', 'embed')
    )
    self.wpe = layers.param(
      rngs, nnx.initializers.normal(0.01), (cfg.context, cfg.d_model), (None, 'embed')
    )
    if cfg.scan_layers:
      # Stacked weights [L, ...]: the loop body is compiled once, whatever the depth. The new
      # leading axis is named 'layers', which no sharding rule splits.
      @nnx.split_rngs(splits=cfg.n_layer)
      @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: 'layers'})
      def make(rngs):
        return Block(cfg, sharding_rules=sharding_rules, rngs=rngs)

      self.blocks = make(rngs)
    else:
      self.blocks = nnx.List(
        [Block(cfg, sharding_rules=sharding_rules, rngs=rngs) for _ in range(cfg.n_layer)]
      )
    self.ln_f = None if cfg.post_ln else layers.layer_norm(cfg.d_model, cfg.ln_epsilon, rngs)

  def init_cache(self, batch: int, max_len: int | None = None, dtype=None) -> dict:
    """Stacked KV cache of every layer: {'k', 'v'}: [L, B, S_max, H, K]."""
    c = self.cfg
    one = attention.init_cache(
      batch, max_len or c.context, c.n_head, c.d_model // c.n_head, dtype or self.dtype
    )
    return jax.tree.map(lambda z: jnp.broadcast_to(z, (c.n_layer, *z.shape)), one)

  def __call__(
    self,
    tokens_BxT: jax.Array,
    *,
    dropout_key: jax.Array | None = None,
    cache: dict | None = None,
    cache_index: jax.Array | int = 0,
    hooks: Hooks | None = None,
  ):
    """Logits [B, T, V] (compute dtype); with a cache, (logits, updated cache).

    With a cache the T tokens are positions cache_index .. cache_index + T - 1. `hooks` sees
    block i's activations as 'blocks.{i}.NAME' (Block.__call__) and the final LayerNorm's output
    as 'ln_final'; it needs scan_layers=False, and it turns remat off (a forward pass to
    inspect, not to train)."""
    x_BxTxD, new_cache = self.hidden(
      tokens_BxT, dropout_key=dropout_key, cache=cache, cache_index=cache_index, hooks=hooks
    )
    logits_BxTxV = self.unembed(x_BxTxD)
    return logits_BxTxV if cache is None else (logits_BxTxV, new_cache)

  def unembed(self, x_BxTxD: jax.Array) -> jax.Array:
    """Logits of the final hidden states: tied embeddings, the input embedding transposed."""
    logits_BxTxV = jnp.einsum('btd,vd->btv', x_BxTxD, self.wte[...].astype(self.dtype))
    return constrain(logits_BxTxV, ('batch', None, 'vocab'), self.rules)

  def hidden(
    self,
    tokens_BxT: jax.Array,
    *,
    dropout_key: jax.Array | None = None,
    cache: dict | None = None,
    cache_index: jax.Array | int = 0,
    hooks: Hooks | None = None,
  ) -> tuple[jax.Array, dict | None]:
    """The final hidden states [B, T, D] (after the final LayerNorm) and the updated cache
    (None without one): what the output layer, or another head, reads."""
    cfg = self.cfg
    if hooks is not None and cfg.scan_layers:
      raise ValueError(
        'hooks need the Python loop over layers (scan_layers=False): '
        'jdl.models.hooks.unscanned(model) is the same model unscanned'
      )
    T = tokens_BxT.shape[1]
    positions_T = jnp.asarray(cache_index, jnp.int32) + jnp.arange(T, dtype=jnp.int32)
    x_BxTxD = (
      jnp.take(self.wte[...], tokens_BxT, axis=0)
      + jnp.take(self.wpe[...], positions_T, axis=0)[None]
    ).astype(self.dtype)
    x_BxTxD = constrain(x_BxTxD, ('batch', None, 'embed'), self.rules)
    keys = None
    if dropout_key is not None and cfg.dropout > 0:
      dropout_key, emb_key = jax.random.split(dropout_key)
      x_BxTxD = layers.dropout(x_BxTxD, cfg.dropout, emb_key)
      keys = jax.random.split(dropout_key, cfg.n_layer)

    run = nnx.remat(_run_block) if cfg.remat and hooks is None else _run_block
    if cfg.scan_layers:

      @nnx.scan(in_axes=(nnx.Carry, 0, 0, 0, None), out_axes=(nnx.Carry, 0))
      def body(x, block, key, layer_cache, index):
        return run(block, x, key, layer_cache, index)

      x_BxTxD, new_cache = body(x_BxTxD, self.blocks, keys, cache, cache_index)
    else:
      new_layers = []
      for i, block in enumerate(self.blocks):
        layer_cache = None if cache is None else jax.tree.map(lambda c: c[i], cache)
        key = None if keys is None else keys[i]
        block_hooks = None if hooks is None else (lambda n, x, i=i: hooks(f'blocks.{i}.{n}', x))
        x_BxTxD, layer_cache = run(block, x_BxTxD, key, layer_cache, cache_index, block_hooks)
        new_layers.append(layer_cache)
      new_cache = None if cache is None else jax.tree.map(lambda *c: jnp.stack(c), *new_layers)

    if self.ln_f is not None:
      x_BxTxD = self.ln_f(x_BxTxD).astype(self.dtype)
      if hooks is not None:
        x_BxTxD = hooks('ln_final', x_BxTxD)
    return x_BxTxD, new_cache
