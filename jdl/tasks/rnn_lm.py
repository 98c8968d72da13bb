"""Character-level language modelling with a recurrent network (jdl.models.rnn.CharRNN): the
LSTM, Elman and Jordan cells predict every next character of windows of the King James Bible.
The loss is cross-entropy in nats per character; bits per character = loss / ln 2.

By default every window starts from the zero state, in training and in evaluation alike, so the
first characters of a window are predicted with little context: the reported bits per character
include that warm-up. With `model.carry_state` the training text is read as parallel streams
(jdl.data.streams, one book after another) and the state is carried from each batch to the next,
restarting at each book: truncated backpropagation through time, the way char-rnn trains.
Evaluation windows still start from the zero state, so the two settings report comparable
numbers.

Config fields (experiments/rnn/char_bible.py): model.{cell, hidden_size, embed_dim, num_layers,
vocab_size, unroll, carry_state, lstm_kernel (LSTM_KERNEL, 'auto', when absent: on CPU oneDNN's
LSTM primitives where they build, else the fused kernel, else the scan: jdl.models.rnn)};
data.name = 'text' with data.kwargs for jdl.data.text.load (tokenizer 'char'). With data.name =
'reviews' the model reads movie reviews as UTF-8 bytes (jdl.data.reviews, 256 ids; the sentiment
neuron, experiments/sentiment): the loss is then in nats per byte and `bits_per_char` is bits
per byte.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.models import sampling
from jdl.models.rnn import CELLS, LSTM_KERNELS, CharRNN
from jdl.train import task as base

# model.lstm_kernel when a config sets none: the fastest LSTM kernel this CPU builds (`jdl bench
# lstm`, docs/benchmarks.md); the scan on GPU and TPU.
LSTM_KERNEL = 'auto'


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name != 'char_rnn':
      raise ConfigError(f"config.model.name: the rnn_lm task has model 'char_rnn', not {m.name!r}")
    if m.cell not in CELLS:
      raise ConfigError(f'config.model.cell: {m.cell!r} is not one of {sorted(CELLS)}')
    if m.get('lstm_kernel', LSTM_KERNEL) not in LSTM_KERNELS:
      raise ConfigError(f'config.model.lstm_kernel: {m.lstm_kernel!r} is not one of {LSTM_KERNELS}')

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    m = self.config.model
    return CharRNN(
      m.cell,
      m.vocab_size,
      m.embed_dim,
      m.hidden_size,
      num_layers=m.num_layers,
      unroll=m.get('unroll', 1),
      lstm_kernel=m.get('lstm_kernel', LSTM_KERNEL),  # 'auto', 'scan', 'ffi' or 'onednn'
      dtype=self.compute_dtype,
      rngs=rngs,
    )

  def tokenizer(self):
    if self.config.data.name == 'reviews':
      from jdl.data import reviews

      return reviews.ByteTokenizer()
    from jdl.data import text

    return text.make_tokenizer(self.config.data.kwargs.tokenizer)

  def load_data(self) -> base.Splits:
    from jdl.data import text

    kwargs = self.config.data.kwargs.to_dict()
    kwargs.setdefault('seed', self.config.seed)
    n_vocab = self.tokenizer().n_vocab
    if n_vocab > self.config.model.vocab_size:
      raise ConfigError(
        f'config.model.vocab_size {self.config.model.vocab_size} is smaller '
        f"than the tokenizer's {n_vocab} ids"
      )
    if self.config.data.name == 'reviews':  # bytes of movie reviews (the sentiment neuron)
      from jdl.data import reviews

      if self.carries_state:
        return reviews.load_streams(streams_per_batch=self.config.batch_size, **kwargs)
      return reviews.load(**kwargs)
    if self.carries_state:
      return text.load_streams(
        kwargs['corpora'],
        kwargs['tokenizer'],
        kwargs['context'],
        self.config.batch_size,
        kwargs.get('eval_rows', 0),
      )
    return text.load(**kwargs)

  @property
  def carries_state(self) -> bool:
    return bool(self.config.model.get('carry_state', False))

  def initial_carry(self, batch_size: int):
    """Zero states of every layer (None without `model.carry_state`: each window starts anew)."""
    if not self.carries_state:
      return None
    shapes = jax.eval_shape(lambda: self.build_model(nnx.Rngs(0)).rnn.initial_carries(batch_size))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def loss(self, model, batch, key, train):
    loss, metrics, _ = self.carried_loss(model, batch, None, key, train)
    return loss, metrics

  def carried_loss(self, model, batch, carry, key, train):
    tokens_BxT1 = batch['tokens']
    inputs_BxT, targets_BxT = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
    logits_BxTxV, carry = model(inputs_BxT, carry)
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
    loss = base.masked_mean(nll_BxT.mean(axis=-1), batch)
    accuracy = base.masked_mean(
      (logits_BxTxV.argmax(-1) == targets_BxT).mean(axis=-1, dtype=jnp.float32), batch
    )
    metrics = {'loss': loss, 'bits_per_char': loss / math.log(2), 'accuracy': accuracy}
    return loss, metrics, carry

  def sample_text(
    self,
    model,
    tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
  ) -> str:
    """`jdl sample` for a recurrent model: the prompt is read once, then one character per step
    with the recurrent state carried (a recurrent network's "cache" is its state)."""
    return sampling.sample_text(
      model,
      tokenizer,
      prompt,
      max_new_tokens=max_new_tokens,
      temperature=temperature,
      top_k=top_k,
      top_p=top_p,
      seed=seed,
      prefill=sampling.recurrent_prefill,
      step=sampling.recurrent_step,
    )

  def report(self, plan, state, history, workdir, data):
    """Bits per character on validation and test, and a sample, into results.json."""
    final = next((h for h in reversed(history) if 'validation_loss' in h), None)
    if final is None:
      return
    m = self.config.model
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    result = {'cell': m.cell, 'hidden_size': m.hidden_size, 'params': params, 'step': final['step']}
    unit = 'byte' if self.config.data.name == 'reviews' else 'char'
    for split in ('validation', 'test'):
      if f'{split}_loss' in final:
        result[f'{split}_bits_per_{unit}'] = final[f'{split}_loss'] / math.log(2)
        what = 'byte' if unit == 'byte' else 'character'
        print(f'{split}: {result[f"{split}_bits_per_{unit}"]:.3f} bits per {what}')
    model = plan.merge(jax.device_get(state.params), jax.device_get(state.model_state))
    prompt = self.config.get('sample_prompt', 'And God said')
    result['sample'] = self.sample_text(
      model, self.tokenizer(), prompt, max_new_tokens=200, temperature=0.8, top_k=40
    )
    print(f'\n--- sample (temperature 0.8, top-k 40) ---\n{result["sample"]}')
    (epath.Path(workdir) / 'results.json').write_text(json.dumps(result, indent=2) + '\n')
