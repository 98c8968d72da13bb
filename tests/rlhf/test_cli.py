"""`jdl rlhf pairs | label | eval` on the tiny smoke runs: pairs that are the sampler's and the
labeller's, a person's answers from scripted input, the evaluation's numbers against direct
computation, and the clear refusals."""

import io
import json
import math
import pathlib

import jax
import numpy as np
import pytest

from jdl.cli import main as jdl
from jdl.data import preferences, review_prompts
from jdl.rlhf import policy
from jdl.rlhf.labeller import Labeller
from tests.rlhf.small_runs import smoke_runs

SIZES = ['--prompt-bytes', '16', '--continuation-bytes', '16']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  return smoke_runs(tmp_path_factory.getbasetemp())


def test_pairs_are_two_sampled_continuations_labelled_bradley_terry(runs, tmp_path):
  sft, lab = runs
  out, held = tmp_path / 'prefs.jsonl', tmp_path / 'held.jsonl'
  code = jdl(
    ['rlhf', 'pairs', '--policy', str(sft), '--labeller', str(lab), '--n', '6', '--per-prompt', '2']
    + ['--heldout-n', '3', '--batch', '8', '--out', str(out), '--heldout-out', str(held), *SIZES]
  )
  assert code == 0
  pairs, heldout = preferences.read(out), preferences.read(held)
  prompts = review_prompts.prompts('train', n=6, length=16)
  assert [p.prompt for p in pairs] == prompts
  assert [p.prompt for p in heldout] == review_prompts.prompts('validation', n=3, length=16)
  # The two continuations are the policy's samples (seed 0, each prompt twice in a row).
  ids = policy.continuations(
    policy.load_policy(sft), [p for p in prompts for _ in (0, 1)], 16, seed=0, batch=8
  )
  texts = policy.decode(ids)
  for i, pair in enumerate(pairs):
    assert {pair.chosen, pair.rejected} == {texts[2 * i], texts[2 * i + 1]}
    assert len(pair.chosen.encode()) == 16 and pair.labeller == 'auto:labeller'
    assert not pair.tie
  # p is the labeller's Bradley-Terry probability that chosen beats rejected.
  lab_t = Labeller.load(lab, temperature=0.25)
  want = lab_t.preference([p.chosen for p in pairs], [p.rejected for p in pairs])
  np.testing.assert_allclose([p.p for p in pairs], want, atol=2e-6)
  # --relabel labels the kept samples again (here at temperature 1) without sampling.
  code = jdl(
    ['rlhf', 'pairs', '--relabel', '--labeller', str(lab), '--labeller-temperature', '1']
    + ['--n', '6', '--heldout-n', '3', '--out', str(out), '--heldout-out', str(held)]
  )
  again = preferences.read(out)
  assert code == 0 and [{p.chosen, p.rejected} for p in again] == [
    {p.chosen, p.rejected} for p in pairs
  ]
  want = Labeller.load(lab).preference([p.chosen for p in again], [p.rejected for p in again])
  np.testing.assert_allclose([p.p for p in again], want, atol=2e-6)


def test_pairs_of_the_best_and_worst_of_four(runs, tmp_path, capsys):
  sft, lab = runs
  out = tmp_path / 'prefs.jsonl'
  args = ['rlhf', 'pairs', '--policy', str(sft), '--labeller', str(lab), '--n', '5']
  args += ['--heldout-n', '0', '--batch', '8', '--out', str(out), *SIZES]
  assert jdl(args + ['--per-prompt', '1']) == 2
  assert '--per-prompt must be at least 2' in capsys.readouterr().err
  assert jdl(args + ['--per-prompt', '4', '--labeller-temperature', '1e-6']) == 0
  prompts = review_prompts.prompts('train', n=5, length=16)
  ids = policy.continuations(
    policy.load_policy(sft), [p for p in prompts for _ in range(4)], 16, seed=0, batch=8
  )
  texts = policy.decode(ids)
  scores = Labeller.load(lab).logits(texts).reshape(5, 4)
  pairs = preferences.read(out)
  # Near temperature 0 the labeller's ranking is the order of its scores.
  assert [(p.chosen, p.rejected) for p in pairs] == [
    (texts[4 * i + s.argmax()], texts[4 * i + s.argmin()]) for i, s in enumerate(scores)
  ]
  # --every-pair: the 6 pairs of each ranking, the higher-ranked chosen, from the kept samples.
  every = tmp_path / 'every.jsonl'
  again = ['--relabel', '--every-pair', '--labeller-temperature', '1e-6', '--out', str(every)]
  assert jdl(args + again) == 2  # every.jsonl.samples.json: never sampled
  assert 'no samples in' in capsys.readouterr().err
  assert jdl(args + again + ['--samples', f'{out}.samples.json']) == 0
  pairs = preferences.read(every)
  want = []
  for i, s in enumerate(scores):
    ranked = [texts[4 * i + j] for j in np.argsort(-s)]
    want += [(ranked[a], ranked[b]) for a in range(4) for b in range(a + 1, 4)]
  assert [(p.chosen, p.rejected) for p in pairs] == want
  assert [p.prompt for p in pairs] == [p for p in prompts for _ in range(6)]


def test_a_person_labels_from_scripted_input(runs, tmp_path, monkeypatch, capsys):
  sft, _ = runs
  args = ['rlhf', 'label', '--workdir', str(tmp_path), '--policy', str(sft), '--n', '5', *SIZES]
  monkeypatch.setattr('sys.stdin', io.StringIO('1\n2\nmaybe\ntie\nskip\nq\n'))
  assert jdl(args) == 0
  shown = capsys.readouterr().out
  assert "'maybe'? type 1, 2, tie, skip or q" in shown
  assert 'recorded 2 preferences and 1 ties (1 skipped)' in shown
  pairs = preferences.read(tmp_path / 'prefs_human.jsonl')
  prompts = review_prompts.prompts('train', n=5, length=16)
  ids = policy.continuations(
    policy.load_policy(sft), [p for p in prompts for _ in (0, 1)], 16, seed=0
  )
  texts = policy.decode(ids)
  assert [(p.prompt, p.chosen, p.rejected, p.tie) for p in pairs] == [
    (prompts[0], texts[0], texts[1], False),
    (prompts[1], texts[3], texts[2], False),
    (prompts[2], texts[4], texts[5], True),
  ]
  assert {p.labeller for p in pairs} == {'human'} and {p.p for p in pairs} == {None}
  # Again: the labelled prompts are not shown; the skipped one is; end of input stops.
  monkeypatch.setattr('sys.stdin', io.StringIO('2\n'))
  assert jdl(args) == 0
  again = preferences.read(tmp_path / 'prefs_human.jsonl')
  assert len(again) == 4 and again[3].prompt == prompts[3]


def test_eval_of_the_sft_run_against_itself(runs, tmp_path, capsys):
  sft, lab = runs
  args = ['rlhf', 'eval', '--workdir', str(sft), '--sft', str(sft), '--labeller', str(lab)]
  assert jdl([*args, '--n', '40', '--show', '2', '--resamples', '500', *SIZES]) == 0
  result = json.loads((sft / 'eval.json').read_text())
  assert result['prompts'] == 40 and result['kl_nats'] == 0.0
  prompts = review_prompts.prompts('test', n=40, length=16)
  model = policy.load_policy(sft)
  ids = policy.continuations(model, prompts, 16, seed=0)
  p = Labeller.load(lab).p_positive(policy.decode(ids))
  assert result['p_positive'] == pytest.approx(p.mean(), abs=1e-9)
  lo, hi = result['p_positive_ci95']
  assert lo <= p.mean() <= hi
  # Bits per byte from one full forward pass, log-softmax in NumPy.
  tokens = np.concatenate(
    [np.stack([np.frombuffer(x.encode(), np.uint8) for x in prompts]), ids], 1
  )
  logits = np.asarray(model(jax.numpy.asarray(tokens[:, :-1], np.int32)), np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picked = np.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0][:, 15:]
  assert result['bits_per_byte_under_sft'] == pytest.approx(
    -picked.sum(1).mean() / (16 * math.log(2)), rel=1e-4
  )
  assert 'labeller p(positive)' in capsys.readouterr().out
  assert len(result['samples']) == 2


def test_a_prompt_longer_than_the_context_is_refused(runs, tmp_path, capsys):
  sft, lab = runs
  args = ['rlhf', 'eval', '--workdir', str(sft), '--sft', str(sft), '--labeller', str(lab)]
  assert jdl([*args, '--prompt-bytes', '20', '--continuation-bytes', '16']) == 2
  err = capsys.readouterr().err
  assert "exceeds the policy's context of 32 bytes (prompts of at most 16 bytes)" in err
  prompts = tmp_path / 'prompts.txt'
  prompts.write_text('short one\n' + 'x' * 40 + '\n')
  assert jdl([*args, '--prompts', str(prompts), '--continuation-bytes', '8']) == 2
  assert 'prompt 1 has 40 bytes' in capsys.readouterr().err
  assert jdl(['rlhf', 'pairs', '--policy', str(tmp_path), '--n', '2']) == 2
  assert 'not a run folder' in capsys.readouterr().err


def _fake_runs(root):
  """Metrics and evaluations in the shape the RLHF runs write them (the figure reads only
  these files)."""

  def run(name, records, p=None, kl=None):
    d = root / name
    d.mkdir()
    (d / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    if p is not None:
      result = {'p_positive': p, 'p_positive_ci95': [p - 0.02, p + 0.02], 'kl_nats': kl}
      (d / 'eval.json').write_text(json.dumps(result))
    return str(d)

  ppo = [
    {
      'step': s,
      'validation_kl': s / 10,
      'validation_rm_score': s / 5,
      'validation_labeller_p_positive': 0.5 + s / 100,
    }
    for s in (0, 10, 20)
  ]
  rm = [{'step': s, 'accuracy': 0.5 + s / 200} for s in (10, 20)] + [
    {'step': 20, 'validation_accuracy': 0.6}
  ]
  return {
    'sft': run('sft', [{'step': 1}], 0.5, 0.0),
    'rm': run('rm', rm),
    'ppo': run('ppo', ppo, 0.7, 2.0),
    'dpo_b0.1': run('dpo', [{'step': 1}], 0.65, 1.0),
    'dpo_b1': None,
  }


def test_figures_draw_from_metrics_and_evaluations(tmp_path):
  from jdl.rlhf import figures

  runs = _fake_runs(tmp_path)
  files = figures.render(tmp_path, rloo_json=str(tmp_path / 'no_rloo.json'), **runs)
  assert [pathlib.Path(f).name for f in files] == [
    'rlhf_frontier.png',
    'rlhf_rm_accuracy.png',
    'rlhf_overoptimisation.png',
  ]
  assert all(pathlib.Path(f).stat().st_size > 1000 for f in files)
  (pathlib.Path(runs['ppo']) / 'eval.json').unlink()
  with pytest.raises(FileNotFoundError, match=f'jdl rlhf eval --workdir {runs["ppo"]}'):
    figures.render(tmp_path, rloo_json=str(tmp_path / 'no_rloo.json'), **runs)
  with pytest.raises(FileNotFoundError, match='no DPO run'):
    figures.render(tmp_path, rloo_json='', **dict(runs, **{'dpo_b0.1': None}))


def test_figures_name_a_missing_run(tmp_path, capsys):
  runs = _fake_runs(tmp_path)
  args = ['figures', 'rlhf', '--outdir', str(tmp_path / 'out')]
  args += ['--run', f'rlhf_sft={runs["sft"]}', '--run', f'rlhf_rm={runs["rm"]}']
  args += ['--run', f'rlhf_ppo={tmp_path / "none"}']
  assert jdl(args) == 0
  out = capsys.readouterr().out
  assert 'skipped' in out and 'jdl train --config experiments/rlhf/ppo.py' in out


def test_over_optimisation_from_evaluated_checkpoints(tmp_path):
  """A PPO run that logged no labeller score: the figure takes `jdl rlhf eval --step S`."""
  from jdl.rlhf import figures

  runs = _fake_runs(tmp_path)
  ppo = pathlib.Path(runs['ppo'])
  records = [{'step': s, 'rm_score': s / 5, 'kl': s / 10} for s in (0, 10, 20)]
  (ppo / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
  with pytest.raises(FileNotFoundError, match='--step S'):
    figures.render(tmp_path, rloo_json=str(tmp_path / 'no_rloo.json'), **runs)
  for step, p in ((10, 0.6), (20, 0.7)):
    result = {'step': step, 'p_positive': p, 'p_positive_ci95': [p, p], 'kl_nats': step / 8}
    (ppo / f'eval_step{step}.json').write_text(json.dumps(result))
  assert figures._ppo_curve(ppo, 'validation_') == ([10, 20], [1.25, 2.5], [2.0, 4.0], [0.6, 0.7])
  assert len(figures.render(tmp_path, rloo_json=str(tmp_path / 'no_rloo.json'), **runs)) == 3


def test_rloo_against_trl_figure_from_its_json(tmp_path, capsys):
  from jdl.rlhf import figures

  assert figures.rloo_trl(tmp_path, str(tmp_path / 'missing.json')) == []
  assert 'python -m jdl.rlhf.peer_trl rloo' in capsys.readouterr().out
  curve = lambda *m: {'mean': list(m), 'std': [0.1] * len(m)}
  side = {'kl': curve(0, 1, 2), 'rm_score': curve(0, 0.1, 0.2), 'reward': curve(0, 0.05, 0.1)}
  result = {
    'rollouts': [32, 64, 96],
    'jdl': side,
    'trl': side,
    'seeds': [0, 1],
    'trl_version': '1.16.0',
    'pinned': {'beta': 0.05, 'prompts': 8, 'k': 4, 'learning_rate': 2e-4},
  }
  path = tmp_path / 'rloo.json'
  path.write_text(json.dumps(result))
  (png,) = figures.rloo_trl(tmp_path, str(path))
  assert pathlib.Path(png).name == 'rlhf_rloo_trl.png' and pathlib.Path(png).stat().st_size > 0
