"""Translating many sentences, corpus BLEU and chrF (sacrebleu), and `jdl translate`.

Sentences are decoded in batches of similar length (sorted by source length), padded to a few
fixed shapes so that the compiled decoder is reused.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from jdl.models import decoding as decode


def translate(
  model,
  tokenizer,
  sentences: list[str],
  *,
  beam_size: int = 4,
  length_penalty: float = 0.6,
  max_extra_tokens: int = 16,
  batch_size: int = 64,
) -> list[str]:
  """Translations of `sentences`, in order. `beam_size` 0 is greedy; at most the source length
  plus `max_extra_tokens` (rounded up to the shape bucket) tokens are generated."""
  if not sentences:
    return []
  ids = tokenizer.encode_batch(sentences)
  limit = model.cfg.max_len - max_extra_tokens - 1
  ids = [x[:limit] for x in ids]
  order = np.argsort([len(x) for x in ids], kind='stable')
  out = [''] * len(sentences)
  for start in range(0, len(order), batch_size):
    chunk = order[start : start + batch_size]
    src_BxS = decode.pad_batch([ids[i] for i in chunk], rows=min(batch_size, len(order)))
    max_len = min(src_BxS.shape[1] + max_extra_tokens, model.cfg.max_len - 1)
    tokens_BxL = np.asarray(
      decode.decode(model, src_BxS, max_len, beam_size=beam_size, alpha=length_penalty)
    )
    for row, i in enumerate(chunk):
      out[i] = tokenizer.decode(tokens_BxL[row])
  return out


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
  import sacrebleu

  return {
    'bleu': sacrebleu.corpus_bleu(hypotheses, [references]).score,
    'chrf': sacrebleu.corpus_chrf(hypotheses, [references]).score,
  }


def score(model, tokenizer, sources: list[str], references: list[str], decode_config) -> dict:
  """Corpus BLEU and chrF of the model's translations of `sources`, and a few examples."""
  hypotheses = translate(
    model,
    tokenizer,
    sources,
    beam_size=decode_config.beam_size,
    length_penalty=decode_config.length_penalty,
    max_extra_tokens=decode_config.max_extra_tokens,
  )
  return {
    **corpus_scores(hypotheses, references),
    'sentences': len(sources),
    'beam_size': decode_config.beam_size,
    'length_penalty': decode_config.length_penalty,
    'examples': list(zip(sources[:10], hypotheses[:10], references[:10])),
  }


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(
    prog='jdl translate', description='translate sentences with a trained Transformer'
  )
  p.add_argument('sentences', nargs='*')
  p.add_argument(
    '--test',
    action='store_true',
    help="score the run's held-out test set (corpus BLEU and chrF) instead",
  )
  p.add_argument('--workdir', required=True, help='a run folder of `jdl train`')
  p.add_argument('--beam-size', type=int, default=None, help="0: greedy (default: the run's)")
  p.add_argument('--length-penalty', type=float, default=None)
  args = p.parse_args(argv)
  from jdl.gpt.sample import load_model  # config.json + newest checkpoint, on one device

  task, model, step = load_model(pathlib.Path(args.workdir))
  cfg = task.config.decode
  beam = cfg.beam_size if args.beam_size is None else args.beam_size
  alpha = cfg.length_penalty if args.length_penalty is None else args.length_penalty
  print(
    f'# {args.workdir}, step {step}, {task.config.data.kwargs.direction}, '
    f'{"greedy" if beam == 0 else f"beam {beam}, length penalty {alpha}"}',
    file=sys.stderr,
  )
  if args.test:
    sources, references = task.data_module().test_set(task.config.data.kwargs)
    cfg.update(beam_size=beam, length_penalty=alpha)
    scores = score(model, task.tokenizer(), sources, references, cfg)
    print(json.dumps({k: v for k, v in scores.items() if k != 'examples'}))
    return 0
  if not args.sentences:
    p.error('give sentences to translate, or --test')
  for line in translate(
    model,
    task.tokenizer(),
    args.sentences,
    beam_size=beam,
    length_penalty=alpha,
    max_extra_tokens=cfg.max_extra_tokens,
  ):
    print(line)
  return 0
