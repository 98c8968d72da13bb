"""The IOI tools end to end on the training config's smoke run: `jdl ioi eval` and `circuit`,
`jdl figures ioi`; mean ablation against hand-made patches; bad input; a GPT-2-small-shaped model
from a Hugging Face folder (second tier)."""

import dataclasses
import json

import numpy as np
import pytest
from flax import nnx

from jdl import cli
from jdl import config as config_lib
from jdl.data import text
from jdl.interp import circuit, patching
from jdl.models import hf_gpt2, hooks
from jdl.models.gpt import GPT, GPTConfig
from jdl.models.hooks import Patch
from jdl.train import loop
from jdl.train import run as run_lib

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  assert text.kjv_present(), f'data missing; install with: {text.INSTALL_KJV}'
  workdir = tmp_path_factory.mktemp('ioi') / 'run'
  config = config_lib.load('experiments/interp/ioi_gpt.py:smoke')
  with config.unlocked():
    config.sample_prompts = ()
  loop.train_and_evaluate(config, workdir)
  return workdir


def jdl(capsys, *args):
  code = cli.main([str(a) for a in args])
  out = capsys.readouterr()
  return code, out.out, out.err


def test_eval_and_circuit_on_a_trained_run(smoke_run, tmp_path, capsys):
  code, out, err = jdl(capsys, 'ioi', 'eval', '--workdir', smoke_run, '--prompts', 12)
  assert code == 0, err
  assert out.startswith('12 prompts (train names, train templates): logit diff ')
  assert '12 prompts (held names, held templates): logit diff ' in out
  code, out, err = jdl(
    capsys, 'ioi', 'circuit', '--workdir', smoke_run, '--prompts', 12, '--json', tmp_path / 'c.json'
  )
  assert code == 0, err
  a = json.loads((tmp_path / 'c.json').read_text())
  assert set(a['classes']) == set(circuit.CLASSES)
  assert np.asarray(a['effects']['logits']).shape == (2, 4)  # the smoke model: 2 layers, 4 heads
  assert np.asarray(a['attention']['end_to_io']).shape == (2, 4)
  # F(M) is the model's own mean logit difference, the number `eval` prints
  np.testing.assert_allclose(a['judge']['F(M)'], a['evaluate']['logit_diff'], rtol=1e-4, atol=1e-5)
  assert 'faithfulness F(C)/F(M)' in out


def test_mean_ablation_is_the_template_mean_patched_in(smoke_run):
  run = run_lib.load_run(smoke_run)
  model, tok = run.model, run.task.tokenizer()
  data = circuit.prompt_data(tok, 9, names='held', templates='held')
  c, bad = data.clean, data.bad
  every = {(i, h) for i in range(2) for h in range(4)}
  np.testing.assert_allclose(
    circuit.mean_ablated(model, data, every), circuit.mean_ablated(model, data, None), rtol=1e-5
  )
  # by hand: layer 1's heads 0 and 2 replaced by their mean output over the corrupted prompts of
  # the same template
  _, cache = hooks.run_with_cache(model, bad.tokens, names=['blocks.1.attn.z'])
  z = np.asarray(cache['blocks.1.attn.z'])
  mean = np.stack([z[bad.template == t].mean(0) for t in bad.template])
  patch = {'blocks.1.attn.z': Patch(mean, head=[0, 2])}
  expected = patching.logit_diffs(model, c.tokens, c.end, c.io, c.s, patch).mean()
  got = circuit.mean_ablated(model, data, every - {(1, 0), (1, 2)})
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_figures_of_a_run(smoke_run, tmp_path, capsys):
  code, out, err = jdl(capsys, 'figures', 'ioi', '--workdir', smoke_run, '--outdir', tmp_path)
  assert code == 0, err + out
  for name in ('ioi_patching.png', 'ioi_attention.png', 'ioi_circuit.png', 'ioi_circuit.json'):
    assert (tmp_path / name).stat().st_size > 1000, name


def test_bad_input_is_named(smoke_run, tmp_path, capsys):
  code, _, err = jdl(capsys, 'ioi', 'eval', '--workdir', smoke_run, '--names', 'Mary,John,Aragorn')
  assert code == 2 and "name 'Aragorn' is not a single token" in err
  code, _, err = jdl(capsys, 'ioi', 'eval', '--hf', tmp_path)
  assert code == 2 and 'no config.json there' in err
  code, _, err = jdl(capsys, 'ioi', 'eval', '--workdir', tmp_path / 'none')
  assert code == 2


@pytest.mark.integration
def test_gpt2_small_shaped_model_from_a_hugging_face_folder(tmp_path, capsys):
  """The path for a user's GPT-2 small checkpoint, on random weights of its shape."""
  cfg = GPTConfig(vocab_size=50257, context=1024, n_layer=12, n_head=12, d_model=768)
  hf_gpt2.save(GPT(cfg, rngs=nnx.Rngs(0)), tmp_path / 'gpt2')
  code, out, err = jdl(capsys, 'ioi', 'eval', '--hf', tmp_path / 'gpt2', '--prompts', 4)
  assert code == 0, err
  assert out.startswith('4 prompts (train names, train templates): logit diff ')
  model = hf_gpt2.load(tmp_path / 'gpt2')
  assert dataclasses.asdict(model.cfg)['n_layer'] == 12
  from jdl.data import tokenizers
  from jdl.interp.path_patching import path_patch_heads

  data = circuit.prompt_data(tokenizers.gpt2(), 2, names='held', templates='held')
  sweep = path_patch_heads(model, *data.args)
  assert sweep.effect.shape == (12, 12) and np.isfinite(np.asarray(sweep.effect)).all()
