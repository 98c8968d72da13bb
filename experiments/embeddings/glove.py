"""GloVe (Pennington et al. 2014) on GCIDE + WordNet glosses: weighted least squares on the
co-occurrence counts.

Counts X_ij within a window of 10 words, weighted 1/distance, symmetric (jdl.data.words,
computed once and cached: 13.6M non-zeros); f(x) = min(1, (x/x_max)^0.75) with x_max = 10, as
the GloVe code's demo uses for its small corpus (text8): the paper's 100 suits billions of
tokens; here most counts are below 2, f(x) ~ 0.05, and 10 epochs at x_max 100 reached 1.1%
analogy accuracy. AdaGrad with learning rate 0.05, accumulators starting at 1 (the GloVe
code's settings); dimension 100; 15 epochs (the demo's iterations); the word vector is w + w~.
A step reads 16,384 co-occurrence entries (rows of the shuffled list of non-zeros).

Launch:
  jdl train --config experiments/embeddings/glove.py --workdir runs/glove
  jdl embed evaluate --workdir runs/glove

`:smoke` is the test (a few steps on WordNet's glosses, window 2, dimension 16).
Expected (2 shared CPU cores): see docs/embeddings.md.
"""

import ml_collections

from jdl.config import base_config

EMBEDDING_RULES = (
  ('batch', ('data', 'fsdp')),
  ('vocab', ('fsdp', 'tensor')),
  ('embed', None),
)


def get_config(arg: str | None = None):
  c = base_config()
  c.task = 'embeddings'
  c.model = ml_collections.ConfigDict(dict(name='glove', dim=100, x_max=10.0, pad_vocab_to=64))
  c.data = ml_collections.ConfigDict(
    dict(
      name='words',
      kwargs=dict(
        sources=('gcide', 'wordnet'),
        min_count=5,
        phrase_passes=0,
        window=10,
        eval_rows=16_384,
      ),
    )
  )
  c.batch_size = 16_384
  c.eval_batch_size = 16_384
  c.num_epochs = 15
  c.optimizer.update(name='adagrad', learning_rate=0.05, schedule='constant')
  c.sharding_rules = EMBEDDING_RULES
  c.log_every_steps = 200
  if arg == 'smoke':
    c.data.kwargs.update(sources=('wordnet',), window=2)
    c.model.dim = 16
    c.batch_size = 256
    c.eval_batch_size = 256
    c.data.kwargs.eval_rows = 256
    c.num_epochs = 0
    c.num_train_steps = 4
    c.log_every_steps = 2
    c.checkpoint_every_steps = -1
    c.eval_every_steps = -1
  elif arg is not None:
    raise ValueError(f'glove: unknown variant {arg!r} (smoke)')
  return c
