"""`jdl translate`.

The batched decoding is `jdl.models.decoding.translate`; scores and results.json are the
translation task's (`jdl.tasks.translation`). It serves every model of that task (the
Transformer and the recurrent encoder-decoders).

Input as it comes: no language check and no claim about the input's language (a sentence in
another language is translated all the same). An empty (or blank) line gives an empty line. An
input longer than the model's source limit (`max_len - max_extra_tokens - 1` subword tokens) is
translated in pieces, cut at sentence ends (. ? ! ; :), else at commas, else between words,
and the pieces' translations joined; stderr says so. Only a single word longer than the limit
is refused, with the limit: nothing is cut silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from jdl.models.decoding import translate
from jdl.tasks.translation import score


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(
    prog='jdl translate',
    description='translate sentences with a trained translation run (Transformer or RNN)',
  )
  p.add_argument('sentences', nargs='*', help="sentences to translate; '-': one a line from stdin")
  p.add_argument(
    '--test',
    action='store_true',
    help="score the run's held-out test sets (corpus BLEU and chrF, a JSON line each) instead",
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
  if args.test:  # every held-out set: 'test', and 'book' where the data holds a book out
    for split, (sources, references) in run.task.held_out_sets().items():
      scores = score(run.model, tokenizer, sources, references, **options)
      kept = {k: v for k, v in scores.items() if k not in ('examples', 'hypotheses')}
      print(json.dumps({'split': split, **kept}), flush=True)
    return 0
  sentences = sys.stdin.read().splitlines() if args.sentences == ['-'] else args.sentences
  for line in translate_inputs(run.model, tokenizer, sentences, **options):
    print(line)
  return 0


_CUTS = (re.compile(r'(?<=[.?!;:])\s+'), re.compile(r'(?<=,)\s+'), re.compile(r'\s+'))


def pieces(text: str, fits, level: int = 0) -> list[str]:
  """`text` cut into consecutive pieces that each `fits`: at sentence ends first, then at commas,
  then between words; adjacent parts are joined again while they fit. A single word that does not
  fit is a UsageError."""
  from jdl.train.errors import UsageError

  if fits(text):
    return [text]
  if level == len(_CUTS):
    raise UsageError(f'the word {text[:40]!r}... alone exceeds the limit: it cannot be translated')
  out = []
  for part in _CUTS[level].split(text):
    for piece in pieces(part, fits, level + 1) if not fits(part) else [part]:
      if out and fits(f'{out[-1]} {piece}'):
        out[-1] = f'{out[-1]} {piece}'
      else:
        out.append(piece)
  return out


def translate_inputs(model, tokenizer, sentences: list[str], *, max_extra_tokens: int, **options):
  """`decoding.translate` for user input: blank lines stay empty, too-long lines are translated
  in pieces (said on stderr), one word over the limit is refused with the limit."""
  from jdl.train.errors import UsageError

  limit = model.cfg.max_len - max_extra_tokens - 1
  fits = lambda text: len(tokenizer.encode(text)) <= limit
  jobs = []  # (line index, pieces)
  for i, sentence in enumerate(sentences):
    if not sentence.strip():
      continue
    try:
      parts = pieces(' '.join(sentence.split()), fits)
    except UsageError as e:
      raise UsageError(
        f'input {i + 1}: {e} (the model reads at most {limit} subword tokens: its max_len '
        f'{model.cfg.max_len} less max_extra_tokens {max_extra_tokens} and 1)'
      ) from None
    if len(parts) > 1:
      print(
        f"# input {i + 1} is longer than the model's {limit} subword tokens: translated in "
        f'{len(parts)} pieces',
        file=sys.stderr,
      )
    jobs.append((i, parts))
  flat = [part for _, parts in jobs for part in parts]
  translated = iter(translate(model, tokenizer, flat, max_extra_tokens=max_extra_tokens, **options))
  out = [''] * len(sentences)
  for i, parts in jobs:
    out[i] = ' '.join(next(translated) for _ in parts)
  return out
