"""The class descriptions: garment senses only, counted per class; held-out classes absent from
the tokenizer's text and from every training batch."""

import numpy as np

from jdl.data import descriptions, words
from tests.multimodal import CONFIG

HELD_OUT = (1, 7)  # Trouser, Sneaker: the config's


def test_every_class_has_descriptions_and_only_garment_senses():
  classes = descriptions.load()
  counts = descriptions.counts(classes)
  assert len(counts) == 10 and all(c['total'] >= 3 for c in counts)
  texts = [d['text'] for found in classes for d in found]
  # The 1913 Webster's sneaker "one who sneaks", WordNet's sneaker the informer, the coat of an
  # animal and the boot of torture are other senses of the class words.
  for wrong in ('One who sneaks', 'informer', 'growth of hair', 'external covering', 'torture'):
    assert not any(wrong in t for t in texts), wrong
  sneaker = [d['text'] for d in classes[7]]
  assert 'gym shoe, sneaker, tennis shoe: a canvas shoe with a pliable rubber sole' in sneaker
  assert any(d['source'].startswith('gcide') for d in classes[7])  # the 1913 supplement's sense


def test_gcide_senses_split_numbered_senses_and_drop_quotations():
  entry = (
    'Sneaker \\Sneak"er\\, n.\n   1. One who sneaks. --Lamb.\n      [1913 Webster]\n\n'
    '            A sneaker of five gallons.            --Spectator.\n      [1913 Webster]\n\n'
    '   3. A type of soft shoe with a flat sole, used in sports.\n      [Webster 1913 Suppl.]\n'
  )
  senses = descriptions.gcide_senses(entry)
  assert senses == [
    ('One who sneaks.', '1913 Webster'),
    ('A type of soft shoe with a flat sole, used in sports.', 'Webster 1913 Suppl.'),
  ]
  keep = [t for t, _ in senses if descriptions._is_garment_sense(t, ('sneaker',))]
  assert keep == ['A type of soft shoe with a flat sole, used in sports.']
  assert descriptions.gcide_senses('Sneak \\Sneak\\, v. i.\n   To creep.\n') == []  # a verb


def test_the_tokenizer_text_leaves_out_every_mention_of_a_held_out_class(monkeypatch):
  classes = descriptions.load()
  dictionary = [
    'A canvas shoe with a rubber sole.',
    'He wore sneakers to the gym.',  # plural of a held-out word
    'She bought new trousers.',
    'A tennis shoe is light.',  # a two-word name of the held-out class
    'A coat worn in winter.',
  ]
  monkeypatch.setattr(words, 'gcide_sentences', lambda: dictionary[:3])
  monkeypatch.setattr(words, 'wordnet_sentences', lambda: dictionary[3:])
  corpus = descriptions.text_corpus(HELD_OUT, classes)
  assert 'A canvas shoe with a rubber sole.' in corpus and 'A coat worn in winter.' in corpus
  for gone in dictionary[1:4]:
    assert gone not in corpus
  held_texts = {d['text'] for c in HELD_OUT for d in classes[c]}
  assert not held_texts & set(corpus)
  terms = descriptions.held_out_terms(HELD_OUT, classes)
  assert not any(descriptions.mentions(s, terms) for s in corpus)
  assert {'sneaker', 'trouser', 'gym shoe', 'running shoe', 'slacks'} <= terms
  assert 'white' not in terms  # a hyponym's lemma (white flannel trousers): not a class name


def test_held_out_classes_are_absent_from_training_batches():
  from jdl import config as config_lib

  kwargs = config_lib.load(CONFIG).data.kwargs.to_dict()
  assert tuple(kwargs['held_out']) == HELD_OUT
  splits = descriptions.load_pairs(**kwargs)
  source = splits.train
  assert len(source) > 40_000  # the 8 classes' images of the first 55,000
  assert not np.isin(source.labels, HELD_OUT).any()
  assert sorted(source.texts) == [0, 2, 3, 4, 5, 6, 8, 9]
  tok = descriptions.tokenizer(HELD_OUT, kwargs['vocab_size'])
  classes = descriptions.load()
  held_rows = {
    tuple(r)
    for c in HELD_OUT
    for r in descriptions.encode(tok, [d['text'] for d in classes[c]], kwargs['max_len'])
  }
  rng = np.random.default_rng(0)
  order = rng.permutation(len(source))
  for start in range(0, len(source), 4096):  # every training row once, texts drawn as in training
    batch = source.batch(order[start : start + 4096], rng)
    assert not np.isin(batch['label'], HELD_OUT).any()
    assert not {tuple(r) for r in batch['text']} & held_rows
  valid = splits.evals['validation']
  assert not np.isin(valid['label'], HELD_OUT).any() and set(splits.evals) == {'validation'}
