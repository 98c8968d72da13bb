"""Data, tokenizer and training: the Ding split and its BPE, the smoke runs of both configs
through the one loop, the same loss on 1 and on 8 devices (tensor parallel), `jdl translate`,
the equal-wall-time race of both frameworks and its figure."""

import functools
import json

import jax
import numpy as np
import pytest

from jdl import config as config_lib
from jdl.bench.common import TORCH_ENV
from jdl.data import ding as data
from jdl.tasks import translation
from jdl.train import loop
from jdl.train.run import read_metrics
from jdl.transformer import evaluate, figures, race
from tests.conftest import ROOT

DING = str(ROOT / 'experiments/transformer/ding_de_en.py')
WMT = str(ROOT / 'experiments/transformer/wmt14_base.py')


def needs_ding(fn):
  """`make test` installs the data first (`make data`); missing data is a failure that names
  the command, never a skip."""

  @functools.wraps(fn)  # keeps the signature, so pytest still passes the fixtures
  def wrapped(*args, **kwargs):
    assert data.present(), f'data missing; install with: {data.INSTALL}'
    return fn(*args, **kwargs)

  return wrapped


def test_cleaning_keeps_sentences_only():
  assert data.clean('Ich bin müde {adj}. [ugs.]') == 'Ich bin müde .'
  assert data.clean('Ich bin pleite.; Ich bin blank.') == 'Ich bin pleite.'
  assert data.is_sentence('Er leistete keinen Widerstand.')
  assert not data.is_sentence('eel soup')  # no sentence end
  assert not data.is_sentence('Gut so!')  # two words
  assert not data.is_sentence('to do sth. for sb.')  # a phrase template


def test_missing_dictionary_names_the_install_command(tmp_path):
  with pytest.raises(FileNotFoundError, match='apt-get install -y trans-de-en'):
    data.read_pairs(tmp_path / 'de-en')


@needs_ding
def test_split_holds_out_test_german_and_tokenizer_round_trips():
  parts = data.splits()
  assert len(parts['train']) > 15000 and len(parts['test']) > 900
  train_german = {de for de, _ in parts['train']}
  train_english = {en for _, en in parts['train']}
  assert not any(de in train_german for de, _ in parts['test'] + parts['validation'])
  assert not any(en in train_english for _, en in parts['test'])
  assert len(set(parts['train'])) == len(parts['train'])  # de-duplicated
  tok = data.tokenizer(1000)
  sentences = [s for pair in parts['train'][:300] for s in pair]
  for s in sentences:
    assert tok.decode(tok.encode(s)) == s
  assert tok.decode(tok.encode('Ich bin Student.') + [data.EOS, 17, 18]) == 'Ich bin Student.'
  assert max(i for s in sentences for i in tok.encode(s)) < tok.n_vocab <= 1000


def test_packing_keeps_every_pair_and_its_positions():
  src = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
  tgt = [[20, 21], [22], [23, 24, 25]]
  rows = data.pack(src, tgt, length=6, seed=0)
  assert rows['src'].shape[1] == 6
  for r in range(len(rows['src'])):
    for seg in range(1, rows['src_segments'][r].max() + 1):
      s = rows['src'][r][rows['src_segments'][r] == seg].tolist()
      i = src.index(s)
      t_in = rows['tgt_in'][r][rows['tgt_segments'][r] == seg].tolist()
      t_out = rows['tgt_out'][r][rows['tgt_segments'][r] == seg].tolist()
      assert t_in == [data.BOS, *tgt[i]] and t_out == [*tgt[i], data.EOS]
      assert rows['src_positions'][r][rows['src_segments'][r] == seg].tolist() == list(
        range(len(s))
      )
  assert (rows['src_segments'] > 0).sum() == sum(map(len, src))


@needs_ding
def test_smoke_trains_reports_bleu_and_translates(tmp_path, capsys):
  config = config_lib.load(DING + ':smoke')
  with config.unlocked():
    config.mesh.data = 1
  result = loop.train_and_evaluate(config, tmp_path)
  history = [h['loss'] for h in result['history'] if 'loss' in h]
  assert result['step'] == 4 and history[-1] < history[0]
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['sentences'] == 16 and 0 <= saved['bleu'] <= 100 and saved['chrf'] > 0
  assert evaluate.main(['--workdir', str(tmp_path), '--beam-size', '0', 'Ich bin Student.']) == 0
  assert capsys.readouterr().out.strip().splitlines()[-1].strip()


@needs_ding
def test_loss_on_8_devices_with_tensor_parallel_equals_1_device(tmp_path):
  losses, specs = {}, {}
  for name, mesh in {
    'one device': dict(data=1, fsdp=1, tensor=1),
    'tensor parallel': dict(data=1, fsdp=1, tensor=8),
  }.items():
    config = config_lib.load(DING + ':smoke')
    with config.unlocked():
      config.mesh.update(mesh)
      config.log_every_steps = 2
      config.eval_every_steps = -1
      config.decode.test_sentences = 0  # only the losses are compared
    result = loop.train_and_evaluate(config, tmp_path / name.replace(' ', '_'))
    losses[name] = [h['loss'] for h in result['history'] if 'loss' in h]
    params = result['state'].params
    specs[name] = (
      params['decoder'][0]['self_attn']['qkv_kernel'].sharding.spec,
      params['encoder'][0]['ffn']['w1'].sharding.spec,
      params['embedding'].sharding.spec,
    )
  assert jax.device_count() == 8
  np.testing.assert_allclose(losses['tensor parallel'], losses['one device'], rtol=1e-5)
  # Whole heads, FFN columns and vocabulary rows are split over 'tensor'.
  assert specs['tensor parallel'] == (
    jax.P(None, None, 'tensor', None),
    jax.P(None, 'tensor'),
    jax.P('tensor', None),
  )


@pytest.mark.integration
@needs_ding
def test_race_budget_ends_both_frameworks_with_bleu_records_and_a_figure(tmp_path, monkeypatch):
  for key, value in TORCH_ENV.items():  # the peer's malloc settings: no re-exec of pytest
    monkeypatch.setenv(key, value)
  common = ['--config', DING + ':smoke', '--eval-sentences', '8', '--config.decode.beam_size=0']
  # A budget spent by the first call: each stops there, evaluates and scores the test set.
  budget = '--config.max_seconds=1e-6'
  for framework in ('jdl', 'torch'):
    workdir = str(tmp_path / framework)
    assert race.main(['--framework', framework, '--workdir', workdir, budget, *common]) == 0
  for framework, steps_per_call in (('jdl', 2), ('torch', 1)):
    last = read_metrics(tmp_path / framework)[-1]
    assert last['step'] == steps_per_call and last['seconds'] > 0
    assert 0 <= last['validation_bleu'] <= 100 and last['validation_chrf'] > 0
    results = translation.read_results(tmp_path / framework)
    assert results['sentences'] == 16 and results['beam_size'] == 0
  (png,) = figures.render_bleu_time(
    tmp_path, {'jdl': tmp_path / 'jdl', 'PyTorch': tmp_path / 'torch'}
  )
  assert png.stat().st_size > 0
  (md,) = figures.render_translation_examples(
    tmp_path, jdl_run=tmp_path / 'jdl', torch_run=tmp_path / 'torch', n=3
  )
  rows = md.read_text().splitlines()[4:]
  stored = [translation.read_results(tmp_path / side)['hypotheses'] for side in ('jdl', 'torch')]
  assert len(rows) == 3 and rows[0].startswith('| 1 | ') and rows[2].startswith('| 16 | ')
  for row, i in zip(rows, (0, 8, 15)):  # evenly spread over the 16 scored sentences
    cells = [c.strip() for c in row.strip('|').split(' | ')]
    assert cells[3:] == [stored[0][i].replace('|', '\\|'), stored[1][i].replace('|', '\\|')]


@pytest.mark.parametrize(
  'mistyped, message',
  [
    (['--minutes', '3'], 'unrecognized arguments: --minutes 3'),
    (['--config.max_second=60'], "unknown config key 'max_second'; did you mean 'max_seconds'?"),
  ],
)
def test_race_refuses_unknown_flags_and_config_keys(tmp_path, capsys, mistyped, message):
  argv = ['--framework', 'jdl', '--config', DING + ':smoke', '--workdir', str(tmp_path)]
  with pytest.raises(SystemExit) as exit_:
    race.main(argv + mistyped)
  assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.integration
def test_wmt14_smoke_on_mock_data_under_8_devices(tmp_path):
  import tensorflow_datasets as tfds

  config = config_lib.load(WMT + ':smoke')
  with tfds.testing.mock_data(num_examples=48):
    result = loop.train_and_evaluate(config, tmp_path)
  assert result['step'] == 4 and np.isfinite(result['final']['validation_loss'])
  assert len(result['state'].params['embedding'].sharding.device_set) == 8
