"""gensim 4.4 on the same token stream as jdl: Word2Vec (sg=1 or CBOW, negative sampling) and
FastText with the settings of a jdl embeddings config, and the benchmark's peer process.

The sentences are the jdl corpus's (jdl.data.words: after phrases and the min_count cut, so
gensim's own min_count keeps the same vocabulary); the vectors come back in jdl's vocabulary
order, so that one evaluator with one `restrict_vocab` sees the same words for both.

  python -m jdl.embeddings.peer_gensim CONFIG [SLICE_WORDS]   (the benchmark's peer: see
  jdl.bench.common.Peer; a step trains on the next slice of about SLICE_WORDS corpus words)
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from jdl.embeddings.evaluate import WordVectors


def gensim_kwargs(config, seed: int, workers: int = 2) -> dict:
  """The gensim arguments of a jdl embeddings config (skip-gram, CBOW or fastText)."""
  d, m = config.data.kwargs, config.model
  kwargs = dict(
    vector_size=m.dim,
    window=d.window,
    min_count=d.min_count,
    sample=d.sample,
    negative=d.negatives,
    hs=0,
    sg=0 if m.name == 'cbow' else 1,
    alpha=config.optimizer.learning_rate,
    min_alpha=1e-4 * config.optimizer.learning_rate,
    ns_exponent=0.75,
    seed=seed,
    workers=workers,
    epochs=config.num_epochs,
  )
  if m.name == 'cbow':
    kwargs['cbow_mean'] = 1
  if m.name == 'fasttext':
    kwargs.update(min_n=m.minn, max_n=m.maxn, bucket=m.buckets)
  return kwargs


def train(config, seed: int, sentences=None, words=None, workers: int = 2) -> tuple:
  """(WordVectors in jdl's vocabulary order, seconds) of gensim trained as `config` says."""
  from gensim.models import FastText, Word2Vec

  from jdl.tasks.embeddings import Task

  task = Task(config)
  if sentences is None:
    sentences = task.corpus().sentences()
  words = words or task.vocabulary()
  kwargs = gensim_kwargs(config, seed, workers)
  cls = FastText if config.model.name == 'fasttext' else Word2Vec
  start = time.perf_counter()
  model = cls(sentences, **kwargs)
  seconds = time.perf_counter() - start
  kv = model.wv
  missing = [w for w in words if w not in kv.key_to_index]
  if missing:
    raise RuntimeError(f'gensim lacks {len(missing)} of jdl vocabulary words: {missing[:5]}')
  vectors = np.stack([kv[w] for w in words]).astype(np.float32)
  oov = (lambda w: kv[w]) if config.model.name == 'fasttext' else None
  return WordVectors(list(words), vectors, oov, name=f'gensim {config.model.name}'), seconds


def serve(config_spec: str, slice_words: int) -> None:
  """The benchmark's peer: gensim Word2Vec trained on consecutive slices of the corpus, one
  slice a step, the learning rate decaying over the whole stream as in one epoch."""
  import gensim
  from gensim.models import Word2Vec

  from jdl import config as config_lib
  from jdl.bench import common
  from jdl.tasks.embeddings import Task

  config = config_lib.load(config_spec)
  task = Task(config)
  sentences = task.corpus().sentences()
  kwargs = gensim_kwargs(config, seed=0)
  kwargs.pop('epochs')
  model = Word2Vec(**kwargs)
  model.build_vocab(sentences)
  slices, current, count = [], [], 0
  for s in sentences:
    current.append(s)
    count += len(s)
    if count >= slice_words:
      slices.append((current, count))
      current, count = [], 0
  position = {'i': 0}
  print(
    json.dumps(
      {
        'gensim': gensim.__version__,
        'workers': kwargs['workers'],
        'slice_words': slice_words,
        'fast_version': gensim.models.word2vec_inner.FAST_VERSION,
      }
    ),
    flush=True,
  )

  def step(_):
    part, n = slices[position['i'] % len(slices)]
    progress = position['i'] / len(slices)
    alpha = kwargs['alpha'] * (1 - progress) + kwargs['min_alpha'] * progress
    model.train(part, total_words=n, epochs=1, start_alpha=alpha, end_alpha=alpha)
    position['i'] += 1
    return float(n)  # the words of the step (the harness records it as the "loss")

  common.serve(step)


if __name__ == '__main__':
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000)
