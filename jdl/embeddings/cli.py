"""`jdl embed`: query and judge trained word vectors.

  jdl embed analogy   --workdir DIR king man woman    king - man + woman: the top-k answers
  jdl embed neighbors --workdir DIR WORD              nearest words by cosine similarity
  jdl embed evaluate  --workdir DIR                   analogy / WordSim-353 / SimLex-999
  jdl embed gensim    --config CFG --seed S --out DIR gensim trained as the config says
                                                      (--config.key=value overrides), judged
                                                      by the same evaluator
  jdl embed phrases   [--passes 2 --threshold 100]    the top phrases the corpus yields

A fastText run answers for words outside its vocabulary (from their character n-grams); other
models name the closest vocabulary words instead.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def _vectors(workdir):
  from jdl.embeddings.evaluate import WordVectors

  return WordVectors.from_workdir(workdir)


def _print_table(rows: list[tuple[str, float]]) -> None:
  for rank, (word, sim) in enumerate(rows, 1):
    print(f'{rank:3d}  {word:<24} {sim:.4f}')


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(prog='jdl embed', description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='command', required=True)
  a = sub.add_parser('analogy', help='a - b + c: `king man woman` asks for queen')
  a.add_argument('--workdir', required=True)
  a.add_argument('words', nargs=3, metavar='WORD')
  a.add_argument('--top', type=int, default=10)
  n = sub.add_parser('neighbors', help='nearest words of a word')
  n.add_argument('--workdir', required=True)
  n.add_argument('word')
  n.add_argument('--top', type=int, default=10)
  e = sub.add_parser('evaluate', help="a run's analogy accuracy and similarity correlations")
  e.add_argument('--workdir', required=True)
  e.add_argument('--restrict-vocab', type=int, default=30_000)
  g = sub.add_parser('gensim', help='train gensim as a config says and evaluate it')
  g.add_argument('--config', required=True, help='experiments/embeddings/<name>.py[:variant]')
  g.add_argument('--seed', type=int, default=1)
  g.add_argument('--out', required=True, help='folder for vectors.bin and evaluation.json')
  g.add_argument('--restrict-vocab', type=int, default=30_000)
  ph = sub.add_parser('phrases', help='the top phrases of the corpus (word2phrase scoring)')
  ph.add_argument('--passes', type=int, default=2)
  ph.add_argument('--threshold', type=float, default=100.0)
  ph.add_argument('--delta', type=float, default=5.0)
  ph.add_argument('--top', type=int, default=30)
  args, rest = p.parse_known_args(argv)
  args.overrides = rest
  if rest and args.command != 'gensim':
    p.error(f'unrecognized arguments: {" ".join(rest)}')
  from jdl.embeddings.evaluate import UnknownWord

  try:
    return _run(args)
  except UnknownWord as err:
    print(f'jdl embed: {err}', file=sys.stderr)
    return 2


def _run(args) -> int:
  from jdl.embeddings import evaluate as ev

  if args.command == 'analogy':
    vectors = _vectors(args.workdir)
    a, b, c = args.words
    print(f'# {a} - {b} + {c} ({vectors.name}, {len(vectors.words):,} words; cosine)')
    _print_table(vectors.analogy(b, a, c, args.top))
  elif args.command == 'neighbors':
    vectors = _vectors(args.workdir)
    known = args.word in vectors.index
    note = '' if known else ' (not in the vocabulary: from its character n-grams)'
    print(f'# nearest to {args.word}{note} ({vectors.name}; cosine)')
    _print_table(vectors.nearest(vectors.vector(args.word), args.top, {args.word}))
  elif args.command == 'evaluate':
    result = ev.evaluate_workdir(args.workdir, args.restrict_vocab)
    print(ev.summary(result))
  elif args.command == 'gensim':
    from jdl import config as config_lib
    from jdl.embeddings import peer_gensim

    config = config_lib.load(args.config)
    if leftover := config_lib.apply_overrides(config, args.overrides):
      raise SystemExit(f'jdl embed gensim: unrecognized arguments: {" ".join(leftover)}')
    vectors, seconds = peer_gensim.train(config, args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = ev.evaluate(vectors, out / 'vectors.bin', args.restrict_vocab)
    result.update(seed=args.seed, seconds=seconds)
    (out / 'evaluation.json').write_text(json.dumps(result, indent=2) + '\n')
    print(ev.summary(result) + f'; trained in {seconds:.0f} s')
  elif args.command == 'phrases':
    from jdl.data import words

    corpus = words.full_corpus()
    _, found = words.phrases(corpus, args.passes, args.threshold, args.delta)
    print(f'# {len(found):,} phrases in {args.passes} passes (threshold {args.threshold:g}, halved')
    print(f'# each pass; delta {args.delta:g}); by score')
    for phrase, score, count in found[: args.top]:
      print(f'{phrase:<32} score {score:10.1f}  count {count:,}')
  return 0
