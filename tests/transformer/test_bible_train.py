"""The Spanish-English configs through the one loop: the Transformer and both recurrent
encoder-decoders train (`:smoke`), score both held-out sets with sacrebleu's signature, and
`jdl translate` takes any input: an empty line gives an empty line, a too-long input is
translated in pieces, a single word over the limit is refused with the limit."""

import json

import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.data import bible_pairs as bible
from jdl.models.seq2seq import Seq2Seq
from jdl.tasks import translation
from jdl.train import loop
from jdl.train.errors import UsageError
from jdl.transformer import evaluate, figures
from tests.conftest import ROOT
from tests.transformer.test_bible_pairs import needs_bibles

TRANSFORMER = str(ROOT / 'experiments/transformer/bible_es_en.py')
RNN = str(ROOT / 'experiments/transformer/seq2seq_es_en.py')


def train_smoke(config_path: str, workdir) -> dict:
  result = loop.train_and_evaluate(config_lib.load(config_path), workdir)
  losses = [h['loss'] for h in result['history'] if 'loss' in h]
  assert result['step'] == 4 and losses[-1] < losses[0]
  saved = json.loads((workdir / 'results.json').read_text())
  for scores in (saved, saved['book']):  # the random verses and the held-out book
    assert scores['sentences'] == 8 and len(scores['hypotheses']) == 8
    assert 0 <= scores['bleu'] <= 100 and scores['chrf'] > 0
    assert scores['bleu_signature'].startswith('nrefs:1|case:mixed|eff:no|tok:13a')
  return saved


@pytest.fixture(scope='module')
def transformer_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('es_en')
  return workdir, train_smoke(TRANSFORMER + ':smoke', workdir)


@needs_bibles
def test_transformer_smoke_scores_both_test_sets(transformer_run):
  _, saved = transformer_run
  assert saved['direction'] == 'es-en' and saved['beam_size'] == 2
  # Spanish in, English references: the first random test verse (Genesis 1:3).
  (ref, spanish, english) = bible.splits()['test'][0]
  assert ref == ('Genesis', 1, 3) and saved['examples'][0][0] == spanish
  assert (
    saved['examples'][0][2] == english == 'God said, “Let there be light,” and there was light.'
  )


@needs_bibles
@pytest.mark.parametrize('variant', ['smoke', 'smoke,attention'])
def test_recurrent_smokes_train_and_score(tmp_path, variant):
  saved = train_smoke(f'{RNN}:{variant}', tmp_path)
  config = json.loads((tmp_path / 'config.json').read_text())
  assert config['model']['attention'] == ('attention' in variant)
  # The length figure reads the runs' translations.
  paths = figures.render_translation_length(tmp_path, rnn_run=tmp_path)
  assert paths[0].stat().st_size > 0 and 'BLEU / chrF' in paths[1].read_text()
  assert saved['sentences'] == 8


def test_recurrent_config_reads_the_transformers_packed_rows():
  rnn, transformer = config_lib.load(RNN), config_lib.load(TRANSFORMER)
  assert rnn.data.kwargs.packed
  for key in ('length', 'vocab_size', 'direction', 'seed', 'limit', 'held_out_book'):
    assert rnn.data.kwargs[key] == transformer.data.kwargs[key], key
  assert isinstance(translation.Task(rnn).build_model(nnx.Rngs(0)), Seq2Seq)
  unpacked = config_lib.load(RNN + ':unpacked,attention')
  assert not unpacked.data.kwargs.packed and unpacked.data.kwargs.length == 96
  assert unpacked.batch_size == 32 and unpacked.model.attention
  # The length figure's runs: the Transformer race's budget, schedule of evaluations and decoding.
  race = config_lib.load(TRANSFORMER + ':race,small')
  for variant in ('race', 'race,attention'):
    c = config_lib.load(f'{RNN}:{variant}')
    assert (c.max_seconds, c.eval_every_steps) == (race.max_seconds, race.eval_every_steps)
    assert c.decode.beam_size == race.decode.beam_size == 0


@needs_bibles
def test_translate_empty_line_gives_empty_line(transformer_run, capsys):
  workdir, _ = transformer_run
  argv = ['--workdir', str(workdir), '--beam-size', '0']
  assert evaluate.main([*argv, '', 'Dios es amor.', '   ']) == 0
  lines = capsys.readouterr().out.split('\n')
  assert lines[0] == '' and lines[1].strip() and lines[2] == '' and lines[3:] == ['']


def test_long_input_is_cut_at_sentence_ends_then_commas_then_words():
  fits = lambda text: len(text.split()) <= 4
  text = 'Uno dos tres. Cuatro cinco, seis siete ocho nueve diez. Once.'
  parts = evaluate.pieces(text, fits)
  assert parts == ['Uno dos tres.', 'Cuatro cinco,', 'seis siete ocho nueve', 'diez. Once.']
  assert ' '.join(parts) == text  # nothing dropped
  assert evaluate.pieces('a b c', fits) == ['a b c']
  with pytest.raises(UsageError, match='alone exceeds the limit'):
    evaluate.pieces('a ' + 'x' * 10, lambda text: len(text) <= 4)


@needs_bibles
def test_translate_long_input_in_pieces_and_refuses_a_giant_word(transformer_run, capsys):
  workdir, _ = transformer_run
  argv = ['--workdir', str(workdir), '--beam-size', '0']
  # The smoke model reads 119 subword tokens (max_len 128 - 8 - 1): 40 verses are far more.
  long = ' '.join(['Y dijo Dios: Sea la luz: y fué la luz.'] * 40)
  assert evaluate.main([*argv, long]) == 0
  captured = capsys.readouterr()
  assert 'longer than the model' in captured.err and 'pieces' in captured.err
  assert len(captured.out.splitlines()) == 1
  with pytest.raises(UsageError, match='at most 119 subword tokens'):
    evaluate.main([*argv, 'á' * 2000])


def test_length_buckets_score_each_bucket_alone():
  sources = ['a b', 'a b c d e f g h i j k l', 'x']
  hyps = ['the cat sat on the mat', 'completely wrong words here', 'the cat sat on the mat']
  refs = ['the cat sat on the mat', 'the dog ran in the park today', 'the cat sat on the mat']
  buckets = figures.length_scores(sources, hyps, refs)
  assert [b['bucket'] for b in buckets] == ['0-9', '10-19']
  assert [b['sentences'] for b in buckets] == [2, 1]
  np.testing.assert_allclose(buckets[0]['bleu'], 100.0)
  assert buckets[1]['bleu'] < 10


@pytest.mark.integration
@needs_bibles
def test_race_runs_on_the_verses_for_both_frameworks(tmp_path, monkeypatch):
  from jdl.bench.common import TORCH_ENV
  from jdl.transformer import race

  for key, value in TORCH_ENV.items():  # the peer's malloc settings: no re-exec of pytest
    monkeypatch.setenv(key, value)
  common = ['--config', TRANSFORMER + ':smoke', '--eval-sentences', '4']
  common += ['--config.decode.beam_size=0', '--config.max_seconds=1e-6']
  for framework in ('jdl', 'torch'):
    workdir = str(tmp_path / framework)
    assert race.main(['--framework', framework, '--workdir', workdir, *common]) == 0
    results = translation.read_results(tmp_path / framework)
    assert results['sentences'] == 8 and results['direction'] == 'es-en'
  argv = ['--framework', 'torch', '--config', RNN + ':smoke', '--workdir', str(tmp_path / 'rnn')]
  with pytest.raises(SystemExit):  # the PyTorch peer is a Transformer only
    race.main(argv)
