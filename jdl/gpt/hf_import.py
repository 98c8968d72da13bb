"""Hugging Face GPT-2 weights (a local `model.safetensors` + `config.json`) into jdl's GPT.

No network and no torch: the safetensors format is an 8-byte little-endian header length, a
JSON header {name: {dtype, shape, data_offsets}}, then the raw tensors, read here with numpy.

GPT-2's `Conv1D` layers store kernels as [in, out] (what jdl's einsums use too); the fused
`c_attn` [D, 3D] splits into q, k, v and each into heads, matching jdl's [D, 3, H, K] kernel.
"""

from __future__ import annotations

import json
import pathlib
import struct

import jax
import numpy as np
from flax import nnx

from jdl.models.gpt import GPT, GPTConfig

_DTYPES = {
  'F32': np.float32,
  'F16': np.float16,
  'F64': np.float64,
  'I64': np.int64,
  'U8': np.uint8,
  'BOOL': np.bool_,
}


def read_safetensors(path) -> dict[str, np.ndarray]:
  data = pathlib.Path(path).read_bytes()
  (n,) = struct.unpack('<Q', data[:8])
  header = json.loads(data[8 : 8 + n])
  body = memoryview(data)[8 + n :]
  out = {}
  for name, info in header.items():
    if name == '__metadata__':
      continue
    start, end = info['data_offsets']
    if info['dtype'] == 'BF16':
      import ml_dtypes

      dtype = ml_dtypes.bfloat16
    else:
      dtype = _DTYPES[info['dtype']]
    out[name] = np.frombuffer(body[start:end], dtype).reshape(info['shape'])
  return out


def config_from_hf(hf: dict, **overrides) -> GPTConfig:
  if hf.get('activation_function', 'gelu_new') not in ('gelu_new', 'gelu_pytorch_tanh'):
    raise ValueError(
      f'jdl GPT uses the tanh GELU; this checkpoint uses {hf["activation_function"]!r}'
    )
  return GPTConfig(
    vocab_size=hf['vocab_size'],
    context=hf['n_positions'],
    n_layer=hf['n_layer'],
    n_head=hf['n_head'],
    d_model=hf['n_embd'],
    d_ff=hf.get('n_inner') or 0,
    ln_epsilon=hf.get('layer_norm_epsilon', 1e-5),
    **overrides,
  )


def _block(t: dict[str, np.ndarray], i: int, cfg: GPTConfig) -> dict:
  d, h = cfg.d_model, cfg.n_head
  p = f'h.{i}.'
  f32 = lambda name: np.asarray(t[p + name], np.float32)
  return {
    'ln_1': {'scale': f32('ln_1.weight'), 'bias': f32('ln_1.bias')},
    'attn': {
      'qkv_kernel': f32('attn.c_attn.weight').reshape(d, 3, h, d // h),
      'qkv_bias': f32('attn.c_attn.bias').reshape(3, h, d // h),
      'out_kernel': f32('attn.c_proj.weight').reshape(h, d // h, d),
      'out_bias': f32('attn.c_proj.bias'),
    },
    'ln_2': {'scale': f32('ln_2.weight'), 'bias': f32('ln_2.bias')},
    'fc_kernel': f32('mlp.c_fc.weight'),
    'fc_bias': f32('mlp.c_fc.bias'),
    'proj_kernel': f32('mlp.c_proj.weight'),
    'proj_bias': f32('mlp.c_proj.bias'),
  }


def params_from_hf(tensors: dict[str, np.ndarray], cfg: GPTConfig) -> dict:
  """jdl's pure parameter dict (nested, as nnx.to_pure_dict gives it) from GPT-2's tensors."""
  # GPT2LMHeadModel prefixes 'transformer.'; GPT2Model does not. lm_head is the tied wte.
  t = {k.removeprefix('transformer.'): v for k, v in tensors.items()}
  blocks = [_block(t, i, cfg) for i in range(cfg.n_layer)]
  if cfg.scan_layers:
    blocks_tree = jax.tree.map(lambda *xs: np.stack(xs), *blocks)
  else:
    blocks_tree = dict(enumerate(blocks))
  return {
    'wte': np.asarray(t['wte.weight'], np.float32),
    'wpe': np.asarray(t['wpe.weight'], np.float32),
    'blocks': blocks_tree,
    'ln_f': {
      'scale': np.asarray(t['ln_f.weight'], np.float32),
      'bias': np.asarray(t['ln_f.bias'], np.float32),
    },
  }


def load_gpt2(folder, **overrides) -> GPT:
  """A jdl GPT holding the weights of a Hugging Face GPT-2 folder (`save_pretrained` output)."""
  folder = pathlib.Path(folder)
  cfg = config_from_hf(json.loads((folder / 'config.json').read_text()), **overrides)
  tensors = read_safetensors(folder / 'model.safetensors')
  model = GPT(cfg, rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  pure = params_from_hf(tensors, cfg)
  expected = jax.tree.map(lambda x: x.shape, nnx.to_pure_dict(state))
  got = jax.tree.map(lambda x: x.shape, pure)
  if expected != got:
    raise ValueError(f'shapes differ from the model built from config.json:\n{expected}\n{got}')
  nnx.replace_by_pure_dict(state, jax.tree.map(jax.numpy.asarray, pure))
  nnx.update(model, state)
  return model
