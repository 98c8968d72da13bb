"""Translation with the encoder-decoder Transformer (jdl.models.transformer): teacher-forced
cross-entropy with label smoothing over the target tokens of packed rows.

    loss = (1 - eps) * NLL(y) + eps * mean_v(-log p_v)      (eps = model.label_smoothing)

summed over the real target tokens of the batch and divided by their number, as the paper's
per-token loss. Metrics: `loss` (smoothed), `nll` (plain cross-entropy, nats/token) and token
`accuracy`. After training, `report` translates the test set (beam search) and prints corpus
BLEU and chrF (sacrebleu).

Config fields (experiments/transformer/*.py): model.{vocab_size, d_model, n_heads, d_ff,
n_encoder_layers, n_decoder_layers, dropout, pre_ln, max_len, label_smoothing}; data.name
'ding' (the offline dictionary pairs, jdl.data.ding) or 'wmt14' (tfds, jdl.data.wmt14)
with data.kwargs; decode.{beam_size (0: greedy, -1: no test translation), length_penalty,
max_extra_tokens, test_sentences (0: all)}.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
from flax import nnx

from jdl.config import ConfigError
from jdl.models.transformer import Transformer, TransformerConfig
from jdl.train import task as base


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name != 'transformer':
      raise ConfigError(
        f"config.model.name: the translation task has model 'transformer', not {m.name!r}"
      )
    if m.d_model % m.n_heads:
      raise ConfigError(f'config.model.d_model {m.d_model} is not divisible by n_heads {m.n_heads}')
    if config.data.name not in ('ding', 'wmt14'):
      raise ConfigError(f"config.data.name: 'ding' or 'wmt14', not {config.data.name!r}")
    self.model_config = TransformerConfig.from_config(m, config.dtype)
    self.label_smoothing = m.label_smoothing

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return Transformer(self.model_config, sharding_rules=self.config.sharding_rules, rngs=rngs)

  def data_module(self):
    if self.config.data.name == 'ding':
      from jdl.data import ding as data

      return data
    from jdl.data import wmt14

    return wmt14

  def tokenizer(self):
    kwargs = self.config.data.kwargs
    return self.data_module().tokenizer(kwargs.vocab_size, kwargs.seed)

  def load_data(self) -> base.Splits:
    kwargs = self.config.data.kwargs.to_dict()
    n_vocab = self.tokenizer().n_vocab
    if n_vocab > self.model_config.vocab_size:
      raise ConfigError(
        f'config.model.vocab_size {self.model_config.vocab_size} is smaller '
        f"than the tokenizer's {n_vocab} ids"
      )
    if kwargs['length'] > self.model_config.max_len:
      raise ConfigError('config.data.kwargs.length exceeds config.model.max_len')
    return self.data_module().load(**kwargs)

  def loss(self, model, batch, key, train):
    key = key if (train and self.model_config.dropout > 0) else None
    logits_BxTxV = model(
      batch['src'],
      batch['tgt_in'],
      src_segments_BxS=batch['src_segments'],
      tgt_segments_BxT=batch['tgt_segments'],
      src_positions_BxS=batch['src_positions'],
      tgt_positions_BxT=batch['tgt_positions'],
      dropout_key=key,
    )
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
    targets_BxT = batch['tgt_out']
    # Smoothed targets as a dense distribution: (1 - eps) on the right token, eps / V on every
    # token. Written with a one-hot rather than a gather, its gradient is elementwise, where a
    # gather's is a scatter (slow on CPU).
    V, eps = logp_BxTxV.shape[-1], self.label_smoothing
    onehot_BxTxV = jax.nn.one_hot(targets_BxT, V, dtype=jnp.float32)
    smoothed_BxT = -(((1 - eps) * onehot_BxTxV + eps / V) * logp_BxTxV).sum(-1)
    nll_BxT = -(onehot_BxTxV * logp_BxTxV).sum(-1)
    weights_BxT = (batch['tgt_segments'] > 0).astype(jnp.float32)
    if 'mask' in batch:  # evaluation's padded rows
      weights_BxT = weights_BxT * batch['mask'][:, None]
    count = jnp.maximum(weights_BxT.sum(), 1.0)
    per_token = lambda v: (v * weights_BxT).sum() / count
    # Right when the target is (one of) the most likely: a max, cheaper than an argmax.
    correct = (-nll_BxT >= logp_BxTxV.max(-1)).astype(jnp.float32)
    loss = per_token(smoothed_BxT)
    return loss, {'loss': loss, 'nll': per_token(nll_BxT), 'accuracy': per_token(correct)}

  def report(self, plan, state, history, workdir, data):
    """Corpus BLEU and chrF of the test set, decoded with the config's beam search."""
    from jdl.transformer import evaluate

    if self.config.decode.beam_size < 0:  # told not to translate (the sharding tests)
      return
    model = plan.merge(jax.device_get(state.params), jax.device_get(state.model_state))
    sources, references = self.data_module().test_set(self.config.data.kwargs)
    if self.config.decode.test_sentences:
      n = self.config.decode.test_sentences
      sources, references = sources[:n], references[:n]
    scores = evaluate.score(model, self.tokenizer(), sources, references, self.config.decode)
    final = next((h for h in reversed(history) if 'validation_loss' in h), {})
    result = {
      'step': history[-1]['step'] if history else 0,
      'direction': self.config.data.kwargs.get('direction', 'de-en'),
      'validation_nll': final.get('validation_nll'),
      'test_nll': final.get('test_nll'),
      **scores,
    }
    print(
      f'test ({len(sources)} sentences, beam {self.config.decode.beam_size}): '
      f'BLEU {scores["bleu"]:.2f}, chrF {scores["chrf"]:.2f}'
    )
    for src, hyp, ref in scores['examples'][:3]:
      print(f'  {src}\n    -> {hyp}\n    (reference: {ref})')
    (pathlib.Path(workdir) / 'results.json').write_text(
      json.dumps(result, indent=2, ensure_ascii=False) + '\n'
    )
