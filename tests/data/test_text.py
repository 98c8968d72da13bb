"""The King James Bible's text and the cached token arrays: a cut text, or a float, cut or
out-of-range token cache, is caught and named instead of training on garbage."""

import numpy as np
import pytest

from jdl.data import text
from tests.data import expect

GPT2_CACHE = 'tokens/kjv.train.gpt2.v100x20.npy'


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setattr(text, 'CACHE', tmp_path)
  return tmp_path


def verses(n: int, book: str = 'Genesis') -> str:
  return ''.join(f'{book} 1:{i + 1}: And it was so, verse {i}.\n' for i in range(n))


def test_cut_bible_names_the_cache_and_how_to_rebuild_it(cache):
  path = cache / 'kjv.txt'
  path.write_text(verses(12_000) + 'Exodus 2:3: And when she could not lon')
  expect(
    text.kjv_verses,
    path,
    "12001 verses ending in 'Exodus', not the KJV's 31,102 ending in 'Revelation of John'",
    f'rm {path}',
  )


def test_bible_of_the_right_length_that_ends_elsewhere_is_caught(cache):
  path = cache / 'kjv.txt'
  path.write_text(verses(text.KJV_VERSES))
  expect(lambda: text.corpus_texts('kjv'), path, "ending in 'Genesis'", 'diatheke')


def test_garbage_bible_names_the_cache(cache):
  path = cache / 'kjv.txt'
  path.write_bytes(b'\x89PNG\r\n\x1a\n\xff\xfe')
  expect(text.kjv_verses, path, 'not readable as UTF-8 text', f'rm {path}')


def test_no_text_and_no_sword_module_names_the_install_command(cache, monkeypatch):
  monkeypatch.setattr(text, '_sword_module', lambda: None)
  expect(text.kjv_verses, cache / 'kjv.txt', 'not installed', text.INSTALL_KJV)


def save(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  np.save(path, array)


def cut_npy(path):
  save(path, np.arange(1000, dtype=np.int32))
  path.write_bytes(path.read_bytes()[:-100])


BAD_CACHES = {
  'float': (
    lambda p: save(p, np.linspace(0, 1, 50, dtype=np.float32)),
    'holds float32 (50,), not a 1-D integer array',
  ),
  'two-dimensional': (lambda p: save(p, np.zeros((4, 5), np.int32)), 'not a 1-D integer array'),
  'empty': (lambda p: save(p, np.zeros(0, np.int32)), 'holds no tokens'),
  'id past the vocabulary': (
    lambda p: save(p, np.array([5, 50257, 7], np.int32)),
    'token ids 5..50257 outside the vocabulary 0..50256',
  ),
  'negative id': (lambda p: save(p, np.array([-1, 3], np.int64)), 'token ids -1..3 outside'),
  'cut': (cut_npy, 'not a readable .npy token array'),
  'not npy': (lambda p: p.write_bytes(b'garbage, not an array'), 'not a readable .npy'),
}


@pytest.mark.parametrize('damage', BAD_CACHES)
def test_bad_token_cache_names_itself_and_how_to_rebuild_it(cache, damage):
  write, problem = BAD_CACHES[damage]
  path = cache / GPT2_CACHE
  path.parent.mkdir()
  write(path)
  expect(lambda: text.encoded('kjv', 'train', 'gpt2'), path, problem, f'rm {path}')


def test_float_token_cache_stops_the_loader(cache):
  """The loader the language-model tasks call: a float cache used to become all-zero rows."""
  path = cache / GPT2_CACHE
  save(path, np.full(100, 0.5, np.float64))
  expect(lambda: text.load({'kjv': 1.0}, 'gpt2', 8, 4), path, 'float64', 'next run tokenizes')


def test_good_token_cache_is_read_as_int32(cache):
  path = cache / GPT2_CACHE
  save(path, np.array([0, 50256, 17], np.uint16))
  ids = text.encoded('kjv', 'train', 'gpt2')
  assert ids.dtype == np.int32 and ids.tolist() == [0, 50256, 17]
