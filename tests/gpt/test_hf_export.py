"""jdl's GPT as a Hugging Face GPT-2 folder and back: bitwise without torch, the same logits in
transformers (integration), configurations GPT-2 cannot express refused by name, `jdl hf export`
on a trained run."""

import dataclasses
import json
import types

import jax
import numpy as np
import pytest
import safetensors.numpy
from flax import nnx

from jdl import cli
from jdl import config as config_lib
from jdl.data import text
from jdl.models import hf_gpt2
from jdl.models.gpt import GPT, GPTConfig
from jdl.train import loop
from jdl.train import run as run_lib

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest

# d_ff and dropout away from their defaults, so that config.json's n_inner and p_drop are checked
CFG = GPTConfig(vocab_size=61, context=12, n_layer=2, n_head=4, d_model=32, d_ff=48, dropout=0.1)
TOKENS = np.random.default_rng(0).integers(0, 61, size=(2, 12))


def perturbed(cfg: GPTConfig) -> GPT:
  """A random GPT with biases and LayerNorms away from their 0/1 init, so the mapping of every
  tensor is seen."""
  model = GPT(cfg, rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  noise = np.random.default_rng(1)
  nnx.replace_by_pure_dict(
    state,
    jax.tree.map(
      lambda x: x + 0.05 * noise.standard_normal(x.shape, np.float32), nnx.to_pure_dict(state)
    ),
  )
  nnx.update(model, state)
  return model


def params(model: GPT) -> dict:
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def test_export_then_import_is_bitwise(tmp_path):
  model = perturbed(CFG)
  hf_gpt2.save(model, tmp_path / 'hf')
  hf = json.loads((tmp_path / 'hf/config.json').read_text())
  assert hf['architectures'] == ['GPT2LMHeadModel'] and hf['model_type'] == 'gpt2'
  assert (hf['n_layer'], hf['n_head'], hf['n_embd'], hf['n_inner'], hf['n_positions']) == (
    2,
    4,
    32,
    48,
    12,
  )
  assert hf['resid_pdrop'] == hf['embd_pdrop'] == 0.1 and hf['attn_pdrop'] == 0.0
  assert hf['activation_function'] == 'gelu_new' and hf['tie_word_embeddings'] is True
  tensors = safetensors.numpy.load_file(tmp_path / 'hf/model.safetensors')
  assert len(tensors) == 4 + 12 * CFG.n_layer and 'lm_head.weight' not in tensors
  assert tensors['transformer.h.1.attn.c_attn.weight'].shape == (32, 96)
  assert tensors['transformer.h.0.mlp.c_proj.weight'].shape == (48, 32)

  back = hf_gpt2.load(tmp_path / 'hf')
  assert back.cfg == CFG
  jax.tree.map(np.testing.assert_array_equal, params(back), params(model))
  np.testing.assert_array_equal(back(TOKENS), model(TOKENS))

  # A scanned model writes the same tensors, and a folder loads into a scanned model too.
  scanned = hf_gpt2.load(tmp_path / 'hf', scan_layers=True)
  assert params(scanned)['blocks']['fc_kernel'].shape == (2, 32, 48)
  hf_gpt2.save(scanned, tmp_path / 'from_scanned')
  again = safetensors.numpy.load_file(tmp_path / 'from_scanned/model.safetensors')
  assert sorted(again) == sorted(tensors)
  for name in tensors:
    np.testing.assert_array_equal(again[name], tensors[name], err_msg=name)


def test_what_gpt2_cannot_express_is_refused_by_name(tmp_path):
  post_ln = GPT(dataclasses.replace(CFG, post_ln=True), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r'GPTConfig.post_ln=True: GPT-2 is pre-LN'):
    hf_gpt2.save(post_ln, tmp_path / 'out')
  assert not (tmp_path / 'out').exists()  # refused before anything is written
  # A field added to GPTConfig later stops the export until the exporter knows it.
  wider = dataclasses.make_dataclass(
    'Wider', [('use_bias', bool, True)], bases=(GPTConfig,), frozen=True
  )
  with pytest.raises(ValueError, match=r'GPTConfig.use_bias: the GPT-2 export does not know'):
    hf_gpt2.config_to_hf(wider(**dataclasses.asdict(CFG)))
  with pytest.raises(ValueError, match='takes a jdl GPT, not a Linear'):
    hf_gpt2.save(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), tmp_path / 'out')
  # and the other way: what jdl's GPT computes differently
  hf = hf_gpt2.config_to_hf(CFG)
  with pytest.raises(ValueError, match="activation_function='relu'"):
    hf_gpt2.config_from_hf({**hf, 'activation_function': 'relu'})
  with pytest.raises(ValueError, match='tie_word_embeddings=False'):
    hf_gpt2.config_from_hf({**hf, 'tie_word_embeddings': False})
  with pytest.raises(ValueError, match='scale_attn_by_inverse_layer_idx=True'):
    hf_gpt2.config_from_hf({**hf, 'scale_attn_by_inverse_layer_idx': True})


def jdl(capsys, *args) -> tuple[int, str, str]:
  code = cli.main([str(a) for a in args])
  out = capsys.readouterr()
  return code, out.out, out.err


def test_jdl_hf_export_writes_a_trained_run(tmp_path, capsys, monkeypatch):
  assert text.kjv_present(), f'data missing; install with: {text.INSTALL_KJV}'
  config = config_lib.load('experiments/gpt/char_bible.py:smoke')
  with config.unlocked():
    config.mesh.data = 1
    config.num_train_steps = 1
    config.eval_every_steps = -1
    config.sample_prompts = ()
  loop.train_and_evaluate(config, tmp_path / 'run')
  code, out, err = jdl(
    capsys, 'hf', 'export', '--workdir', tmp_path / 'run', '--out', tmp_path / 'hf'
  )
  assert code == 0, err
  assert out.strip().endswith(f'{tmp_path}/hf/config.json, {tmp_path}/hf/model.safetensors')
  trained = run_lib.load_run(tmp_path / 'run').model
  np.testing.assert_array_equal(hf_gpt2.load(tmp_path / 'hf')(TOKENS), trained(TOKENS))

  # A run GPT-2 cannot express: exit 2, the field named, nothing written.
  post_ln = GPT(dataclasses.replace(CFG, post_ln=True), rngs=nnx.Rngs(0))
  fake = types.SimpleNamespace(model=post_ln, step=7)
  monkeypatch.setattr(run_lib, 'load_run', lambda workdir, step=None: fake)
  code, out, err = jdl(capsys, 'hf', 'export', '--workdir', 'RUN', '--out', tmp_path / 'refused')
  assert code == 2 and 'RUN (step 7) cannot be exported: GPTConfig.post_ln=True' in err
  assert not (tmp_path / 'refused').exists()


@pytest.mark.integration
def test_the_exported_folder_is_gpt2_in_transformers(tmp_path):
  import torch  # the bench extra, which `make test-integration` installs
  import transformers

  model = perturbed(dataclasses.replace(CFG, dropout=0.0))
  hf_gpt2.save(model, tmp_path / 'jdl')
  hf_model, info = transformers.GPT2LMHeadModel.from_pretrained(
    tmp_path / 'jdl', output_loading_info=True
  )
  assert not any(info.values()), info  # no missing, unexpected or mismatched weights
  hf_model.eval()
  assert hf_model.lm_head.weight.data_ptr() == hf_model.transformer.wte.weight.data_ptr()
  with torch.no_grad():
    logits = hf_model(torch.tensor(TOKENS)).logits.numpy()
  np.testing.assert_allclose(logits, np.asarray(model(TOKENS)), atol=1e-4, rtol=1e-4)

  # transformers' own folder -> jdl -> jdl's folder: the same tensors, bitwise.
  hf_model.save_pretrained(tmp_path / 'hf', safe_serialization=True)
  hf_gpt2.save(hf_gpt2.load(tmp_path / 'hf'), tmp_path / 'again')
  theirs = safetensors.numpy.load_file(tmp_path / 'hf/model.safetensors')
  ours = safetensors.numpy.load_file(tmp_path / 'again/model.safetensors')
  assert sorted(ours) == sorted(theirs)
  for name in theirs:
    np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
