"""A tiny random GPT and IOI prompts for the interpretability tests: GPT-2 token ids mapped onto
the small vocabulary the prompts use, biases and LayerNorms away from 0/1 so that every
component shows in an attribution."""

import jax
import numpy as np
from flax import nnx

from jdl.data import ioi, tokenizers
from jdl.models.gpt import GPT, GPTConfig

L, H = 2, 4


def compact(*arrays):
  """The token ids used, renumbered 0..V-1 (the model's small vocabulary), and V."""
  ids = np.unique(np.concatenate([np.ravel(a) for a in arrays]))
  return [np.searchsorted(ids, a).astype(np.int32) for a in arrays], len(ids)


def random_gpt(vocab: int) -> GPT:
  """Random weights with biases and LayerNorms away from 0/1, so the attribution sees them."""
  model = GPT(GPTConfig(vocab, context=24, n_layer=L, n_head=H, d_model=32), rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  noise = np.random.default_rng(1)
  pure = jax.tree.map(
    lambda x: x + 0.2 * noise.standard_normal(x.shape, np.float32), nnx.to_pure_dict(state)
  )
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(model, state)
  return model


def setup():
  assert tokenizers.gpt2_files_present(), f'data missing; install with: {tokenizers.INSTALL_GPT2}'
  tok = tokenizers.gpt2()
  vocab = ioi.Vocabulary.single(tok)
  mixed = ioi.prompts(tok, 8, seed=0, vocab=vocab)  # four templates, different lengths
  one = ioi.Vocabulary.single(tok, templates=ioi.TEMPLATES[:1])  # aligned positions
  clean = ioi.prompts(tok, 8, seed=1, vocab=one)
  bad = ioi.corrupted(tok, clean, seed=2)
  arrays, V = compact(mixed.tokens, mixed.io, mixed.s, clean.tokens, bad.tokens, clean.io, clean.s)
  names = ('mixed', 'mixed_io', 'mixed_s', 'clean', 'bad', 'io', 's')
  data = dict(zip(names, arrays, strict=True))
  data.update(mixed_end=mixed.end, end=clean.end, slots=clean.slots)
  return random_gpt(V), data
