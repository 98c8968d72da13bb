"""`jdl multimodal`: use a trained CLIP run (experiments/multimodal/clip_fmnist.py).

jdl multimodal search   --workdir DIR "a shoe for running"   the test images closest to the
                        [--top 32] [--out FILE.png]           text, as a PNG grid (default
                                                              DIR/search_<words>.png)
jdl multimodal evaluate --workdir DIR [--test-rows N]        zero-shot accuracy (held-out
                                                              classes, seen, all ten), chance
                                                              and the linear probe; writes
                                                              DIR/results.json
jdl multimodal summary  DIR [DIR ...]                        mean and spread over runs (seeds)
                                                              of their results.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

import numpy as np

from jdl.train.errors import UsageError


def load_clip_run(workdir: str):
  from jdl.train.run import load_config, load_run

  path = pathlib.Path(workdir)
  if not (path / 'config.json').is_file():
    raise UsageError(
      f'--workdir {workdir}: not a run folder (no config.json); train one with '
      '`jdl train --config experiments/multimodal/clip_fmnist.py --workdir DIR`'
    )
  config = load_config(workdir)
  if config.task != 'clip':
    raise UsageError(f"--workdir {workdir}: a run of task {config.task!r}, not 'clip'")
  return load_run(workdir)


def search(run, query: str, top: int, images: int = 10_000):
  """(indices of the `top` test images (of the first `images`) closest to `query`, their
  cosines, their labels)."""
  from jdl.data import descriptions, fashion_mnist
  from jdl.tasks import clip as task

  k = run.config.data.kwargs
  tokens = descriptions.encode(run.task.tokenizer(), [query], k.max_len)
  if not tokens.any():
    raise UsageError(f'the query {query!r} has no tokens')
  model = run.model
  model.eval()
  text = task.embed_texts(model, tokens)[0]
  x, labels = fashion_mnist.arrays('t10k')
  scores = task.embed_images(model, x[:images]) @ text
  best = np.argsort(-scores, kind='stable')[:top]
  return best, scores[best], labels[best]


def save_search_grid(run, query, best, scores, labels, path, n_images=10_000) -> None:
  from jdl import plots
  from jdl.data import descriptions, fashion_mnist

  images, _ = fashion_mnist.arrays('t10k')
  held = set(run.config.data.kwargs.held_out)
  columns = 8
  rows = -(-len(best) // columns)
  fig, axes = plots.pyplot().subplots(
    rows, columns, figsize=(columns * 1.1, rows * 1.25 + 0.5), squeeze=False
  )
  for ax in axes.flat:
    ax.axis('off')
  for ax, i, s, y in zip(axes.flat, best, scores, labels):
    plots.show(ax, images[i] / 255.0)
    name = descriptions.CLASSES[y] + (' *' if y in held else '')
    ax.set_title(f'{name}\n{s:.2f}', fontsize=7)
  fig.suptitle(
    f'"{query}": the top {len(best)} of {n_images:,} test images by cosine '
    '(* a class held out of training)',
    fontsize=9,
  )
  fig.tight_layout()
  plots.save(fig, path, dpi=110)


def summary(workdirs: list[str]) -> str:
  keys = ('zero_shot_held_out', 'zero_shot_seen', 'zero_shot_all', 'probe_held_out', 'probe_all')
  results = []
  for w in workdirs:
    path = pathlib.Path(w) / 'results.json'
    if not path.is_file():
      raise UsageError(f'{path}: missing (a finished run writes it; or `jdl multimodal evaluate`)')
    results.append(json.loads(path.read_text()))
  lines = [f'{len(results)} runs: mean +- standard deviation (min - max), test accuracy %']
  for key in keys:
    v = 100 * np.array([r[key] for r in results])
    lines.append(
      f'{key:20s} {v.mean():6.2f} +- {v.std(ddof=1) if len(v) > 1 else 0:5.2f} '
      f'({v.min():.2f} - {v.max():.2f})'
    )
  chance = results[0]
  lines.append(
    f'chance: held out {100 * chance["chance_held_out"]:.1f}, seen '
    f'{100 * chance["chance_seen"]:.1f}, all {100 * chance["chance_all"]:.1f}'
  )
  return '\n'.join(lines)


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(prog='jdl multimodal', description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='command', required=True)
  s = sub.add_parser('search', help='the test images closest to a text, as a PNG grid')
  s.add_argument('--workdir', required=True)
  s.add_argument('query')
  s.add_argument('--top', type=int, default=32)
  s.add_argument('--out', default=None, help='PNG path (default: DIR/search_<words>.png)')
  s.add_argument('--images', type=int, default=10_000, help='search the first N test images')
  e = sub.add_parser('evaluate', help='zero-shot accuracy, chance and the linear probe')
  e.add_argument('--workdir', required=True)
  e.add_argument('--test-rows', type=int, default=0)
  m = sub.add_parser('summary', help="mean and spread of runs' results.json")
  m.add_argument('workdirs', nargs='+')
  args = p.parse_args(argv)
  if args.command == 'search':
    if not args.query.strip():
      raise UsageError('the query is empty')
    if not 1 <= args.images <= 10_000:
      raise UsageError(f'--images {args.images}: between 1 and 10,000')
    if not 1 <= args.top <= args.images:
      raise UsageError(f'--top {args.top}: between 1 and --images ({args.images:,})')
    run = load_clip_run(args.workdir)
    best, scores, labels = search(run, args.query, args.top, args.images)
    slug = '_'.join(re.findall(r'[a-z0-9]+', args.query.lower()))[:60] or 'query'
    out = pathlib.Path(args.out or pathlib.Path(args.workdir) / f'search_{slug}.png')
    save_search_grid(run, args.query, best, scores, labels, out, args.images)
    from jdl.data.descriptions import CLASSES

    counts = {CLASSES[c]: int(n) for c, n in zip(*np.unique(labels, return_counts=True))}
    print(f'wrote {out}: top {len(best)} classes {counts}')
  elif args.command == 'evaluate':
    from jdl.tasks import clip as task

    run = load_clip_run(args.workdir)
    results = task.evaluate(run.model, run.config, args.test_rows or None)
    results['step'] = run.step
    (pathlib.Path(args.workdir) / 'results.json').write_text(json.dumps(results, indent=1))
    print(task.format_results(results))
  else:
    print(summary(args.workdirs))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
