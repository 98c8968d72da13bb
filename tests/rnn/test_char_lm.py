"""The character-level recurrent language model: carried state, generation, the configs' equal
budgets, a smoke run through the loop and `jdl sample` from its run folder."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.models import sampling
from jdl.models.rnn import RNN, CharRNN
from jdl.tasks import rnn_lm
from jdl.train import loop
from tests.conftest import run_jdl

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'experiments/rnn/char_bible.py')


@pytest.mark.parametrize('cell', ['lstm', 'elman', 'jordan'])
def test_continuing_from_carries_equals_one_pass(cell):
  rnn = RNN(cell, 5, 8, num_layers=2, rngs=nnx.Rngs(0))
  x_BxTxF = jax.random.normal(jax.random.key(1), (3, 10, 5))
  whole_BxTxD, _, finals = rnn.run(x_BxTxF)
  first, _, carries = rnn.run(x_BxTxF[:, :6])
  second, _, carries = rnn.run(x_BxTxF[:, 6:], carries=carries)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole_BxTxD, atol=1e-6)
  for a, b in zip(jax.tree.leaves(carries), jax.tree.leaves(finals)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bidirectional_refuses_a_carry():
  rnn = RNN('lstm', 2, 4, bidirectional=True, rngs=nnx.Rngs(0))
  x = jnp.ones((1, 3, 2))
  with pytest.raises(ValueError, match='bidirectional'):
    rnn.run(x, carries=rnn.initial_carries(1))


@pytest.mark.parametrize('cell', ['lstm', 'jordan'])
def test_greedy_generation_with_carried_state_equals_recomputation(cell):
  model = CharRNN(cell, 11, 6, 16, num_layers=2, rngs=nnx.Rngs(2))
  prompt = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
  out = np.asarray(
    sampling.generate(
      model,
      prompt,
      12,
      temperature=0.0,
      prefill=sampling.recurrent_prefill,
      step=sampling.recurrent_step,
    )
  )
  tokens = prompt
  for _ in range(12):  # the reference: read the whole text again for every new character
    logits, _ = model(jnp.asarray(tokens))
    tokens = np.concatenate([tokens, np.asarray(logits[:, -1].argmax(-1))[:, None]], 1)
  np.testing.assert_array_equal(out, tokens)


def test_cells_have_an_equal_parameter_budget():
  counts = {}
  for cell in ('lstm', 'elman', 'jordan'):
    task = rnn_lm.Task(config_lib.load(f'{CONFIG}:{cell}'))
    params = jax.eval_shape(lambda: nnx.state(task.build_model(nnx.Rngs(0)), nnx.Param))
    counts[cell] = sum(x.size for x in jax.tree.leaves(params))
  assert counts['lstm'] == 93_702, counts  # the config's docstring derives these counts
  assert max(counts.values()) / min(counts.values()) < 1.01, counts


def test_smoke_run_reports_bits_per_char_and_samples(tmp_path):
  config = config_lib.load(f'{CONFIG}:smoke')
  result = loop.train_and_evaluate(config, tmp_path)
  final = result['final']
  assert math.isclose(
    final['validation_bits_per_char'], final['validation_loss'] / math.log(2), rel_tol=1e-5
  )
  losses = [h['loss'] for h in result['history'] if 'loss' in h]
  assert losses[-1] < losses[0]
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['cell'] == 'lstm' and saved['sample'].startswith('And God said')
  assert len(saved['sample']) == len('And God said') + 200

  proc = run_jdl(
    'sample',
    '--workdir',
    tmp_path,
    '--prompt',
    'In the beginning',
    '--max-new-tokens',
    '30',
    '--temperature',
    '0.8',
    check=True,
  )
  text = proc.stdout.rstrip('\n')
  assert text.startswith('In the beginning') and len(text) >= len('In the beginning') + 20
