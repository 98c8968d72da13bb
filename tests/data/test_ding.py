"""The Ding dictionary and its derived caches (the split and the subword tokenizer): a cut or
garbage file is named with the command that reinstalls or rebuilds it."""

import json

import pytest

from jdl.data import ding
from tests.data import expect

REINSTALL = 'apt-get install --reinstall -y trans-de-en'
LINE = 'Das ist Satz {i}. | Er kommt heute. :: This is sentence {i}. | He comes today.\n'


def dictionary(n: int) -> str:
  return '# Version :: 1.9\n' + ''.join(LINE.format(i=i) for i in range(n))


def test_dictionary_cut_mid_line(tmp_path):
  path = tmp_path / 'de-en'
  path.write_text(dictionary(ding.MIN_PAIRS)[:-9])
  expect(lambda: ding.read_pairs(path), path, 'has no newline (a cut file)', REINSTALL)


def test_dictionary_cut_at_a_line_end(tmp_path):
  path = tmp_path / 'de-en'
  path.write_text(dictionary(3000))
  expect(lambda: ding.read_pairs(path), path, '3001 sentence pairs, fewer than 15,000', REINSTALL)


def test_dictionary_of_garbage(tmp_path):
  path = tmp_path / 'de-en'
  path.write_bytes(b'\x1f\x8b\x08\x00' + bytes(range(256)))
  expect(lambda: ding.read_pairs(path), path, 'not readable as UTF-8 text', REINSTALL)


def test_whole_dictionary_is_read(tmp_path):
  path = tmp_path / 'de-en'
  path.write_text(dictionary(ding.MIN_PAIRS))
  pairs = ding.read_pairs(path)
  assert len(pairs) == ding.MIN_PAIRS + 1  # every 'Satz i' and the one shared 'Er kommt heute.'
  assert pairs[:2] == [
    ('Das ist Satz 0.', 'This is sentence 0.'),
    ('Er kommt heute.', 'He comes today.'),
  ]


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setattr(ding, 'CACHE', tmp_path)
  return tmp_path / 'translation'


GOOD_SPLIT = {
  'train': [['Ja.', 'Yes.']],
  'validation': [['Nein.', 'No.']],
  'test': [['Oh.', 'Oh.']],
}
BAD_SPLITS = {
  'cut JSON': (json.dumps(GOOD_SPLIT)[:-10], 'not a readable JSON split'),
  'no test split': (
    json.dumps({k: v for k, v in GOOD_SPLIT.items() if k != 'test'}),
    "holds ['train', 'validation'], not the splits ['train', 'validation', 'test']",
  ),
  'empty validation': (json.dumps({**GOOD_SPLIT, 'validation': []}), "'validation' is empty"),
  'a pair of three': (
    json.dumps({**GOOD_SPLIT, 'train': [['Ja.', 'Yes.', 'Oui.']]}),
    "split 'train' holds ['Ja.', 'Yes.', 'Oui.'], not a sentence pair",
  ),
}


@pytest.mark.parametrize('damage', BAD_SPLITS)
def test_damaged_split_cache(cache, damage):
  content, problem = BAD_SPLITS[damage]
  path = cache / f'ding_de_en.split{ding.SPLIT_VERSION}.seed0.json'
  cache.mkdir()
  path.write_text(content)
  # __wrapped__: the function itself, past the memo of this process's earlier calls
  expect(lambda: ding.splits.__wrapped__(0), path, problem, f'rm {path}')


def test_good_split_cache_is_read(cache):
  cache.mkdir()
  (cache / f'ding_de_en.split{ding.SPLIT_VERSION}.seed0.json').write_text(json.dumps(GOOD_SPLIT))
  assert ding.splits.__wrapped__(0)['test'] == [('Oh.', 'Oh.')]


def test_garbage_tokenizer_cache(cache):
  cache.mkdir()
  path = cache / f'ding_de_en.split{ding.SPLIT_VERSION}.seed0.bpe1000.json'
  path.write_text('{"version": "1.0", "model": ')
  expect(lambda: ding.tokenizer.__wrapped__(1000, 0), path, 'not a readable tokenizer', 'rm')


def test_tokenizer_cache_larger_than_its_name_says(cache):
  cache.mkdir()
  path = cache / f'ding_de_en.split{ding.SPLIT_VERSION}.seed0.bpe20.json'
  sentences = ['Der Hund schläft im Garten.', 'The dog sleeps in the garden.'] * 5
  ding.SubwordTokenizer.train(sentences, vocab_size=60).save(path)
  expect(lambda: ding.tokenizer.__wrapped__(20, 0), path, 'not at most 20', f'rm {path}')
