"""The configs' smoke runs through the one loop, then the whole sentiment pipeline on that tiny
run: `jdl sentiment probe`, the per-byte tool with its PNG, steering, `jdl figures sentiment`'s
drawing, and the clear errors for bad input. The TPU recipe runs on tfds mock data."""

import json
import math
import pathlib

import numpy as np
import pytest

from jdl import config as config_lib
from jdl.cli import _main as jdl_main
from jdl.sentiment import figures, pipeline
from jdl.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'experiments/sentiment/mlstm_reviews.py')
TPU = str(ROOT / 'experiments/sentiment/mlstm_imdb_tpu.py')


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('mlstm_smoke')
  config = config_lib.load(f'{CONFIG}:smoke')
  result = loop.train_and_evaluate(config, workdir)
  return workdir, result


def test_smoke_run_trains_a_byte_model_with_carried_state(smoke_run):
  workdir, result = smoke_run
  final = result['final']
  assert math.isclose(
    final['validation_bits_per_char'], final['validation_loss'] / math.log(2), rel_tol=1e-5
  )
  assert final['validation_bits_per_char'] < 8.0  # below uniform over 256 bytes
  assert result['state'].carry is not None  # truncated BPTT: a state carried between batches
  saved = json.loads((workdir / 'results.json').read_text())
  assert saved['cell'] == 'mlstm' and 'validation_bits_per_byte' in saved
  assert saved['sample'].startswith('this movie is ')


def test_probe_tool_steering_and_figures_on_the_smoke_run(smoke_run, tmp_path, capsys):
  workdir, _ = smoke_run
  args = ['sentiment', 'probe', '--workdir', str(workdir), '--max-bytes', '64']
  assert jdl_main([*args, '--resamples', '2', '--permutations', '3']) == 0
  found = pipeline.read_probe(workdir)
  assert found['width'] == 16 and found['n'] == {'train': 1000, 'validation': 198, 'test': 298}
  for kind in ('cell', 'hidden'):
    assert 0 <= found[kind]['unit']['unit'] < 16
    assert found[kind]['data_efficiency']['sizes'] == [10, 20, 50, 100, 200, 1000]
  assert (
    len(found['tfidf']['data_efficiency']) == 6 and len(found['permutation']['accuracies']) == 3
  )
  assert 'random' in found and 0 <= found['random']['cell']['unit']['test_accuracy'] <= 1
  capsys.readouterr()

  png = tmp_path / 'text.png'
  assert jdl_main(['sentiment', '--workdir', str(workdir), 'good film', '--png', str(png)]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0].startswith(f'# unit {found["cell"]["unit"]["unit"]} ')
  assert len([line for line in out if line[:5].strip().isdigit()]) == len('good film')
  assert png.read_bytes()[:4] == b'\x89PNG'

  assert (
    jdl_main(['sentiment', 'steer', '--workdir', str(workdir), '--n', '1', '--length', '8']) == 0
  )
  steered = capsys.readouterr().out
  assert '--- positive' in steered and '--- negative' in steered and "'this movie is " in steered

  drawn = figures.render(tmp_path / 'figures', w128=workdir)
  assert [p.name for p in drawn] == [
    'sentiment_histogram.png',
    'sentiment_data_efficiency.png',
    'sentiment_width.png',
  ]


def test_bad_input_gets_a_clear_message_and_exit_2(smoke_run, tmp_path, capsys):
  workdir, _ = smoke_run
  cases = [
    (['sentiment', '--workdir', str(workdir), '  '], 'the text is empty'),
    (['sentiment', '--workdir', str(workdir), 'caf\udcff'], 'not valid UTF-8'),
    (['sentiment', '--workdir', str(tmp_path / 'none'), 'good'], 'is not a run folder'),
    (['sentiment', '--workdir', str(workdir), 'good', '--unit', '99'], 'outside the 16 units'),
  ]
  bad = tmp_path / 'bad.txt'
  bad.write_bytes(b'good \xff film')
  cases.append((['sentiment', '--workdir', str(workdir), '--file', str(bad)], 'not valid UTF-8'))
  for argv, message in cases:
    assert jdl_main(argv) == 2, argv
    assert message in capsys.readouterr().err, argv


def test_a_workdir_of_another_model_is_refused(tmp_path, capsys):
  other = config_lib.load(str(ROOT / 'experiments/rnn/char_bible.py:smoke'))
  with other.unlocked():
    other.num_train_steps = 2
    other.steps_per_call = 2
  loop.train_and_evaluate(other, tmp_path)
  assert jdl_main(['sentiment', '--workdir', str(tmp_path), 'good', '--unit', '0']) == 2
  err = capsys.readouterr().err
  assert "rnn_lm/char_rnn on 'text' data" in err and 'not a byte-level' in err


@pytest.mark.integration
def test_tpu_recipe_smoke_on_mock_imdb_under_8_devices(tmp_path):
  import tensorflow_datasets as tfds

  config = config_lib.load(f'{TPU}:smoke')
  full = config_lib.load(TPU)
  assert full.model.hidden_size == 4096 and full.model.cell == 'mlstm_wn'
  with tfds.testing.mock_data(num_examples=32):
    result = loop.train_and_evaluate(config, tmp_path)
  assert result['step'] == 4 and np.isfinite(result['final']['validation_loss'])
  assert len(result['state'].params['embed']['embedding'].sharding.device_set) == 8
