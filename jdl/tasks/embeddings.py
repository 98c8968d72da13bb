"""Word embeddings: word2vec (skip-gram, CBOW), GloVe and fastText on a dictionary corpus.

Config fields (experiments/embeddings/*.py): model.{name: skipgram | cbow | fasttext | glove,
dim, buckets (fastText), minn, maxn, x_max (GloVe), pad_vocab_to}; data.kwargs.{sources,
min_count, phrase_passes, phrase_threshold, phrase_delta, window, sample, negatives, chunk,
reach, eval_rows} (jdl.data.words).

The step is sparse: only the rows a batch reads are updated, so a step's memory traffic is that
of its rows, not of the tables. The model says which rows its batch reads and its objective on
them (jdl/models/embeddings.py); the step gathers the rows, differentiates the objective with
respect to them and adds the update back in place (the state's buffers are donated):

  word2vec, fastText: plain SGD on the summed loss, rows -= lr * d(sum of pair losses)/d(row),
    lr decaying linearly from config.optimizer.learning_rate to 1e-4 of it (the C code's
    schedule). A pair's update is the C code's per-pair step; a row that several pairs of one
    batch touch gets the sum of their steps (the C code applies them one after the other).
  GloVe: AdaGrad per row, the step scaled by the accumulator before this batch's squares are
    added (the GloVe code's order), accumulators starting at 1.

`optimizer.name` must say which rule runs (sgd, or adagrad for GloVe); no optax state is kept.
"""

from __future__ import annotations

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.data import words
from jdl.data.splits import Splits
from jdl.models import embeddings as emb
from jdl.train import optim
from jdl.train import task as base

MODELS = ('skipgram', 'cbow', 'fasttext', 'glove')
RULES = {'skipgram': 'sgd', 'cbow': 'sgd', 'fasttext': 'sgd', 'glove': 'adagrad'}
# Fields of a centre-word batch, [rows, centres per row, ...]: flattened to [centres, ...].
CENTRE_FIELDS = ('target', 'context', 'context_valid', 'negatives', 'word_slot')
PROBE_WORDS = ('king', 'queen', 'france', 'paris', 'water', 'run')


@functools.lru_cache(maxsize=4)
def _corpus(sources: tuple, min_count: int, passes: int, threshold: float, delta: float):
  return words.load_corpus(sources, min_count, passes, threshold, delta)


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name not in MODELS:
      raise ConfigError(f'config.model.name: one of {MODELS}, not {m.name!r}')
    rule = RULES[m.name]
    if config.optimizer.name != rule:
      raise ConfigError(
        f"config.optimizer.name: {m.name} trains with the sparse '{rule}' rule of this task, "
        f'not {config.optimizer.name!r}'
      )

  # ---- data ------------------------------------------------------------------------------------

  def corpus(self) -> words.Corpus:
    d = self.config.data.kwargs
    return _corpus(
      tuple(d.sources),
      d.min_count,
      d.get('phrase_passes', 0),
      d.get('phrase_threshold', 100.0),
      d.get('phrase_delta', 5.0),
    )

  def vocabulary(self) -> list[str]:
    return self.corpus().words

  @property
  def vocab_rows(self) -> int:
    """The vocabulary padded to a multiple of `model.pad_vocab_to`, so that a mesh axis divides
    the tables (the padding rows are never read)."""
    multiple = self.config.model.get('pad_vocab_to', 1)
    return -(-len(self.vocabulary()) // multiple) * multiple

  @functools.cached_property
  def subwords(self) -> emb.Subwords | None:
    m = self.config.model
    if m.name != 'fasttext':
      return None
    return emb.Subwords.of(self.vocabulary(), m.buckets, m.minn, m.maxn)

  def centre_source(self) -> words.CentreSource:
    d = self.config.data.kwargs
    source = words.CentreSource(
      self.corpus(),
      d.window,
      d.sample,
      d.negatives,
      d.chunk,
      centres=1,
      reach=d.get('reach', 0) or None,
      subwords=self.subwords.ragged() if self.subwords is not None else None,
    )
    # Capacity: the mean centres of a row plus six standard deviations of a batch's mean (a
    # row's count of kept centres is a sum of independent draws: variance <= chunk / 4).
    rows = self.config.batch_size // jax.process_count()
    source.centres = math.ceil(source.expected_centres() + 6 * math.sqrt(d.chunk / 4 / rows))
    if source.subwords is not None:
      source.calibrate_subwords(rows)
    return source

  def load_data(self) -> Splits:
    d = self.config.data.kwargs
    rng = np.random.default_rng(self.config.seed)
    if self.config.model.name == 'glove':
      key = f'{"+".join(d.sources)}-m{d.min_count}-p{d.get("phrase_passes", 0)}'
      entries = words.load_cooccurrence(self.corpus(), d.window, key)
      held = rng.choice(len(entries['row']), min(d.eval_rows, len(entries['row'])), replace=False)
      return Splits(train=entries, evals={'sample': {k: v[held] for k, v in entries.items()}})
    source = self.centre_source()
    # A fixed sample of the training stream (with fixed draws): a loss that is comparable
    # between evaluations. word2vec trains on the whole corpus; nothing is held out.
    rows = rng.choice(len(source), min(d.eval_rows, len(source)), replace=False)
    sample = source.batch(np.sort(rows), np.random.default_rng(self.config.seed + 1))
    sample.pop('lost')
    return Splits(train=source, evals={'sample': sample})

  # ---- model -----------------------------------------------------------------------------------

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m, V = self.config.model, self.vocab_rows
    if m.name == 'glove':
      return emb.GloVe(V, m.dim, m.x_max, rngs=rngs)
    if m.name == 'fasttext':
      return emb.FastText(V, m.dim, m.buckets, rngs=rngs)
    return emb.Word2Vec(V, m.dim, cbow=m.name == 'cbow', rngs=rngs)

  def make_optimizer(self, total_steps, networks, labels) -> optax.GradientTransformation:
    """The learning rate of the sparse rule (`train_step` updates the tables itself): the
    config's schedule, floored at 1e-4 of its start as in the C code; its state is the count."""
    opt = self.config.optimizer
    schedule = optim.schedule(opt, total_steps)
    return optax.scale_by_learning_rate(
      lambda step: jnp.maximum(schedule(step), 1e-4 * opt.learning_rate)
    )

  # ---- the sparse step -------------------------------------------------------------------------

  def _flat(self, batch: base.Batch) -> base.Batch:
    """Centre fields [rows, S, ...] -> [rows * S, ...]; padding rows of an evaluation batch
    ('mask' 0) lose their pairs."""
    out = {}
    for k, v in batch.items():
      if k in CENTRE_FIELDS:
        out[k] = v.reshape(-1, *v.shape[2:])
      elif k != 'mask':
        out[k] = v
    if 'mask' in batch:
      mask = batch['mask']
      if 'context_valid' in out:
        rows, S = batch['context_valid'].shape[:2]
        per_centre = jnp.repeat(mask, S).reshape(rows * S, 1)
        out['context_valid'] = out['context_valid'] * per_centre
      else:
        out['valid'] = mask.astype(jnp.float32)
    return out

  def _rows(self, tables, model, batch):
    """The rows a batch reads; an empty slot (id NONE) reads zeros."""
    return {
      name: tables[table].at[ids].get(mode='fill', fill_value=0)
      for name, (table, ids, _) in model.lookups(batch).items()
    }

  def loss(self, model, batch, key, train):
    batch = self._flat(batch)
    tables = {k: v[...] for k, v in nnx.to_pure_dict(nnx.state(model, nnx.Param)).items()}
    total, metrics = model.objective(self._rows(tables, model, batch), batch)
    loss = total / jnp.maximum(metrics['examples'], 1.0)
    return loss, {'loss': loss}

  def train_step(self, plan, state, batch, key):
    lost = batch.get('lost')
    batch = self._flat(batch)
    model = plan.merge(state.params, state.model_state)
    lookups = model.lookups(batch)
    rows = self._rows(state.params, model, batch)
    (total, metrics), grads = jax.value_and_grad(model.objective, has_aux=True)(rows, batch)
    negative_lr, opt_state = plan.tx.update(jnp.ones((), jnp.float32), state.opt_state)
    lr = -negative_lr
    params, model_state = dict(state.params), dict(state.model_state)
    cap = self.config.optimizer.kwargs.get('max_row_pairs', 0)
    for name, (table, ids, pairs) in lookups.items():
      grad = grads[name]
      if cap:
        grad = grad * _row_scale(params[table].shape[0], ids, pairs, cap)[..., None]
      if RULES[self.config.model.name] == 'adagrad':
        acc = f'{table}_gradsq'
        old = model_state[acc].at[ids].get(mode='fill', fill_value=1)
        params[table] = params[table].at[ids].add(-lr * grad / jnp.sqrt(old), mode='drop')
        model_state[acc] = model_state[acc].at[ids].add(grad**2, mode='drop')
      else:
        # Empty slots (id NONE) are out of range: their updates are dropped.
        params[table] = params[table].at[ids].add(-lr * grad, mode='drop')
    examples = metrics['examples']
    metrics = {'loss': total / jnp.maximum(examples, 1.0), 'lr': lr, 'examples': examples}
    if lost is not None:
      metrics['lost'] = lost.sum()
    new_state = state.replace(
      step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
    )
    return new_state, metrics

  # ---- what the tools read ---------------------------------------------------------------------

  def word_vectors(self, model) -> np.ndarray:
    """[V, dim] float32: the vectors the model gives the vocabulary's words (padding cut)."""
    if self.config.model.name == 'fasttext':
      vectors = model.word_vectors(self.subwords)
    else:
      vectors = model.word_vectors()
    return np.asarray(jax.device_get(vectors))[: len(self.vocabulary())]

  def oov_vector(self, model, word: str) -> np.ndarray | None:
    """A vector for a word outside the vocabulary (fastText: from its n-grams), else None."""
    m = self.config.model
    if m.name != 'fasttext':
      return None
    return np.asarray(model.oov_vector(word, m.minn, m.maxn))

  def report(self, plan, state, history, workdir, data):
    """Nearest neighbours of a few words (cosine), and the final sample loss."""
    model = plan.merge(jax.device_get(state.params), jax.device_get(state.model_state))
    vectors = self.word_vectors(model)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index = {w: i for i, w in enumerate(self.vocabulary())}
    result = {'vocabulary': len(index), 'tokens': int(len(self.corpus().tokens))}
    final = next((h for h in reversed(history) if 'sample_loss' in h), None)
    if final is not None:
      result['sample_loss'] = final['sample_loss']
    neighbours = {}
    for w in PROBE_WORDS:
      if w in index:
        sims = unit @ unit[index[w]]
        top = [i for i in np.argsort(-sims)[:6] if i != index[w]][:5]
        neighbours[w] = [self.vocabulary()[i] for i in top]
        print(f'{w}: {", ".join(neighbours[w])}')
    result['neighbours'] = neighbours
    (epath.Path(workdir) / 'results.json').write_text(json.dumps(result, indent=2) + '\n')

  def batch_units(self, batch) -> tuple[str, int]:
    if 'row' in batch:
      return 'co-occurrences', batch['row'].shape[0]
    return 'corpus positions', batch['target'].shape[0] * self.config.data.kwargs.chunk


def _row_scale(rows: int, ids: jax.Array, pairs: jax.Array, cap: float) -> jax.Array:
  """min(1, cap / n) for every slot, n the pairs of the batch that update the slot's row: a row
  that more than `cap` pairs of one batch update moves by `cap` of their mean steps, not by
  their sum (the summed steps of thousands of pairs on a frequent word's row diverge, where
  the C code's one-at-a-time steps do not)."""
  counts = jnp.zeros((rows,), jnp.float32).at[ids].add(pairs.astype(jnp.float32), mode='drop')
  n = counts.at[ids].get(mode='fill', fill_value=1.0)
  return jnp.minimum(1.0, cap / jnp.maximum(n, 1.0))
