"""A sentiment classifier on short byte windows: the automatic labeller of learning from
preferences (Ziegler et al. 2019, section 4.1, the "mock" sentiment labeller).

Every window of `window` bytes (48: a policy's continuation) of a Pang & Lee training review is
labelled with its review's polarity, and a GPT trunk with a one-score head (jdl.models.scalar_head)
reads it; the score at the last byte is the log-odds of "positive":

    s = ScalarGPT(x_1..x_W)[W]          p(positive | x) = sigmoid(s)
    loss = -[y log sigmoid(s) + (1 - y) log sigmoid(-s)]

In training the same loss is also taken at every shorter prefix of at least `min_prefix` bytes
(averaged): one forward pass gives many labelled readings, which a small model on a shared CPU
needs to learn in minutes.

A window of a review says far less than the review (a plot summary says nothing), so held-out
window accuracy is well below a whole-review classifier's: what matters to the labeller is that
the log-odds rank text by how positive it reads. Held out: windows of the validation and test
reviews (split by review, jdl.data.reviews).

`config.init_from` names a language-model run of the same shape (the supervised policy,
runs/rlhf/sft) whose weights start the trunk, as Ziegler et al. start every model from the
pretrained LM; '' trains from scratch.

Config fields: model.{vocab_size, context, n_layer, n_head, d_model, d_ff, dropout, post_ln},
data.kwargs.{window, eval_windows, stride, min_prefix, snippet_stride}, init_from.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jdl.config import ConfigError
from jdl.data import reviews
from jdl.data.splits import Splits
from jdl.models.gpt import GPTConfig
from jdl.models.scalar_head import ScalarGPT, at_last
from jdl.train import task as base


def review_windows(
  split: str, window: int, stride: int, limit: int = 0, corpus: str = 'reviews'
) -> dict[str, np.ndarray]:
  """{'tokens' [N, window] int32, 'label' [N]}: windows of every text of `split` of a Pang & Lee
  corpus ('reviews', or 'snippets': one-sentence opinions), starting every `stride` bytes,
  labelled with the text's polarity; evenly thinned to `limit` rows."""
  texts, labels = reviews.examples(corpus, split)
  rows, ys = [], []
  for text, y in zip(texts, labels, strict=True):
    ids = reviews.ByteTokenizer().encode(text)
    starts = np.arange(0, len(ids) - window + 1, stride)
    rows.append(ids[starts[:, None] + np.arange(window)[None]])
    ys.append(np.full(len(starts), y, np.int32))
  tokens, label = np.concatenate(rows), np.concatenate(ys)
  if limit and len(tokens) > limit:
    keep = np.linspace(0, len(tokens) - 1, limit).astype(int)
    tokens, label = tokens[keep], label[keep]
  return {'tokens': tokens.astype(np.int32), 'label': label}


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name != 'gpt':
      raise ConfigError(f"config.model.name: the sentiment classifier is a 'gpt', not {m.name!r}")
    self.gpt_config = GPTConfig.from_config(m, config.dtype)
    if config.data.kwargs.window > self.gpt_config.context:
      raise ConfigError(
        f'config.data.kwargs.window {config.data.kwargs.window} exceeds the context '
        f'{self.gpt_config.context}'
      )

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return ScalarGPT(self.gpt_config, 1, sharding_rules=self.config.sharding_rules, rngs=rngs)

  def tokenizer(self):
    return reviews.ByteTokenizer()

  def load_data(self) -> Splits:
    k = self.config.data.kwargs
    parts = [review_windows('train', k.window, k.stride)]
    if k.get('snippet_stride'):  # sentence-level opinions: a label that every window carries
      parts.append(review_windows('train', k.window, k.snippet_stride, corpus='snippets'))
    train = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    evals = {
      split: review_windows(split, k.window, k.window, k.eval_windows)
      for split in ('validation', 'test')
    }
    return Splits(train=train, evals=evals)

  @functools.cached_property
  def _pretrained_trunk(self):
    """The language-model run's parameters (host arrays), checked against this trunk's shape."""
    from jdl.train.run import load_config, load_run

    source_config = load_config(self.config.init_from)
    with source_config.unlocked():
      # Restored on this run's mesh: loading sets the process's mesh, which must stay ours.
      source_config.mesh = self.config.mesh
    run = load_run(self.config.init_from, config=source_config, one_device=False)
    if run.config.task != 'lm':
      raise ConfigError(
        f'config.init_from: {self.config.init_from} is a {run.config.task!r} run, not an lm run'
      )
    source = GPTConfig.from_config(run.config.model, self.config.dtype)
    mine = self.gpt_config
    for field in ('vocab_size', 'context', 'n_layer', 'n_head', 'd_model', 'd_ff', 'post_ln'):
      if getattr(source, field) != getattr(mine, field):
        raise ConfigError(
          f'config.init_from: {self.config.init_from} has model.{field} = '
          f'{getattr(source, field)}, this config {getattr(mine, field)} (they must match)'
        )
    return jax.device_get(run.state.params)

  def setup(self, total_steps: int) -> base.Plan:
    plan = super().setup(total_steps)
    # The language model is read here, eagerly: init_state runs traced (eval_shape, jit), where
    # its weights can only enter as the host arrays read before.
    if self.config.get('init_from'):
      _ = self._pretrained_trunk
    return plan

  def init_state(self, plan: base.Plan, key: jax.Array) -> base.TrainState:
    """A fresh state; with `init_from`, the trunk holds the language model's weights (the head
    starts at zero: every window at p = 0.5)."""
    state = super().init_state(plan, key)
    if not self.config.get('init_from'):
      return state
    params = dict(state.params)
    params['trunk'] = jax.tree.map(jnp.asarray, self._pretrained_trunk)
    return state.replace(params=params, opt_state=plan.tx.init(params))

  def logits(self, model, tokens_BxT, key=None) -> jax.Array:
    """The log-odds of 'positive' [B] of full windows (no padding: every row is W bytes)."""
    lengths_B = jnp.full(tokens_BxT.shape[:1], tokens_BxT.shape[1], jnp.int32)
    return at_last(model(tokens_BxT, dropout_key=key), lengths_B)[:, 0]

  def loss(self, model, batch, key, train):
    """Training reads every prefix of at least `min_prefix` bytes (each labelled with the
    review's polarity: many labels per forward pass); evaluation only the whole window, as the
    labeller does."""
    key = key if (train and self.gpt_config.dropout > 0) else None
    s_BxT = model(batch['tokens'], dropout_key=key)[..., 0]
    y_B = batch['label'].astype(jnp.float32)
    s_B = s_BxT[:, -1]
    first = min(self.config.data.kwargs.get('min_prefix', 0), s_BxT.shape[1]) - 1
    read_BxT = s_BxT[:, max(first, 0) :] if train and first >= 0 else s_B[:, None]
    y_BxT = jnp.broadcast_to(y_B[:, None], read_BxT.shape)
    loss = base.masked_mean(optax.sigmoid_binary_cross_entropy(read_BxT, y_BxT).mean(-1), batch)
    accuracy = base.masked_mean(((s_B > 0) == (y_B > 0.5)).astype(jnp.float32), batch)
    return loss, {'loss': loss, 'accuracy': accuracy}

  def report(self, plan, state, history, workdir, data):
    final = next((h for h in reversed(history) if 'validation_accuracy' in h), None)
    if final is None:
      return
    for split in ('validation', 'test'):
      if f'{split}_accuracy' in final:
        print(
          f'{split}: accuracy {100 * final[f"{split}_accuracy"]:.2f}% on held-out '
          f'{self.config.data.kwargs.window}-byte windows (loss {final[f"{split}_loss"]:.4f})'
        )

  def batch_units(self, batch) -> tuple[str, int]:
    return 'windows', batch['tokens'].shape[0]
