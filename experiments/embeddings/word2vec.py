"""word2vec: skip-gram with negative sampling on GCIDE + WordNet glosses (jdl.data.words).

The reference C code's settings, as gensim's Word2Vec uses them: dimension 100, window 5
(drawn per centre word from 1..5), 5 negatives from unigram^0.75, subsampling sample=1e-3,
min_count 5, 5 epochs, learning rate 0.025 decaying linearly to 1e-4 of it.

A step reads `batch_size` rows of `chunk` corpus positions (32 x 32 = 1,024 positions, about
760 centre words kept by subsampling, about 3,600 (context, centre) pairs) and updates only
the rows it touched: a pair's update is the C code's per-pair SGD step (learning rate not
scaled), summed over the batch, except that a row more than 64 pairs of one batch update (a
handful of the most frequent words) moves by 64 of their mean steps: their summed steps
diverge (8 times larger batches, or a cap of 1,024, blow up; a cap of 16 at 8 times the batch
learns worse analogies). Batches of 64 rows are 1.5x faster but score 0.7 points lower.

Launch:
  jdl train --config experiments/embeddings/word2vec.py --workdir runs/word2vec
  jdl embed analogy --workdir runs/word2vec king man woman
  jdl embed neighbors --workdir runs/word2vec france

Variants: `:cbow` (CBOW, learning rate 0.05 as in the C code), `:phrases` (two passes of phrase
detection before training), `:smoke` (the test: a few steps on WordNet's glosses, dimension 16).
Expected (2 shared CPU cores): see docs/embeddings.md.
"""

import ml_collections

from jdl.config import base_config

# The vocabulary axis of every table over fsdp x tensor: the same config shards a large
# vocabulary over a TPU slice; the batch (centre words) over data x fsdp.
EMBEDDING_RULES = (
  ('batch', ('data', 'fsdp')),
  ('vocab', ('fsdp', 'tensor')),
  ('embed', None),
)


def word2vec_config(model: str = 'skipgram') -> ml_collections.ConfigDict:
  c = base_config()
  c.task = 'embeddings'
  c.model = ml_collections.ConfigDict(dict(name=model, dim=100, pad_vocab_to=64))
  c.data = ml_collections.ConfigDict(
    dict(
      name='words',
      kwargs=dict(
        sources=('gcide', 'wordnet'),
        min_count=5,
        phrase_passes=0,
        phrase_threshold=100.0,
        phrase_delta=5.0,
        window=5,
        sample=1e-3,
        negatives=5,
        chunk=32,
        reach=0,  # 0: 4 x window positions each side
        eval_rows=256,
      ),
    )
  )
  c.batch_size = 32
  c.eval_batch_size = 256
  c.num_epochs = 5
  c.optimizer.update(name='sgd', learning_rate=0.025, schedule='linear')
  # A row that more than this many pairs of one batch update moves by this many mean steps
  # (jdl/tasks/embeddings.py): the summed steps of a frequent word's row diverge.
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(max_row_pairs=64.0))
  c.sharding_rules = EMBEDDING_RULES
  c.log_every_steps = 1000
  c.steps_per_call = 2  # divides an epoch's 5,354 steps (8 a call: 1.4x, see jdl bench word2vec)
  c.checkpoint_every_steps = 0  # each epoch
  c.eval_every_steps = 0
  return c


def smoke(c: ml_collections.ConfigDict) -> None:
  """A few steps on WordNet's glosses alone (real text, a quarter of the corpus)."""
  c.data.kwargs.sources = ('wordnet',)
  c.model.dim = 16
  c.batch_size = 16
  c.eval_batch_size = 16
  c.data.kwargs.eval_rows = 16
  c.num_epochs = 0
  c.num_train_steps = 4
  c.steps_per_call = 1
  c.log_every_steps = 2
  c.checkpoint_every_steps = -1
  c.eval_every_steps = -1


def get_config(arg: str | None = None):
  c = word2vec_config()
  variants = set((arg or '').split(',')) - {''}
  if unknown := variants - {'cbow', 'phrases', 'smoke'}:
    raise ValueError(f'word2vec: unknown variant(s) {sorted(unknown)} (cbow, phrases, smoke)')
  if 'cbow' in variants:
    c.model.name = 'cbow'
    c.optimizer.learning_rate = 0.05
  if 'phrases' in variants:
    c.data.kwargs.phrase_passes = 2
  if 'smoke' in variants:
    smoke(c)
  return c
