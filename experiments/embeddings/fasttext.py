"""fastText (Bojanowski et al. 2017): skip-gram with negative sampling whose input vector is
the mean of the word's vector and its character n-gram vectors (n = 3..6 of `<word>`, hashed
with fastText's 32-bit FNV-1a into 200,000 buckets), on GCIDE + WordNet glosses.

The sampling and schedule are word2vec's (experiments/embeddings/word2vec.py): dimension 100,
window 5, 5 negatives, sample 1e-3, min_count 5, 5 epochs, learning rate 0.025 (gensim's
FastText default; fastText's own is 0.05). Buckets: 200,000 for jdl and gensim alike (the
default 2,000,000 would hold 800 MB of mostly unused rows for a 46,000-word vocabulary).

Launch:
  jdl train --config experiments/embeddings/fasttext.py --workdir runs/fasttext
  jdl embed neighbors --workdir runs/fasttext kingliness     (a word outside the vocabulary)

`:smoke` is the test. Expected (2 shared CPU cores): see docs/embeddings.md.
"""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
  'jdl_config_word2vec', pathlib.Path(__file__).with_name('word2vec.py')
)
word2vec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(word2vec)


def get_config(arg: str | None = None):
  c = word2vec.word2vec_config('fasttext')
  c.model.update(buckets=200_000, minn=3, maxn=6)
  if arg == 'smoke':
    word2vec.smoke(c)
    c.model.buckets = 1024
  elif arg is not None:
    raise ValueError(f'fasttext: unknown variant {arg!r} (smoke)')
  return c
