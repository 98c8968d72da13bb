"""Translation with the encoder-decoder Transformer (jdl.models.transformer): teacher-forced
cross-entropy with label smoothing over the target tokens of packed rows.

    loss = (1 - eps) * NLL(y) + eps * mean_v(-log p_v)      (eps = label_smoothing)

summed over the real target tokens of the batch and divided by their number, as the paper's
per-token loss. Metrics: `loss` (smoothed), `nll` (plain cross-entropy, nats/token) and token
`accuracy`. After training, `report` translates the test set (the config's decoding) and prints
corpus BLEU and chrF (sacrebleu), writing them to results.json.

Config fields (experiments/transformer/*.py): model.{vocab_size, d_model, n_heads, d_ff,
n_encoder_layers, n_decoder_layers, dropout, pre_ln, max_len}; label_smoothing; data.name
'ding' (the offline dictionary pairs, jdl.data.ding) or 'wmt14' (tfds, jdl.data.wmt14)
with data.kwargs; decode.{beam_size (0: greedy), length_penalty, max_extra_tokens,
test_sentences (how many test sentences the report translates: -1 all, 0 none)}.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.models import decoding
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
    if config.decode.beam_size < 0:
      raise ConfigError(
        f'config.decode.beam_size: 0 (greedy) or more, not {config.decode.beam_size}'
      )
    if config.decode.test_sentences < -1:
      raise ConfigError(
        f'config.decode.test_sentences: -1 (all), 0 (none) or a count, not '
        f'{config.decode.test_sentences}'
      )
    self.model_config = TransformerConfig.from_config(m, config.dtype)
    self.label_smoothing = config.label_smoothing

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
    """Corpus BLEU and chrF of (the first `decode.test_sentences` of) the test set, decoded as
    the config says; none when `decode.test_sentences` is 0."""
    decode = self.config.decode
    if decode.test_sentences == 0:
      return
    model = plan.merge(jax.device_get(state.params), jax.device_get(state.model_state))
    sources, references = self.data_module().test_set(self.config.data.kwargs)
    if decode.test_sentences > 0:
      sources, references = sources[: decode.test_sentences], references[: decode.test_sentences]
    scores = score(
      model,
      self.tokenizer(),
      sources,
      references,
      beam_size=decode.beam_size,
      length_penalty=decode.length_penalty,
      max_extra_tokens=decode.max_extra_tokens,
    )
    final = next((h for h in reversed(history) if 'validation_loss' in h), {})
    result = {
      'step': history[-1]['step'] if history else 0,
      'direction': self.config.data.kwargs.get('direction', 'de-en'),
      'validation_nll': final.get('validation_nll'),
      'test_nll': final.get('test_nll'),
      **scores,
    }
    print_scores('test', scores)
    write_results(workdir, result)

  def batch_spec(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """WMT14 is remote: the rows jdl.data.wmt14 makes, `length` int32 tokens per field."""
    if self.config.data.name != 'wmt14':
      return super().batch_spec(batch_size)
    shape = (batch_size, self.config.data.kwargs.length)
    fields = ('src', 'src_segments', 'src_positions', 'tgt_in', 'tgt_out', 'tgt_segments')
    return {k: jax.ShapeDtypeStruct(shape, jnp.int32) for k in (*fields, 'tgt_positions')}

  def flops_per_step(self, plan, batch) -> float:
    """3 x the forward FLOPs of every row (jdl.train.cost.transformer_forward_flops), padded
    positions included: they are computed."""
    from jdl.train import cost

    rows, src_len = batch['src'].shape
    tgt_len = batch['tgt_in'].shape[1]
    return 3 * rows * cost.transformer_forward_flops(self.model_config, src_len, tgt_len)

  def batch_units(self, batch) -> tuple[str, int]:
    rows, tgt_len = batch['tgt_in'].shape
    return 'target tokens', rows * tgt_len


RESULTS = 'results.json'


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
  import sacrebleu

  return {
    'bleu': sacrebleu.corpus_bleu(hypotheses, [references]).score,
    'chrf': sacrebleu.corpus_chrf(hypotheses, [references]).score,
  }


def score(
  model,
  tokenizer,
  sources: list[str],
  references: list[str],
  *,
  beam_size: int,
  length_penalty: float,
  max_extra_tokens: int,
) -> dict:
  """Corpus BLEU and chrF of the model's translations of `sources`, and a few examples."""
  hypotheses = decoding.translate(
    model,
    tokenizer,
    sources,
    beam_size=beam_size,
    length_penalty=length_penalty,
    max_extra_tokens=max_extra_tokens,
  )
  return test_results(hypotheses, sources, references, beam_size, length_penalty)


def test_results(hypotheses, sources, references, beam_size: int, length_penalty: float) -> dict:
  """What results.json holds of a translated split: scores, decoding and examples."""
  return {
    **corpus_scores(hypotheses, references),
    'sentences': len(sources),
    'beam_size': beam_size,
    'length_penalty': length_penalty,
    'examples': list(zip(sources[:10], hypotheses[:10], references[:10])),
  }


def print_scores(split: str, scores: dict) -> None:
  how = 'greedy' if scores['beam_size'] == 0 else f'beam {scores["beam_size"]}'
  print(
    f'{split} ({scores["sentences"]} sentences, {how}): BLEU {scores["bleu"]:.2f}, '
    f'chrF {scores["chrf"]:.2f}'
  )
  for src, hyp, ref in scores['examples'][:3]:
    print(f'  {src}\n    -> {hyp}\n    (reference: {ref})')


def write_results(workdir, result: dict) -> None:
  """results.json of a run: the test scores written once training ends."""
  (epath.Path(workdir) / RESULTS).write_text(
    json.dumps(result, indent=2, ensure_ascii=False) + '\n'
  )


def read_results(workdir) -> dict | None:
  """A run's results.json; None before its training ends."""
  path = epath.Path(workdir) / RESULTS
  return json.loads(path.read_text()) if path.exists() else None
