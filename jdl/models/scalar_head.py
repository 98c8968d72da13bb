"""A GPT trunk with a linear head in place of the output layer: N scores at every position.

    h = GPT.hidden(tokens)                 [B, T, D], after the final LayerNorm
    s = h W_s + b_s                        [B, T, N]

One model serves three roles of learning from preferences (Ziegler et al. 2019; Stiennon et
al. 2020): a reward model (N = 1, read at a sequence's last token and trained with the
Bradley-Terry loss), a value function for PPO (N = 1, read at every position) and a classifier
(N = number of classes). `trunk` is a plain jdl GPT, so a language model's weights copy in
(`from_gpt`) and the reward model starts from the supervised policy, as in those papers.

Shape suffixes: B batch, T positions, D d_model, N scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.models import layers
from jdl.models.gpt import GPT, GPTConfig


class ScalarGPT(nnx.Module):
  def __init__(
    self,
    cfg: GPTConfig,
    n_out: int = 1,
    *,
    sharding_rules: Sequence | None = None,
    rngs: nnx.Rngs,
  ):
    self.cfg, self.n_out = cfg, n_out
    self.trunk = GPT(cfg, sharding_rules=sharding_rules, rngs=rngs)
    # Zero init: a fresh head scores every sequence 0, so a reward model starts indifferent
    # and a value function starts at the mean return it is about to learn.
    self.head_kernel = layers.param(
      rngs, nnx.initializers.zeros_init(), (cfg.d_model, n_out), ('embed', None)
    )
    self.head_bias = layers.param(rngs, nnx.initializers.zeros_init(), (n_out,), (None,))

  def __call__(self, tokens_BxT: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
    """Scores [B, T, N] in float32, one row per position (position t sees tokens 0..t)."""
    h_BxTxD, _ = self.trunk.hidden(tokens_BxT, dropout_key=dropout_key)
    h_BxTxD = h_BxTxD.astype(jnp.float32)
    return h_BxTxD @ self.head_kernel[...] + self.head_bias[...]

  @classmethod
  def from_gpt(cls, gpt: GPT, n_out: int = 1, *, rngs: nnx.Rngs) -> ScalarGPT:
    """A scalar-head model whose trunk holds a copy of `gpt`'s weights (the head is fresh)."""
    model = cls(gpt.cfg, n_out, sharding_rules=gpt.rules, rngs=rngs)
    nnx.update(model.trunk, jax.tree.map(jnp.copy, nnx.state(gpt, nnx.Param)))
    return model


def at_last(scores_BxTxN: jax.Array, lengths_B: jax.Array) -> jax.Array:
  """The scores [B, N] at each row's last real token (position lengths_B - 1): a right-padded
  sequence's score, which has seen the whole sequence and none of the padding."""
  index_B = jnp.clip(lengths_B - 1, 0, scores_BxTxN.shape[1] - 1)
  return jnp.take_along_axis(scores_BxTxN, index_B[:, None, None], axis=1)[:, 0]
