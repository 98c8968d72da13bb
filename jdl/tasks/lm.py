"""Language modelling: a decoder-only GPT (jdl.models.gpt) predicts every next token of its
rows; the loss is the mean cross-entropy in nats per token, perplexity = exp(loss).

Config fields (experiments/gpt/*.py): model.{vocab_size, context, n_layer, n_head, d_model,
d_ff, dropout, post_ln, scan_layers, remat}; data.name = 'text' with data.kwargs for
jdl.data.text.load (corpora with mixture weights, tokenizer, context, train_rows, eval_rows),
'webtext' for jdl.data.webtext.load (documents of a tfds corpus such as C4, packed to the
context as they are read), or 'reviews' for jdl.data.reviews.load (UTF-8 bytes of the Pang & Lee
movie reviews: the policy that learning from preferences starts from).
A config without data (the published GPT shapes) can still be counted (`jdl params`) and
estimated (`jdl compute`).
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import optax
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.models.gpt import GPT, GPTConfig
from jdl.train import task as base


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name != 'gpt':
      raise ConfigError(f"config.model.name: the lm task has model 'gpt', not {m.name!r}")
    if m.d_model % m.n_head:
      raise ConfigError(f'config.model.d_model {m.d_model} is not divisible by n_head {m.n_head}')
    self.gpt_config = GPTConfig.from_config(m, config.dtype)

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return GPT(self.gpt_config, sharding_rules=self.config.sharding_rules, rngs=rngs)

  def tokenizer(self):
    if self.config.data.name == 'reviews':
      from jdl.data import reviews

      return reviews.ByteTokenizer()
    from jdl.data import text

    return text.make_tokenizer(self.config.data.kwargs.tokenizer)

  def load_data(self) -> base.Splits:
    name = self.config.data.name
    if name not in ('text', 'webtext', 'reviews'):
      raise ConfigError(
        f"config.data.name: the lm task reads 'text', 'webtext' or 'reviews', not "
        f'{name!r} (this config only describes a shape)'
      )
    from jdl.data import reviews, text, webtext

    kwargs = self.config.data.kwargs.to_dict()
    if name == 'text':
      kwargs.setdefault('seed', self.config.seed)
      splits = text.load(**kwargs)
    elif name == 'reviews':  # bytes of the Pang & Lee reviews, windows of the training reviews
      splits = reviews.load(**kwargs)
    else:  # the training documents are shuffled by the pipeline, from config.seed
      splits = webtext.load(**kwargs)
    n_vocab = self.tokenizer().n_vocab
    if n_vocab > self.gpt_config.vocab_size:
      raise ConfigError(
        f'config.model.vocab_size {self.gpt_config.vocab_size} is smaller than '
        f"the tokenizer's {n_vocab} ids"
      )
    if kwargs['context'] > self.gpt_config.context:
      raise ConfigError('config.data.kwargs.context exceeds config.model.context')
    return splits

  def loss(self, model, batch, key, train):
    tokens_BxT1 = batch['tokens']
    inputs_BxT, targets_BxT = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
    key = key if (train and self.gpt_config.dropout > 0) else None
    logits_BxTxV = model(inputs_BxT, dropout_key=key).astype(jnp.float32)
    nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
    loss = base.masked_mean(nll_BxT.mean(axis=-1), batch)
    accuracy = base.masked_mean(
      (logits_BxTxV.argmax(-1) == targets_BxT).mean(axis=-1, dtype=jnp.float32), batch
    )
    return loss, {'loss': loss, 'accuracy': accuracy}

  def report(self, plan, state, history, workdir, data):
    """Validation/test loss and perplexity, and a few samples from the trained model."""
    final = next((h for h in reversed(history) if 'validation_loss' in h), None)
    if final is None:
      return
    result = {'step': final['step']}
    for split in ('validation', 'test'):
      if f'{split}_loss' in final:
        loss = final[f'{split}_loss']
        result[f'{split}_loss'] = loss
        result[f'{split}_perplexity'] = math.exp(loss)
        print(f'{split}: loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f}')
    samples = []
    prompts = self.config.get('sample_prompts', ('And God said',))
    from jdl.models import sampling as sample

    model = plan.merge(jax.device_get(state.params), jax.device_get(state.model_state))
    tok = self.tokenizer()
    for i, prompt in enumerate(prompts):
      text = sample.sample_text(
        model, tok, prompt, max_new_tokens=200, temperature=0.8, top_k=40, seed=i
      )
      samples.append(text)
      print(f'\n--- sample {i} (temperature 0.8, top-k 40) ---\n{text}')
    result['samples'] = samples
    (epath.Path(workdir) / 'results.json').write_text(json.dumps(result, indent=2) + '\n')

  def batch_spec(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """A shape-only config (the published GPTs) has no data: rows of `context + 1` tokens."""
    if self.config.data.name == 'text':
      return super().batch_spec(batch_size)
    length = self.config.data.kwargs.context + 1
    return {'tokens': jax.ShapeDtypeStruct((batch_size, length), jnp.int32)}

  def flops_per_step(self, plan, batch) -> float:
    """6ND with attention: 3 x the per-layer forward FLOPs of every predicted token."""
    from jdl.train import cost

    rows, length = batch['tokens'].shape
    tokens = rows * (length - 1)
    return 3 * cost.forward_flops_per_token(self.gpt_config, length - 1) * tokens

  def batch_units(self, batch) -> tuple[str, int]:
    rows, length = batch['tokens'].shape
    return 'tokens', rows * (length - 1)
