"""word2vec's sampling (subsampling, negatives, windows), phrases and GloVe's counts against
small cases computed by hand."""

import math

import numpy as np
import pytest

from jdl.data import words


def corpus_of(*sentences):
  return words.from_sentences([s.split() for s in sentences])


def test_tokenize_lowercases_and_splits_letters_from_digits_and_punctuation():
  assert words.tokenize("The King's 2nd crown, Café!") == [
    'the',
    'king',
    's',
    '2',
    'nd',
    'crown',
    'café',
  ]


def test_gcide_markup_is_stripped():
  entry = 'Absolute \\Ab"so*lute\\, n. [F. absolu.]\n   {Absolute zero}, caf[\'e] [1913 Webster]'
  assert words.tokenize(words.clean_gcide(entry)) == ['absolute', 'n', 'absolute', 'zero', 'cafe']


def test_vocabulary_by_count_then_alphabet_and_min_count_cut():
  c = corpus_of('b a c a', 'c a d', 'd')
  assert c.words == ['a', 'c', 'd', 'b'] and list(c.counts) == [3, 2, 2, 1]
  r = words.restrict(c, 2)
  assert r.words == ['a', 'c', 'd']
  assert [' '.join(s) for s in r.sentences()] == ['a c a', 'c a d', 'd']


def test_keep_probability_is_the_c_codes_formula():
  # counts 100, 10, 1 (total 111), sample 0.01: s*T = 1.11
  got = words.keep_probability(np.array([100, 10, 1]), 0.01)
  expected = [
    (math.sqrt(100 / 1.11) + 1) * 1.11 / 100,  # 0.11646
    (math.sqrt(10 / 1.11) + 1) * 1.11 / 10,  # 0.44417
    1.0,  # (sqrt(1/1.11) + 1) * 1.11 = 2.16 > 1: always kept
  ]
  np.testing.assert_allclose(got, expected, rtol=1e-12)
  assert got[0] == pytest.approx(0.116457, abs=1e-6)
  np.testing.assert_array_equal(words.keep_probability(np.array([5, 1]), 0), [1, 1])


def test_negatives_follow_unigram_to_the_three_quarters():
  # counts 16 and 1: 16^0.75 = 8, so P = (8/9, 1/9)
  c = words.Corpus(['a', 'b'], np.array([16, 1]), np.zeros(17, np.int32), np.array([0, 17]))
  np.testing.assert_allclose(words.noise_distribution(c.counts), [8 / 9, 1 / 9])
  source = words.CentreSource(c, 1, 0.0, 5, 4, 4)
  draws = source.draw_negatives(np.random.default_rng(0), 90_000)
  share = np.bincount(draws, minlength=2) / len(draws)
  assert abs(share[1] - 1 / 9) < 0.004  # 4 standard deviations (0.001)


def test_window_is_uniform_in_1_to_w_and_stays_in_its_sentence():
  c = corpus_of('a b c d e f g', 'h i j')
  ids = c.index
  source = words.CentreSource(c, 2, 0.0, 1, 1, 1)
  rng = np.random.default_rng(0)
  sizes = {}
  for _ in range(400):
    _, context, valid = source.centres_of(np.array([3, 7]), rng)  # centres d and h
    d = {c.words[i] for i, v in zip(context[0], valid[0]) if v}
    assert d in ({'c', 'e'}, {'b', 'c', 'e', 'f'})  # b = 1 or 2
    sizes[len(d)] = sizes.get(len(d), 0) + 1
    h = {c.words[i] for i, v in zip(context[1], valid[1]) if v}
    assert h <= {'i', 'j'} and 'i' in h  # never g, of the sentence before
  assert abs(sizes[2] / 400 - 0.5) < 0.1
  assert ids['d'] == c.tokens[3]


def test_discarded_words_take_no_window_slot():
  c = corpus_of('a x b c d')
  source = words.CentreSource(c, 2, 0.0, 1, 1, 1)
  source.keep[c.index['x']] = 0.0  # x is always subsampled away
  rng = np.random.default_rng(1)
  seen = set()
  for _ in range(50):
    positions, context, valid = source.centres_of(np.array([0]), rng)  # centre a
    seen.add(tuple(sorted(c.words[i] for i, v in zip(context[0], valid[0]) if v)))
  # b = 1: the first kept word to the right is b; b = 2: b and c (x skipped, not counted)
  assert seen == {('b',), ('b', 'c')}


def test_batches_pack_centres_and_count_what_does_not_fit():
  c = corpus_of('a b c d e f g h')
  source = words.CentreSource(c, 1, 0.0, 2, 4, 3)  # rows of 4 positions, 3 centres a row
  batch = source.batch(np.array([0, 1]), np.random.default_rng(0))
  assert batch['target'].shape == (2, 3) and batch['context'].shape == (2, 3, 2)
  assert batch['negatives'].shape == (2, 3, 2)
  assert batch['lost'][0] == 2  # 8 centres kept, 6 slots
  targets = [c.words[t] for t in batch['target'].reshape(-1)]
  assert targets == list('abcdef')


def test_phrase_score_and_merge():
  c = corpus_of('new york is big', 'new york', 'new car')
  scores = words.phrase_scores(c, delta=1)
  ids = c.index
  # (count(new york) - delta) / (count(new) count(york)) * total tokens = (2 - 1) / (3 * 2) * 8
  assert scores[(ids['new'], ids['york'])] == pytest.approx(8 / 6)
  assert (ids['new'], ids['car']) not in scores  # seen once: not more than delta
  merged, table = words.merge_phrases(c, threshold=1.0, delta=1)
  assert [' '.join(s) for s in merged.sentences()] == ['new_york is big', 'new_york', 'new car']
  assert table == [('new_york', pytest.approx(8 / 6), 2)]


def test_phrases_grow_over_passes_with_a_decreasing_threshold():
  c = corpus_of(*['new york times today'] * 6, 'new day', 'york city', 'times square')
  merged, found = words.phrases(c, passes=2, threshold=1.0, delta=0)
  assert 'new_york_times' in merged.words or 'new_york_times_today' in merged.words
  assert {p for p, _, _ in found} >= {'new_york'}


def test_cooccurrence_weights_by_inverse_distance_symmetrically():
  c = corpus_of('a b a c', 'c b')
  ids = c.index
  rows, cols, x = words.cooccurrence(c, window=2)
  X = np.zeros((3, 3))
  X[rows, cols] = x
  a, b, cc = ids['a'], ids['b'], ids['c']
  # sentence 1, distance 1: (a,b) (b,a) (a,c); distance 2: (a,a) (b,c); sentence 2: (c,b)
  assert X[a, b] == X[b, a] == 2.0
  assert X[a, a] == 1.0  # 1/2 each way
  assert X[a, cc] == X[cc, a] == 1.0
  assert X[b, cc] == X[cc, b] == 1.5  # 1/2 in sentence 1, 1 in sentence 2
  assert X[b, b] == X[cc, cc] == 0.0


def test_a_missing_corpus_names_the_apt_command(tmp_path, monkeypatch):
  from jdl.data.errors import DataError

  monkeypatch.setattr(words, 'CACHE', tmp_path)
  monkeypatch.setattr(words, 'GCIDE', tmp_path / 'gcide.dict.dz')
  with pytest.raises(DataError, match='apt-get install -y dict-gcide wordnet-base'):
    words.full_corpus(('gcide',))
  monkeypatch.setattr(words, 'WORDNET', tmp_path)
  with pytest.raises(DataError, match='WordNet is missing.*apt-get install -y dict-gcide'):
    words.full_corpus(('wordnet',))
  assert not words.present()
