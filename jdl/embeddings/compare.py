"""jdl against gensim on the same corpus, over seeds: the measurements behind docs/embeddings.md.

  python -m jdl.embeddings.compare jdl    --config experiments/embeddings/word2vec.py --seeds 1 2 3
  python -m jdl.embeddings.compare gensim --config experiments/embeddings/word2vec.py --seeds 1 2 3
  python -m jdl.embeddings.compare summary

Each jdl seed is a `jdl train` run (in-process, workdir runs/embeddings/<model>_seed<S>); each
gensim seed trains gensim with the config's settings (jdl.embeddings.peer_gensim). Both are
judged by jdl.embeddings.evaluate, and every result is merged into docs/embeddings.json (one
record per framework, model and seed; a new measurement replaces the old). `summary` prints
means and standard deviations and checks the quality target: jdl's analogy accuracy and
WordSim-353 correlation at least gensim's mean minus one standard deviation.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics

from jdl.paths import ROOT

RESULTS = ROOT / 'docs/embeddings.json'


def _merge(record: dict, results: pathlib.Path = RESULTS) -> None:
  data = json.loads(results.read_text()) if results.exists() else {'runs': []}
  key = (record['framework'], record['model'], record['seed'])
  data['runs'] = [r for r in data['runs'] if (r['framework'], r['model'], r['seed']) != key] + [
    record
  ]
  data['runs'].sort(key=lambda r: (r['model'], r['framework'], r['seed']))
  results.write_text(json.dumps(data, indent=1) + '\n')


def _record(framework: str, config, seed: int, seconds: float, result: dict) -> dict:
  from jdl.tasks.embeddings import Task

  corpus = Task(config).corpus()
  return dict(
    framework=framework,
    model=config.model.name,
    seed=seed,
    seconds=round(seconds, 1),
    epochs=config.num_epochs,
    tokens=int(len(corpus.tokens)),
    vocabulary=len(corpus.words),
    **{k: v for k, v in result.items() if k not in ('name', 'vocabulary')},
  )


def run_jdl(spec: str, seeds, overrides, runs: pathlib.Path) -> None:
  from jdl import config as config_lib
  from jdl.embeddings import evaluate as ev
  from jdl.train import loop

  for seed in seeds:
    config = config_lib.load(spec)
    config_lib.apply_overrides(config, list(overrides))
    config.seed = seed
    workdir = runs / f'{config.model.name}_seed{seed}'
    out = loop.train_and_evaluate(config, workdir)
    result = ev.evaluate_workdir(workdir)
    print(ev.summary(result) + f'; {out["seconds"]:.0f} s of training', flush=True)
    _merge(_record('jdl', config, seed, out['seconds'], result))


def run_gensim(spec: str, seeds, overrides, runs: pathlib.Path) -> None:
  from jdl import config as config_lib
  from jdl.embeddings import evaluate as ev
  from jdl.embeddings import peer_gensim

  for seed in seeds:
    config = config_lib.load(spec)
    config_lib.apply_overrides(config, list(overrides))
    vectors, seconds = peer_gensim.train(config, seed)
    folder = runs / f'gensim_{config.model.name}_seed{seed}'
    folder.mkdir(parents=True, exist_ok=True)
    result = ev.evaluate(vectors, folder / 'vectors.bin')
    print(ev.summary(result) + f'; {seconds:.0f} s of training', flush=True)
    _merge(_record('gensim', config, seed, seconds, result))


def _stats(values: list[float]) -> tuple[float, float]:
  return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: pathlib.Path = RESULTS) -> str:
  """Means and standard deviations per framework and model, and the quality check."""
  data = json.loads(results.read_text())
  groups: dict[tuple[str, str], list[dict]] = {}
  for r in data['runs']:
    groups.setdefault((r['model'], r['framework']), []).append(r)
  lines = [
    '| model | framework | seeds | analogy | WordSim-353 | SimLex-999 | queen rank | seconds |',
    '|---|---|---|---|---|---|---|---|',
  ]
  stats, seeds = {}, {}
  for (model, framework), runs in sorted(groups.items()):
    seeds[(model, framework)] = len(runs)
    analogy = _stats([r['analogy']['accuracy'] for r in runs])
    ws = _stats([r['wordsim353']['spearman'] for r in runs])
    sl = _stats([r['simlex999']['spearman'] for r in runs])
    stats[(model, framework)] = (analogy, ws)
    ranks = ', '.join(str(r.get('queen_rank', '-')) for r in runs)
    secs = statistics.mean(r['seconds'] for r in runs)
    lines.append(
      f'| {model} | {framework} | {len(runs)} | {analogy[0]:.2%} ± {analogy[1]:.2%} | '
      f'{ws[0]:.3f} ± {ws[1]:.3f} | {sl[0]:.3f} ± {sl[1]:.3f} | {ranks} | {secs:.0f} |'
    )
  for model in sorted({m for m, _ in stats}):
    if (model, 'jdl') in stats and (model, 'gensim') in stats:
      (ja, jw), (ga, gw) = stats[(model, 'jdl')], stats[(model, 'gensim')]
      ok_a = ja[0] >= ga[0] - ga[1]
      ok_w = jw[0] >= gw[0] - gw[1]
      note = ' (one gensim seed: no spread)' if seeds[(model, 'gensim')] < 2 else ''
      lines.append(
        f'\n{model}{note}: jdl analogy {ja[0]:.2%} vs gensim mean - std {ga[0] - ga[1]:.2%} '
        f'({"met" if ok_a else "NOT met"}); WordSim-353 {jw[0]:.3f} vs {gw[0] - gw[1]:.3f} '
        f'({"met" if ok_w else "NOT met"})'
      )
  return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='python -m jdl.embeddings.compare', description=__doc__)
  p.add_argument('framework', choices=('jdl', 'gensim', 'summary'))
  p.add_argument('--config', default='experiments/embeddings/word2vec.py')
  p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
  p.add_argument('--runs', default='runs/embeddings', help='where the runs and vectors go')
  args, overrides = p.parse_known_args(argv)
  runs = pathlib.Path(args.runs)
  if args.framework == 'jdl':
    run_jdl(args.config, args.seeds, overrides, runs)
  elif args.framework == 'gensim':
    run_gensim(args.config, args.seeds, overrides, runs)
  print(summarize())
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
