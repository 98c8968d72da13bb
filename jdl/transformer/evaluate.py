"""`jdl translate`, and the race's evaluation hook: validation BLEU at every evaluation.

The batched decoding is `jdl.models.decoding.translate`; scores and results.json are the
translation task's (`jdl.tasks.translation`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from jdl.models.decoding import translate
from jdl.tasks.translation import corpus_scores, score


def bleu_hook(split: str, sources: list[str], references: list[str], max_extra_tokens: int):
  """An evaluation hook of the loop: greedy BLEU and chrF of `sources` at each evaluation, and
  the seconds the translation took (`<split>_bleu`, `<split>_chrf`, `<split>_translate_seconds`)."""

  def hook(trainer, step, state) -> dict[str, float]:
    start = time.perf_counter()
    hypotheses = translate(
      trainer.model(state),
      trainer.task.tokenizer(),
      sources,
      beam_size=0,
      max_extra_tokens=max_extra_tokens,
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
  if not (args.test or args.sentences):
    p.error('give sentences to translate, or --test')
  from jdl.train.errors import UsageError
  from jdl.train.run import load_config, load_run

  config = load_config(args.workdir)  # before the checkpoint is read: a run of another task stops
  if 'decode' not in config:
    raise UsageError(
      f'{args.workdir} is a {config.task} run, not a translation model: jdl translate reads runs '
      'of experiments/transformer/'
    )
  run = load_run(args.workdir, config=config)
  decode = run.config.decode
  options = dict(
    beam_size=decode.beam_size if args.beam_size is None else args.beam_size,
    length_penalty=decode.length_penalty if args.length_penalty is None else args.length_penalty,
    max_extra_tokens=decode.max_extra_tokens,
  )
  print(
    f'# {args.workdir}, step {run.step}, {run.config.data.kwargs.direction}, '
    + (
      'greedy'
      if options['beam_size'] == 0
      else f'beam {options["beam_size"]}, length penalty {options["length_penalty"]}'
    ),
    file=sys.stderr,
  )
  tokenizer = run.task.tokenizer()
  if args.test:
    sources, references = run.task.data_module().test_set(run.config.data.kwargs)
    scores = score(run.model, tokenizer, sources, references, **options)
    print(json.dumps({k: v for k, v in scores.items() if k != 'examples'}))
    return 0
  for line in translate(run.model, tokenizer, args.sentences, **options):
    print(line)
  return 0
