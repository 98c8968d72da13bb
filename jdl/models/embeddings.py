"""Word embeddings: word2vec (skip-gram and CBOW with negative sampling), GloVe and fastText.

Every model here is a set of tables whose rows are words (or hashed character n-grams), and a
step touches only the rows of its batch. So each model says which rows a batch reads
(`lookups(batch) -> {name: (table, ids, pairs)}`, `pairs` the number of training pairs whose
gradient each gathered row receives) and its objective on those rows alone
(`objective(rows, batch) -> (loss, metrics)`); the task gathers the rows, differentiates the
objective with respect to them and adds the update back into the tables at the same ids
(jdl/tasks/embeddings.py). An id of a slot that holds nothing (padding) is out of range
(`NONE`): its gathered row is zeros and its update is dropped, which costs far less than
reading and writing a real row. Tables name their axes ('vocab', 'embed'), so a config shards the
vocabulary over the mesh.

word2vec (Mikolov et al. 2013). Input vectors v (the word's vector) and output vectors u. For a
centre word c with context words x_1..x_m (a window of size b drawn from 1..window) and K
negatives n_1..n_K drawn from the unigram distribution to the power 3/4:

  skip-gram, each pair (x_j, c):  -log s(u_c . v_xj) - sum_k log s(-u_nk . v_xj)
  CBOW, h = mean_j v_xj:          -log s(u_c . h)    - sum_k log s(-u_nk . h)

with s the logistic sigmoid. As in the reference C code, the context word's input vector
predicts the centre word (the two readings hold the same pairs); the K negatives are drawn per
centre word and shared by its m pairs, so every pair still sees K negatives from the noise
distribution (the C code draws them per pair: the same distribution per pair, m times fewer
rows to read). A negative equal to the centre word is skipped, as in the C code.

GloVe (Pennington et al. 2014). For co-occurrence counts X_ij,
  J = sum_ij f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2 / 2,  f(x) = min(1, (x/x_max)^0.75),
trained with AdaGrad (accumulators start at 1, as in the GloVe code); word vector = w + w~.

fastText (Bojanowski et al. 2017). A word's input vector is the mean of its own vector and the
vectors of its character n-grams (n = 3..6 of `<word>`), hashed into `buckets` rows with
32-bit FNV-1a over the word's bytes read as signed chars, as fastText's code does. The paper
writes a sum; the released code (and gensim) average, and so does this one, and, as they do,
it adds the gradient of that mean to each of the rows whole. A word outside the vocabulary
gets the mean of its n-gram vectors.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.models.layers import param

AXES = ('vocab', 'embed')
NONE = 2**30  # the id of an empty slot: out of range for every table


def ids_where(valid, ids):
  """`ids` where `valid`, else NONE."""
  return jnp.where(valid > 0, ids, NONE)


class Accumulator(nnx.Variable):
  """An optimizer statistic that lives beside its table (GloVe's AdaGrad sums of squares):
  sparse updates touch the same rows of both."""


def _uniform(scale: float):
  return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -scale, scale)


def log_sigmoid(x: jax.Array) -> jax.Array:
  return -jax.nn.softplus(-x)


# ---- word2vec ----------------------------------------------------------------------------------


def output_ids(batch) -> jax.Array:
  """[N, 1 + K]: each centre word and its negatives; NONE for a centre without context (a
  padding slot) and for a negative equal to its centre (skipped, as in the C code)."""
  target_N, negatives_NxK = batch['target'], batch['negatives']
  used_N = batch['context_valid'].max(-1)
  negatives_NxK = jnp.where(negatives_NxK == target_N[:, None], NONE, negatives_NxK)
  outputs_NxO = jnp.concatenate([target_N[:, None], negatives_NxK], axis=1)
  return ids_where(used_N[:, None], outputs_NxO)


def negative_sampling_loss(scores_NxCxO, pairs_NxC, negatives_NxO):
  """Sum over pairs of -log s(positive) - sum_k log s(-negative_k). `scores[..., 0]` is the
  centre word's score, `scores[..., 1:]` the negatives'; `pairs` marks the real pairs (1/0),
  `negatives[:, 0]` is unused and `negatives[:, 1:]` marks the negatives kept (1/0)."""
  positive = -log_sigmoid(scores_NxCxO[..., 0])
  negative = -(log_sigmoid(-scores_NxCxO[..., 1:]) * negatives_NxO[:, None, 1:]).sum(-1)
  return ((positive + negative) * pairs_NxC).sum()


class Word2Vec(nnx.Module):
  """Skip-gram (`cbow=False`) or CBOW with negative sampling: input and output tables.

  A batch holds centre words: 'target' [N] (the centre), 'context' [N, 2W] and 'context_valid'
  (the words of its window, padded), 'negatives' [N, K]."""

  def __init__(self, vocab_size: int, dim: int, cbow: bool = False, *, rngs: nnx.Rngs):
    self.cbow = cbow
    # The C code's initialisation: inputs uniform in +-0.5/dim, outputs zero.
    self.inputs = param(rngs, _uniform(0.5 / dim), (vocab_size, dim), AXES)
    self.outputs = param(rngs, nnx.initializers.zeros_init(), (vocab_size, dim), AXES)

  def lookups(self, batch) -> dict[str, tuple[str, jax.Array, jax.Array]]:
    valid_NxC = batch['context_valid']
    # Skip-gram: an output row serves each of its centre's pairs; CBOW: one prediction.
    per_output = jnp.ones_like(valid_NxC[:, 0]) if self.cbow else valid_NxC.sum(-1)
    outputs = output_ids(batch)
    return {
      'context': ('inputs', ids_where(valid_NxC, batch['context']), valid_NxC),
      'outputs': ('outputs', outputs, jnp.broadcast_to(per_output[:, None], outputs.shape)),
    }

  def objective(self, rows, batch):
    v_NxCxD, u_NxOxD = rows['context'], rows['outputs']
    valid_NxC = batch['context_valid'].astype(v_NxCxD.dtype)
    target_N = batch['target']
    # A negative equal to the centre word is skipped (column 0 is the centre itself).
    keep_NxO = jnp.concatenate(
      [jnp.ones_like(target_N[:, None]), batch['negatives'] != target_N[:, None]], axis=1
    ).astype(v_NxCxD.dtype)
    if self.cbow:
      count_N = valid_NxC.sum(-1)
      h_NxD = jnp.einsum('nc,ncd->nd', valid_NxC, v_NxCxD) / jnp.maximum(count_N, 1)[:, None]
      scores_NxO = jnp.einsum('nd,nod->no', h_NxD, u_NxOxD)
      centres_N = (count_N > 0).astype(v_NxCxD.dtype)
      loss = negative_sampling_loss(scores_NxO[:, None], centres_N[:, None], keep_NxO)
      examples = centres_N.sum()
    else:
      scores_NxCxO = jnp.einsum('ncd,nod->nco', v_NxCxD, u_NxOxD)
      loss = negative_sampling_loss(scores_NxCxO, valid_NxC, keep_NxO)
      examples = valid_NxC.sum()
    return loss, {'examples': examples}

  def word_vectors(self) -> jax.Array:
    return self.inputs[...]


# ---- GloVe -------------------------------------------------------------------------------------


def glove_weight(x: jax.Array, x_max: float = 100.0, alpha: float = 0.75) -> jax.Array:
  """f(x) = (x / x_max)^alpha below x_max, 1 above."""
  return jnp.minimum((x / x_max) ** alpha, 1.0)


class GloVe(nnx.Module):
  """Word and context tables with biases, and their AdaGrad accumulators.

  A batch holds co-occurrence entries: 'row' [N], 'col' [N], 'count' [N] (X_ij > 0)."""

  def __init__(self, vocab_size: int, dim: int, x_max: float = 100.0, *, rngs: nnx.Rngs):
    self.x_max = x_max
    # The GloVe code's initialisation: uniform in +-0.5/dim for vectors and biases.
    init = _uniform(0.5 / dim)
    self.words = param(rngs, init, (vocab_size, dim), AXES)
    self.contexts = param(rngs, init, (vocab_size, dim), AXES)
    self.word_bias = param(rngs, init, (vocab_size,), ('vocab',))
    self.context_bias = param(rngs, init, (vocab_size,), ('vocab',))
    for name in ('words', 'contexts'):
      setattr(self, f'{name}_gradsq', Accumulator(jnp.ones((vocab_size, dim)), out_sharding=AXES))
    for name in ('word_bias', 'context_bias'):
      setattr(self, f'{name}_gradsq', Accumulator(jnp.ones((vocab_size,)), out_sharding=('vocab',)))

  def lookups(self, batch):
    i, j = batch['row'], batch['col']
    one = jnp.ones(i.shape, jnp.float32)
    return {
      'w': ('words', i, one),
      'c': ('contexts', j, one),
      'bw': ('word_bias', i, one),
      'bc': ('context_bias', j, one),
    }

  def objective(self, rows, batch):
    x = batch['count']
    valid = batch.get('valid', jnp.ones_like(x))
    diff = (
      (rows['w'] * rows['c']).sum(-1) + rows['bw'] + rows['bc'] - jnp.log(jnp.maximum(x, 1e-30))
    )
    weighted = glove_weight(x, self.x_max) * valid
    return 0.5 * (weighted * diff**2).sum(), {'examples': valid.sum()}

  def word_vectors(self) -> jax.Array:
    return self.words[...] + self.contexts[...]


# ---- fastText ----------------------------------------------------------------------------------


FNV_OFFSET, FNV_PRIME = 2166136261, 16777619


def fnv1a_32(data: bytes) -> int:
  """fastText's word hash: 32-bit FNV-1a where each byte is first read as a signed char and
  sign-extended (so bytes >= 0x80 xor in 0xFFFFFF80 | b, not b)."""
  h = FNV_OFFSET
  for b in data:
    h ^= (b - 256 if b >= 128 else b) & 0xFFFFFFFF
    h = (h * FNV_PRIME) & 0xFFFFFFFF
  return h


def char_ngrams(word: str, minn: int = 3, maxn: int = 6) -> list[str]:
  """The character n-grams (minn..maxn characters) of `<word>`, in fastText's order: by start
  position, then by length. The whole `<word>` is among them when it is short enough."""
  marked = f'<{word}>'
  out = []
  for i in range(len(marked)):
    for n in range(minn, maxn + 1):
      if i + n <= len(marked):
        out.append(marked[i : i + n])
  return out


def ngram_ids(word: str, buckets: int, minn: int = 3, maxn: int = 6) -> list[int]:
  return [fnv1a_32(g.encode('utf-8')) % buckets for g in char_ngrams(word, minn, maxn)]


@dataclasses.dataclass(frozen=True)
class Subwords:
  """Every vocabulary word's n-gram rows, padded: ids [V, G] and a mask [V, G]."""

  ids: np.ndarray
  mask: np.ndarray

  @classmethod
  def of(cls, words, buckets: int, minn: int = 3, maxn: int = 6) -> Subwords:
    lists = [ngram_ids(w, buckets, minn, maxn) for w in words]
    width = max(1, max((len(g) for g in lists), default=1))
    ids = np.zeros((len(lists), width), np.int32)
    mask = np.zeros((len(lists), width), np.float32)
    for i, g in enumerate(lists):
      ids[i, : len(g)], mask[i, : len(g)] = g, 1.0
    return cls(ids, mask)

  def ragged(self) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [V + 1], ids): word w's n-gram rows are ids[offsets[w]:offsets[w + 1]]."""
    lengths = self.mask.sum(1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return offsets, self.ids[self.mask > 0]


class FastText(nnx.Module):
  """Skip-gram with negative sampling whose input vector is the mean of the word's vector and
  its n-gram vectors. The batch is word2vec's plus, per row, the distinct context words and
  their n-grams listed once (jdl.data.words.CentreSource): each word's vector is composed once
  per row, then read by every context slot that holds it."""

  def __init__(self, vocab_size: int, dim: int, buckets: int, *, rngs: nnx.Rngs):
    # fastText's initialisation: input rows uniform in +-1/dim, outputs zero.
    self.inputs = param(rngs, _uniform(1.0 / dim), (vocab_size, dim), AXES)
    self.ngrams = param(rngs, _uniform(1.0 / dim), (buckets, dim), AXES)
    self.outputs = param(rngs, nnx.initializers.zeros_init(), (vocab_size, dim), AXES)

  def lookups(self, batch):
    words_RxU, count_RxU = batch['unique_words'], batch['unique_count']
    ngrams_RxM, owner_RxM = batch['ngrams'], batch['ngram_owner']
    outputs = output_ids(batch)
    per_output = jnp.broadcast_to(batch['context_valid'].sum(-1)[:, None], outputs.shape)
    ngram_pairs = jnp.take_along_axis(count_RxU, owner_RxM, axis=1) * (ngrams_RxM >= 0)
    return {
      'words': ('inputs', ids_where(count_RxU, words_RxU).reshape(-1), count_RxU.reshape(-1)),
      'ngrams': (
        'ngrams',
        ids_where(ngrams_RxM >= 0, ngrams_RxM).reshape(-1),
        ngram_pairs.reshape(-1),
      ),
      'outputs': ('outputs', outputs, per_output),
    }

  @staticmethod
  def compose(word_NxD, ngram_sum_NxD, ngram_count_N):
    """mean(word vector, its n-gram vectors), from the word's row, the sum of its n-gram rows
    and their number. Its gradient reaches every one of the rows whole, not divided by their
    number: the update rule of fastText's code and of gensim."""
    total = word_NxD + ngram_sum_NxD
    mean = total / (1.0 + ngram_count_N)[..., None]
    return total + jax.lax.stop_gradient(mean - total)

  def input_vectors(self, rows, batch):
    """[N, C, D]: the composed input vector of every context slot."""
    R, U = batch['unique_words'].shape
    owner = (batch['ngram_owner'] + U * jnp.arange(R)[:, None]).reshape(-1)
    ngram_sum = jax.ops.segment_sum(rows['ngrams'], owner, num_segments=R * U)
    h_UxD = self.compose(rows['words'], ngram_sum, batch['ngram_total'].reshape(-1))
    slot_NxC = batch['word_slot']
    row_N = jnp.arange(slot_NxC.shape[0]) // (slot_NxC.shape[0] // R)
    return h_UxD[slot_NxC + U * row_N[:, None]]

  def objective(self, rows, batch):
    v_NxCxD = self.input_vectors(rows, batch)
    u_NxOxD = rows['outputs']
    valid_NxC = batch['context_valid'].astype(v_NxCxD.dtype)
    target_N = batch['target']
    keep_NxO = jnp.concatenate(
      [jnp.ones_like(target_N[:, None]), batch['negatives'] != target_N[:, None]], axis=1
    ).astype(v_NxCxD.dtype)
    scores_NxCxO = jnp.einsum('ncd,nod->nco', v_NxCxD, u_NxOxD)
    loss = negative_sampling_loss(scores_NxCxO, valid_NxC, keep_NxO)
    return loss, {'examples': valid_NxC.sum()}

  def word_vectors(self, subwords: Subwords) -> jax.Array:
    """[V, dim] for the V words of `subwords` (the table's padding rows left out)."""
    ids, mask = jnp.asarray(subwords.ids), jnp.asarray(subwords.mask)
    ngram_sum = jnp.einsum('vg,vgd->vd', mask, self.ngrams[...][ids])
    return self.compose(self.inputs[...][: len(ids)], ngram_sum, mask.sum(-1))

  def oov_vector(self, word: str, minn: int = 3, maxn: int = 6) -> jax.Array:
    """The mean of the n-gram vectors of a word outside the vocabulary."""
    ids = jnp.asarray(ngram_ids(word, self.ngrams.shape[0], minn, maxn), jnp.int32)
    return self.ngrams[...][ids].mean(0)
