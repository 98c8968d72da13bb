"""jdl's GPT and Hugging Face's GPT-2 checkpoint format (`config.json` + `model.safetensors`),
both ways, with no torch: the tensors go through the `safetensors` library's numpy API.

    load(folder) -> GPT         a `save_pretrained` folder of GPT2LMHeadModel (or GPT2Model)
    save(model, folder)         the same format, which `GPT2LMHeadModel.from_pretrained` reads

GPT-2's `Conv1D` layers store kernels as [in, out], as jdl's einsums do; the fused `c_attn`
[D, 3D] is q, k, v side by side, each split into heads: jdl's [D, 3, H, K] kernel reshaped.
The output layer is the tied token embedding on both sides, so `lm_head.weight` is not written
(`save_pretrained` leaves it out too). A jdl configuration that GPT-2 cannot express is refused
by name (`config_to_hf`), and so is a GPT-2 configuration that jdl's GPT cannot express.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np
import safetensors.numpy
from flax import nnx

from jdl.models.gpt import GPT, GPTConfig

# GPT-2's BPE has 50,257 ids; its end-of-text (50256) is also its begin-of-sequence.
_GPT2_END_OF_TEXT = 50256

# What the export does with each GPTConfig field: written to config.json, or irrelevant to the
# weights. A new GPTConfig field stops the export until it is given a line here.
_EXPORTED = {
  'vocab_size': 'vocab_size',
  'context': 'n_positions',
  'n_layer': 'n_layer',
  'n_head': 'n_head',
  'd_model': 'n_embd',
  'd_ff': 'n_inner',
  'dropout': 'resid_pdrop, embd_pdrop',
  'post_ln': 'refused when True: GPT-2 is pre-LN',
  'ln_epsilon': 'layer_norm_epsilon',
  'scan_layers': 'layout only: the layers are written one by one',
  'remat': 'training only',
  'dtype': 'compute only: the parameters are float32',
  'attention': 'compute only: the same attention function (jdl.models.fused_attention)',
}


def config_to_hf(cfg: GPTConfig) -> dict:
  """GPT-2's `config.json` for a jdl GPTConfig; a field GPT-2 cannot express is a ValueError
  that names it."""
  unknown = [f.name for f in dataclasses.fields(cfg) if f.name not in _EXPORTED]
  if unknown:
    raise ValueError(
      f'GPTConfig.{unknown[0]}: the GPT-2 export does not know this field '
      '(add it to jdl.models.hf_gpt2._EXPORTED with what GPT-2 makes of it)'
    )
  if cfg.post_ln:
    raise ValueError(
      'GPTConfig.post_ln=True: GPT-2 is pre-LN (a LayerNorm before each sublayer and a final '
      'ln_f); a post-LN (GPT-1) model has no GPT2LMHeadModel equivalent'
    )
  eot = _GPT2_END_OF_TEXT if cfg.vocab_size > _GPT2_END_OF_TEXT else None
  return {
    'architectures': ['GPT2LMHeadModel'],
    'model_type': 'gpt2',
    'vocab_size': cfg.vocab_size,
    'n_positions': cfg.context,
    'n_embd': cfg.d_model,
    'n_layer': cfg.n_layer,
    'n_head': cfg.n_head,
    'n_inner': cfg.d_ff or None,  # None: 4 * n_embd, as jdl's 0
    'activation_function': 'gelu_new',  # the tanh GELU, jdl's
    'layer_norm_epsilon': cfg.ln_epsilon,
    'resid_pdrop': cfg.dropout,
    'embd_pdrop': cfg.dropout,
    'attn_pdrop': 0.0,  # jdl drops no attention weights
    'initializer_range': 0.02,
    'scale_attn_weights': True,
    'scale_attn_by_inverse_layer_idx': False,
    'reorder_and_upcast_attn': False,
    'tie_word_embeddings': True,
    'bos_token_id': eot,
    'eos_token_id': eot,
    'dtype': 'float32',
  }


def config_from_hf(hf: dict, **overrides) -> GPTConfig:
  """A jdl GPTConfig from GPT-2's `config.json` (`overrides`: GPTConfig fields); what jdl's GPT
  computes differently is a ValueError that names the field."""
  activation = hf.get('activation_function', 'gelu_new')
  if activation not in ('gelu_new', 'gelu_pytorch_tanh'):
    raise ValueError(f'activation_function={activation!r}: jdl GPT uses the tanh GELU (gelu_new)')
  for field, supported in (
    ('scale_attn_weights', True),
    ('scale_attn_by_inverse_layer_idx', False),
    ('tie_word_embeddings', True),
    ('add_cross_attention', False),
  ):
    if hf.get(field, supported) != supported:
      raise ValueError(f'{field}={hf[field]!r}: jdl GPT supports only {supported}')
  fields = dict(
    vocab_size=hf['vocab_size'],
    context=hf['n_positions'],
    n_layer=hf['n_layer'],
    n_head=hf['n_head'],
    d_model=hf['n_embd'],
    d_ff=hf.get('n_inner') or 0,
    # jdl drops on the embeddings and residual branches, as GPT-2's embd/resid_pdrop; it has no
    # dropout on attention weights, so attn_pdrop is not kept (it only matters in training).
    dropout=hf.get('resid_pdrop', 0.0),
    ln_epsilon=hf.get('layer_norm_epsilon', 1e-5),
  )
  return GPTConfig(**{**fields, **overrides})


def _block_from_hf(t: dict[str, np.ndarray], i: int, cfg: GPTConfig) -> dict:
  d, h = cfg.d_model, cfg.n_head
  f32 = lambda name: np.asarray(t[f'h.{i}.{name}'], np.float32)
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
  blocks = [_block_from_hf(t, i, cfg) for i in range(cfg.n_layer)]
  if cfg.scan_layers:
    blocks_tree = jax.tree.map(lambda *xs: np.stack(xs), *blocks)
  else:
    blocks_tree = dict(enumerate(blocks))
  f32 = lambda name: np.asarray(t[name], np.float32)
  return {
    'wte': f32('wte.weight'),
    'wpe': f32('wpe.weight'),
    'blocks': blocks_tree,
    'ln_f': {'scale': f32('ln_f.weight'), 'bias': f32('ln_f.bias')},
  }


def params_to_hf(params: dict, cfg: GPTConfig) -> dict[str, np.ndarray]:
  """GPT2LMHeadModel's tensors from jdl's pure parameter dict (the inverse of params_from_hf)."""
  d = cfg.d_model
  f32 = lambda x, *shape: np.ascontiguousarray(np.asarray(x, np.float32).reshape(shape))
  out = {
    'wte.weight': f32(params['wte'], cfg.vocab_size, d),
    'wpe.weight': f32(params['wpe'], cfg.context, d),
    'ln_f.weight': f32(params['ln_f']['scale'], d),
    'ln_f.bias': f32(params['ln_f']['bias'], d),
  }
  for i in range(cfg.n_layer):
    if cfg.scan_layers:  # stacked [L, ...]
      b = jax.tree.map(lambda x, i=i: np.asarray(x)[i], params['blocks'])
    else:
      b = params['blocks'][i]
    a = b['attn']
    layer = {
      'ln_1.weight': f32(b['ln_1']['scale'], d),
      'ln_1.bias': f32(b['ln_1']['bias'], d),
      'attn.c_attn.weight': f32(a['qkv_kernel'], d, 3 * d),
      'attn.c_attn.bias': f32(a['qkv_bias'], 3 * d),
      'attn.c_proj.weight': f32(a['out_kernel'], d, d),
      'attn.c_proj.bias': f32(a['out_bias'], d),
      'ln_2.weight': f32(b['ln_2']['scale'], d),
      'ln_2.bias': f32(b['ln_2']['bias'], d),
      'mlp.c_fc.weight': f32(b['fc_kernel'], d, cfg.ff),
      'mlp.c_fc.bias': f32(b['fc_bias'], cfg.ff),
      'mlp.c_proj.weight': f32(b['proj_kernel'], cfg.ff, d),
      'mlp.c_proj.bias': f32(b['proj_bias'], d),
    }
    out.update({f'h.{i}.{k}': v for k, v in layer.items()})
  return {f'transformer.{k}': v for k, v in out.items()}


def load(folder, **overrides) -> GPT:
  """A jdl GPT holding the weights of a Hugging Face GPT-2 folder (`save_pretrained` output);
  `overrides` are GPTConfig fields (scan_layers, dtype, ...)."""
  folder = pathlib.Path(folder)
  cfg = config_from_hf(json.loads((folder / 'config.json').read_text()), **overrides)
  tensors = safetensors.numpy.load_file(folder / 'model.safetensors')
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


def save(model: GPT, folder) -> pathlib.Path:
  """Writes `config.json` and `model.safetensors` of GPT2LMHeadModel into `folder` (created);
  a model GPT-2 cannot express is refused before anything is written."""
  if not isinstance(model, GPT):
    raise ValueError(f'the GPT-2 export takes a jdl GPT, not a {type(model).__name__}')
  hf_config = config_to_hf(model.cfg)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  tensors = params_to_hf(jax.device_get(params), model.cfg)
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  (folder / 'config.json').write_text(json.dumps(hf_config, indent=2, sort_keys=True) + '\n')
  # transformers refuses a safetensors file whose metadata does not name its format.
  safetensors.numpy.save_file(tensors, folder / 'model.safetensors', metadata={'format': 'pt'})
  return folder
