"""End to end: the small configs train through the one loop, on one and on 8 devices, and
Hugging Face GPT-2 weights import with the same logits."""

import functools
import json

import jax
import numpy as np
import pytest

from jdl import config as config_lib
from jdl.data import text, tokenizers
from jdl.gpt import sample
from jdl.train import loop

ROOT = 'experiments/gpt/'


def needs(present: bool, install: str):
  """`make test` installs the data first (`make data`); a missing file is a failure that
  names the command, never a skip."""

  def check(fn):
    @functools.wraps(fn)  # keeps the signature, so pytest still passes the fixtures
    def wrapped(*args, **kwargs):
      assert present, f'data missing; install with: {install}'
      return fn(*args, **kwargs)

    return wrapped

  return check


needs_kjv = needs(text.kjv_present(), text.INSTALL_KJV)
needs_bpe = needs(tokenizers.gpt2_files_present(), tokenizers.INSTALL_GPT2)


@needs_bpe
def test_gpt2_tokenizer_offline():
  tok = tokenizers.gpt2()
  assert tok.encode('Hello world').tolist() == [15496, 995]
  assert tok.n_vocab == 50257 and tok.decode([15496, 995]) == 'Hello world'


@needs_kjv
@needs_bpe
def test_bpe_smoke_trains_on_the_mixture_and_samples(tmp_path, capsys):
  config = config_lib.load(ROOT + 'bpe_bible.py:smoke')
  with config.unlocked():
    config.mesh.data = 1  # one device: the 8-device meshes are the next test's
  result = loop.train_and_evaluate(config, tmp_path)
  assert result['step'] == 4 and np.isfinite(result['final']['validation_loss'])
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['samples'][0].startswith('And God said')
  # `jdl sample` reads config.json and the latest checkpoint.
  assert (
    sample.main(
      [
        '--workdir',
        str(tmp_path),
        '--prompt',
        'In the beginning',
        '--temperature',
        '0.8',
        '--top-k',
        '40',
        '--top-p',
        '0.95',
        '--max-new-tokens',
        '8',
      ]
    )
    == 0
  )
  assert capsys.readouterr().out.strip().splitlines()[-1].startswith('In the beginning')
  # Both testaments feed the training rows, about half each.
  data = text.load(**config.data.kwargs.to_dict())
  assert set(np.unique(data.train['source'])) == {0, 1}


MESHES = {
  'one device': dict(data=1, fsdp=1, tensor=1),
  'fsdp': dict(data=1, fsdp=8, tensor=1),
  'fsdp + tensor': dict(data=1, fsdp=4, tensor=2),
}


@needs_kjv
def test_sharded_training_matches_one_device(tmp_path):
  losses, specs = {}, {}
  for name, mesh in MESHES.items():
    config = config_lib.load(ROOT + 'char_bible.py:smoke')
    with config.unlocked():
      config.mesh.update(mesh)
      config.log_every_steps = 1
      config.eval_every_steps = -1
      config.sample_prompts = ()
    result = loop.train_and_evaluate(config, tmp_path / name.replace(' ', ''))
    losses[name] = [h['loss'] for h in result['history'] if 'loss' in h]
    specs[name] = result['state'].params['blocks'][0]['fc_kernel'].sharding.spec
  assert len(losses['one device']) == 4 and losses['one device'][-1] < losses['one device'][0]
  for name in ('fsdp', 'fsdp + tensor'):
    np.testing.assert_allclose(losses[name], losses['one device'], rtol=1e-5)
  assert specs['fsdp'] == jax.P('fsdp', None)
  assert specs['fsdp + tensor'] == jax.P('fsdp', 'tensor')


@pytest.mark.integration
def test_hugging_face_gpt2_import_matches_transformers(tmp_path):
  import torch  # the bench extra, which `make test-integration` installs
  import transformers

  from jdl.models import hf_gpt2

  torch.manual_seed(0)
  hf_config = transformers.GPT2Config(
    vocab_size=97,
    n_positions=24,
    n_embd=32,
    n_layer=2,
    n_head=4,
    resid_pdrop=0.0,
    embd_pdrop=0.0,
    attn_pdrop=0.0,
  )
  hf_model = transformers.GPT2LMHeadModel(hf_config).eval()
  with torch.no_grad():  # biases and LayerNorms away from their 0/1 init, to test them too
    for p in hf_model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  hf_model.save_pretrained(tmp_path, safe_serialization=True)
  ids = np.random.default_rng(0).integers(0, 97, size=(2, 24))
  with torch.no_grad():
    expected = hf_model(torch.tensor(ids)).logits.numpy()
  model = hf_gpt2.load(tmp_path)
  np.testing.assert_allclose(np.asarray(model(ids)), expected, atol=1e-4, rtol=1e-4)
