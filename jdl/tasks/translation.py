"""Translation with an encoder-decoder: the Transformer (jdl.models.transformer) or the recurrent
encoder-decoders with and without attention (jdl.models.seq2seq); teacher-forced cross-entropy
with label smoothing over the target tokens of (packed) rows.

    loss = (1 - eps) * NLL(y) + eps * mean_v(-log p_v)      (eps = label_smoothing)

summed over the real target tokens of the batch and divided by their number, as the paper's
per-token loss. Metrics: `loss` (smoothed), `nll` (plain cross-entropy, nats/token) and token
`accuracy`. After training, `report` translates the test set (the config's decoding) and prints
corpus BLEU and chrF (sacrebleu), writing them to results.json.

One task serves all three models: the same data, tokenizer, decoding (jdl.models.decoding, greedy
or beam search with cached state) and scoring. All three read packed rows (several pairs a row,
told apart by segment ids; the recurrent models restart their recurrences at every pair) or one
pair a row (`data.kwargs.packed=False` of 'bible_pairs'); a pair's loss is the same either way.

Config fields (experiments/transformer/*.py): model.name 'transformer' with model.{vocab_size,
d_model, n_heads, d_ff, n_encoder_layers, n_decoder_layers, dropout, pre_ln, max_len}, or
'seq2seq' with jdl.models.seq2seq.Seq2SeqConfig's fields; label_smoothing; data.name 'ding' (the
offline dictionary pairs, jdl.data.ding), 'bible_pairs' (Spanish-English verses,
jdl.data.bible_pairs) or 'wmt14' (tfds, jdl.data.wmt14) with data.kwargs; decode.{beam_size (0:
greedy), length_penalty, max_extra_tokens, test_sentences (how many test sentences the report
translates: -1 all, 0 none)}. The report scores every held-out set the data module has (the
Bible's random verses `test` and its held-out book `book`) and keeps each sentence's translation
in results.json (for `jdl figures translation_length`).
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
from etils import epath
from flax import nnx

from jdl.config import ConfigError
from jdl.models import decoding
from jdl.models.seq2seq import Seq2Seq, Seq2SeqConfig
from jdl.models.transformer import Transformer, TransformerConfig
from jdl.train import task as base

DATA = ('ding', 'bible_pairs', 'wmt14')


class Task(base.Task):
  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.name not in ('transformer', 'seq2seq'):
      raise ConfigError(
        f"config.model.name: the translation task has models 'transformer' and 'seq2seq', not "
        f'{m.name!r}'
      )
    if m.name == 'transformer' and m.d_model % m.n_heads:
      raise ConfigError(f'config.model.d_model {m.d_model} is not divisible by n_heads {m.n_heads}')
    if config.data.name not in DATA:
      raise ConfigError(f'config.data.name: one of {DATA}, not {config.data.name!r}')
    if config.decode.beam_size < 0:
      raise ConfigError(
        f'config.decode.beam_size: 0 (greedy) or more, not {config.decode.beam_size}'
      )
    if config.decode.test_sentences < -1:
      raise ConfigError(
        f'config.decode.test_sentences: -1 (all), 0 (none) or a count, not '
        f'{config.decode.test_sentences}'
      )
    self.transformer = m.name == 'transformer'
    make = TransformerConfig if self.transformer else Seq2SeqConfig
    self.model_config = make.from_config(m, config.dtype)
    self.label_smoothing = config.label_smoothing

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    if not self.transformer:
      return Seq2Seq(self.model_config, rngs=rngs)
    return Transformer(self.model_config, sharding_rules=self.config.sharding_rules, rngs=rngs)

  def data_module(self):
    import importlib

    return importlib.import_module(f'jdl.data.{self.config.data.name}')

  def tokenizer(self):
    kwargs = self.config.data.kwargs
    if self.config.data.name == 'bible_pairs':
      return self.data_module().tokenizer(
        kwargs.vocab_size, kwargs.seed, kwargs.get('held_out_book', 'Acts')
      )
    return self.data_module().tokenizer(kwargs.vocab_size, kwargs.seed)

  def held_out_sets(self) -> dict:
    """{split: (sources, references)} the report translates: 'test', and 'book' where the data
    has a held-out book."""
    data, kwargs = self.data_module(), self.config.data.kwargs
    sets = {'test': data.test_set(kwargs)}
    if hasattr(data, 'book_set'):
      sets['book'] = data.book_set(kwargs)
    return sets

  def eval_hooks(self) -> tuple:
    """With `decode.validation_sentences` N > 0: greedy BLEU and chrF of the first N validation
    sentences at every evaluation (`validation_bleu`, `validation_chrf`), the learning curve
    that `jdl figures bleu_time` draws."""
    n = self.config.decode.get('validation_sentences', 0)
    if n <= 0:
      return ()
    sources, references = self.data_module().validation_set(self.config.data.kwargs)
    return (bleu_hook('validation', sources[:n], references[:n], self.config.decode),)

  def load_data(self) -> base.Splits:
    kwargs = self.config.data.kwargs.to_dict()
    n_vocab = self.tokenizer().n_vocab
    if n_vocab > self.model_config.vocab_size:
      raise ConfigError(
        f'config.model.vocab_size {self.model_config.vocab_size} is smaller '
        f"than the tokenizer's {n_vocab} ids"
      )
    if self.transformer and kwargs['length'] > self.model_config.max_len:
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
    """Corpus BLEU and chrF of (the first `decode.test_sentences` of) the test set (and of the
    held-out book, where there is one), decoded as the config says; none when
    `decode.test_sentences` is 0."""
    decode = self.config.decode
    if decode.test_sentences == 0:
      return
    model = plan.merge(jax.device_get(state.params), jax.device_get(state.model_state))
    final = next((h for h in reversed(history) if 'validation_loss' in h), {})
    result = {
      'step': history[-1]['step'] if history else 0,
      'direction': self.config.data.kwargs.get('direction', 'de-en'),
      'validation_nll': final.get('validation_nll'),
      'test_nll': final.get('test_nll'),
    }
    for split, (sources, references) in self.held_out_sets().items():
      if decode.test_sentences > 0:
        n = decode.test_sentences
        sources, references = sources[:n], references[:n]
      scores = score(
        model,
        self.tokenizer(),
        sources,
        references,
        beam_size=decode.beam_size,
        length_penalty=decode.length_penalty,
        max_extra_tokens=decode.max_extra_tokens,
      )
      print_scores(split, scores)
      if split == 'test':  # the keys results.json has always had
        result.update(scores)
      else:
        result[split] = scores
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

    if not self.transformer:
      return super().flops_per_step(plan, batch)
    rows, src_len = batch['src'].shape
    tgt_len = batch['tgt_in'].shape[1]
    return 3 * rows * cost.transformer_forward_flops(self.model_config, src_len, tgt_len)

  def batch_units(self, batch) -> tuple[str, int]:
    rows, tgt_len = batch['tgt_in'].shape
    return 'target tokens', rows * tgt_len


RESULTS = 'results.json'


def bleu_hook(split: str, sources: list[str], references: list[str], decode_config):
  """An evaluation hook of the loop: greedy BLEU and chrF of `sources` at each evaluation, and
  the seconds the translation took (`<split>_bleu`, `<split>_chrf`, `<split>_translate_seconds`)."""

  def hook(trainer, step, state) -> dict[str, float]:
    start = time.perf_counter()
    hypotheses = decoding.translate(
      trainer.model(state),
      trainer.task.tokenizer(),
      sources,
      beam_size=0,
      max_extra_tokens=decode_config.max_extra_tokens,
    )
    return bleu_metrics(split, hypotheses, references, time.perf_counter() - start)

  return hook


def bleu_metrics(split: str, hypotheses, references, seconds: float) -> dict[str, float]:
  """The metrics of one evaluation's translations, as both frameworks of the race record them."""
  scores = corpus_scores(hypotheses, references)
  return {
    f'{split}_bleu': scores['bleu'],
    f'{split}_chrf': scores['chrf'],
    f'{split}_translate_seconds': seconds,
  }


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
  """sacrebleu's corpus BLEU and chrF (default settings), and their signatures."""
  from sacrebleu.metrics import BLEU, CHRF

  bleu, chrf = BLEU(), CHRF()
  return {
    'bleu': bleu.corpus_score(hypotheses, [references]).score,
    'chrf': chrf.corpus_score(hypotheses, [references]).score,
    'bleu_signature': str(bleu.get_signature()),
    'chrf_signature': str(chrf.get_signature()),
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
    'hypotheses': hypotheses,
  }


def print_scores(split: str, scores: dict) -> None:
  how = 'greedy' if scores['beam_size'] == 0 else f'beam {scores["beam_size"]}'
  print(
    f'{split} ({scores["sentences"]} sentences, {how}): BLEU {scores["bleu"]:.2f}, '
    f'chrF {scores["chrf"]:.2f}'
  )
  if 'bleu_signature' in scores:
    print(f'  sacrebleu: BLEU {scores["bleu_signature"]}; chrF {scores["chrf_signature"]}')
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
