"""Each embedding config's smoke run through the loop; the same loss on 1 and 8 devices with the
tables sharded over the vocabulary; bitwise resume; the tools' answers and errors."""

import jax
import numpy as np
import pytest

from jdl import config as config_lib
from jdl.embeddings import cli
from jdl.embeddings.evaluate import WordVectors
from jdl.train import loop
from tests.conftest import MLP
from tests.embeddings import FASTTEXT, GLOVE, W2V


def smoke(spec, **updates):
  """A smoke config on one device (the 1-vs-8 test sets its own meshes)."""
  config = config_lib.load(spec)
  with config.unlocked():
    config.mesh.update(data=1, fsdp=1, tensor=1)
    for k, v in updates.items():
      config[k] = v
  return config


SMOKES = {
  'skipgram': W2V + ':smoke',
  'cbow': W2V + ':smoke,cbow',
  'glove': GLOVE + ':smoke',
  'fasttext': FASTTEXT + ':smoke',
}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Each config's smoke run, once: {model: (workdir, fit's result, printed report)}."""
  import contextlib
  import io

  out = {}
  for name, spec in SMOKES.items():
    workdir = tmp_path_factory.mktemp(name)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      result = loop.train_and_evaluate(smoke(spec), workdir)
    out[name] = (workdir, result, printed.getvalue())
  return out


@pytest.mark.parametrize('name', list(SMOKES))
def test_smoke_run_trains_and_reports(trained, name):
  workdir, out, printed = trained[name]
  final = out['final']
  assert out['step'] == 4 and np.isfinite(final['loss']) and np.isfinite(final['sample_loss'])
  if name != 'glove':
    # The loss starts at 6 ln 2 = 4.159 per pair (outputs are zero) and falls.
    assert final['sample_loss'] < 6 * np.log(2) and final['lost'] == 0
  assert 'king:' in printed  # the report's neighbours
  vectors = WordVectors.from_workdir(workdir)
  assert vectors.vectors.shape == (len(vectors.words), 16) and len(vectors.words) > 15_000


def test_one_and_eight_devices_give_the_same_loss_with_the_vocabulary_sharded():
  losses, shardings = [], []
  for mesh in (dict(data=1, fsdp=1, tensor=1), dict(data=2, fsdp=4, tensor=1)):
    config = smoke(W2V + ':smoke')
    config.mesh.update(mesh)
    trainer = loop.Trainer(config)
    state = trainer.init_state()
    batches = trainer.train_batches()
    for _ in range(3):
      state, metrics = trainer.run_steps(state, trainer.global_batch(next(batches)))
      losses.append(float(metrics['loss'][0]))
    shardings.append(state.params['inputs'].sharding.spec)
  np.testing.assert_allclose(losses[:3], losses[3:], rtol=2e-5)
  assert shardings[0] == jax.P(None, None) and shardings[1] == jax.P('fsdp', None)


def test_resume_is_bitwise(tmp_path):
  config = smoke(W2V + ':smoke', checkpoint_every_steps=1)
  straight = loop.Trainer(config).fit(tmp_path / 'straight')
  config.max_seconds = 1e-6  # stops (and saves) after the first step
  first = loop.Trainer(config).fit(tmp_path / 'resumed')
  assert first['stopped'] == 'max_seconds' and first['step'] == 1
  config.max_seconds = 0.0
  resumed = loop.Trainer(config).fit(tmp_path / 'resumed')
  for name in ('inputs', 'outputs'):
    a, b = straight['state'].params[name], resumed['state'].params[name]
    assert np.array_equal(np.asarray(a), np.asarray(b))  # bitwise, not approximately


def test_tools_answer_and_name_what_is_wrong(trained, tmp_path, capsys):
  fasttext, skipgram = trained['fasttext'][0], trained['skipgram'][0]
  assert cli.main(['analogy', '--workdir', str(fasttext), 'king', 'man', 'woman']) == 0
  rows = capsys.readouterr().out.splitlines()
  assert rows[0].startswith('# king - man + woman') and len(rows) == 11
  assert cli.main(['neighbors', '--workdir', str(fasttext), 'kingliness', '--top', '3']) == 0
  assert 'not in the vocabulary: from its character n-grams' in capsys.readouterr().out

  assert cli.main(['neighbors', '--workdir', str(skipgram), 'kingg']) == 2
  err = capsys.readouterr().err
  assert "'kingg' is not in the vocabulary" in err and 'king' in err.split('closest')[1]

  from jdl.train.errors import UsageError

  mlp = config_lib.load(MLP + ':smoke')
  loop.train_and_evaluate(mlp, tmp_path / 'mlp')
  with pytest.raises(UsageError, match="task 'regression', not word embeddings"):
    cli.main(['neighbors', '--workdir', str(tmp_path / 'mlp'), 'king'])
