"""The IOI prompt distribution: single-token words, balanced orders and templates, held-out
names and templates, the ABC corruption."""

import numpy as np
import pytest

from jdl.data import ioi, tokenizers

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest


@pytest.fixture(scope='module')
def tok():
  # `make test` installs the data first: missing BPE files fail with the command, never skip
  assert tokenizers.gpt2_files_present(), f'data missing; install with: {tokenizers.INSTALL_GPT2}'
  return tokenizers.gpt2()


def test_only_single_token_names_are_kept_and_others_refused_by_name(tok):
  vocab = ioi.Vocabulary.single(tok)
  for dropped in ('Bartholomew', 'Marguerite', 'Sofia'):
    assert len(tok.encode(' ' + dropped)) > 1 and dropped not in vocab.names
  assert {'Mary', 'John', 'Christopher'} <= set(vocab.names) and len(vocab.names) > 60
  assert all(len(tok.encode(' ' + w)) == 1 for w in vocab.names + vocab.places + vocab.objects)
  bad = ioi.Vocabulary(names=('Mary', 'John', 'Bartholomew'))
  with pytest.raises(ValueError, match=r"name 'Bartholomew' is not a single token under gpt2"):
    ioi.prompts(tok, 4, vocab=bad)


def test_orders_and_templates_are_balanced_and_the_answer_is_the_other_name(tok):
  vocab = ioi.Vocabulary.single(tok)
  p = ioi.prompts(tok, 60, seed=3, vocab=vocab)
  n_t = len(vocab.templates)
  assert np.bincount(p.template, minlength=n_t).tolist() == [60 // n_t] * n_t
  for t in range(n_t):
    orders = p.order[p.template == t]
    assert (orders == ioi.ABBA).sum() == (orders == ioi.BABA).sum()
  rows = np.arange(60)
  assert (p.tokens[rows, p.io_pos] == p.io).all() and (p.io != p.s).all()
  assert (p.tokens[rows, p.s1_pos] == p.s).all() and (p.tokens[rows, p.s2_pos] == p.s).all()
  abba = p.order == ioi.ABBA
  assert (p.io_pos[abba] < p.s1_pos[abba]).all() and (p.io_pos[~abba] > p.s1_pos[~abba]).all()
  assert (p.s2_pos > np.maximum(p.io_pos, p.s1_pos)).all()
  assert (p.tokens[rows, p.end] == tok.encode(' to')[0]).all()
  for i in (0, 1, 17):
    x, y, s = p.names[i]
    assert p.texts[i].endswith(' to') and tok.decode(p.tokens[i, : p.end[i] + 1]) == p.texts[i]
    assert tok.decode([p.io[i]]) == ' ' + ({x, y} - {s}).pop()
  # padding after each prompt's end; every prompt of a template has one length
  for t in range(n_t):
    assert len(set(p.end[p.template == t])) == 1
  assert all((p.tokens[i, p.end[i] + 1 :] == tok.eot).all() for i in range(60))


def test_held_out_names_and_templates_are_disjoint(tok):
  vocab = ioi.Vocabulary.single(tok)
  train, test = ioi.held_out(vocab, eval_names=0.25, eval_templates=3, seed=0)
  assert not set(train.names) & set(test.names)
  assert set(train.names) | set(test.names) == set(vocab.names)
  assert not set(train.templates) & set(test.templates) and len(test.templates) == 3
  assert set(train.templates) | set(test.templates) == set(vocab.templates)
  p = ioi.prompts(tok, 12, vocab=test)
  assert {n for names in p.names for n in names} <= set(test.names)
  assert {p.vocab.templates[t] for t in p.template} <= set(test.templates)


def test_abc_keeps_templates_and_words_and_changes_every_name(tok):
  clean = ioi.prompts(tok, 30, seed=1)
  bad = ioi.corrupted(tok, clean, seed=2)
  assert (bad.template == clean.template).all() and (bad.order == clean.order).all()
  assert bad.place == clean.place and bad.object == clean.object
  assert (bad.slots == clean.slots).all() and (bad.end == clean.end).all()
  assert (bad.io == clean.io).all() and (bad.s == clean.s).all()  # the clean answer is measured
  assert bad.tokens.shape == clean.tokens.shape
  for i in range(30):
    a, b, c = bad.names[i]
    assert len({a, b, c}) == 3 and not {a, b, c} & set(clean.names[i])
    differ = np.flatnonzero(bad.tokens[i] != clean.tokens[i])
    assert differ.tolist() == sorted(clean.slots[i].tolist())  # only the name slots change
