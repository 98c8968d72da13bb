"""`jdl sentiment probe`: the whole probe of one trained run, written into its workdir.

sentiment_probe.json     the unit, its accuracy, the probe, data efficiency (probe and TF-IDF),
                         for the cell and the hidden state, the random-init control and the
                         label-permutation null
sentiment_features.npz   the test reviews' features and labels (the histogram's data)
"""

from __future__ import annotations

import json
import time

import numpy as np

from jdl.data import reviews
from jdl.sentiment import features, probe
from jdl.train.errors import UsageError

PROBE_FILE = 'sentiment_probe.json'
FEATURES_FILE = 'sentiment_features.npz'
SPLITS = ('train', 'validation', 'test')


def load_model(workdir):
  """(run, model) of a byte-level recurrent run, or a UsageError that says what the run is."""
  from jdl.train.run import load_run

  run = load_run(workdir)
  try:
    features.check_model(run.model)
  except ValueError as e:
    raise UsageError(
      f'{workdir} is a run of {run.config.task}/{run.config.model.name} on '
      f'{run.config.data.name!r} data, {e}: train one with experiments/sentiment/mlstm_reviews.py'
    ) from None
  return run, run.model


def review_features(model, corpus='reviews', max_bytes=0, keep='first', batch_size=250):
  """{split: {'cell', 'hidden'} -> [N, H]}, {split: labels}, {split: texts}: every split read in
  one pass of batched inference."""
  texts, labels = {}, {}
  for split in SPLITS:
    texts[split], labels[split] = reviews.examples(corpus, split)
  every = [t for split in SPLITS for t in texts[split]]
  feats = features.final_states(model, every, batch_size, max_bytes, keep)
  out, start = {}, 0
  for split in SPLITS:
    n = len(texts[split])
    out[split] = {k: v[start : start + n] for k, v in feats.items()}
    start += n
  return out, labels, texts


def by_kind(feats: dict, kind: str) -> dict:
  return {split: f[kind] for split, f in feats.items()}


def run_probe(
  workdir,
  *,
  max_bytes: int = 0,
  resamples: int = 10,
  permutations: int = 100,
  random_control: bool = True,
  baseline: bool = True,
  corpus: str = 'reviews',
  log=print,
) -> dict:
  from flax import nnx

  from jdl.paths import workdir as as_workdir

  workdir = as_workdir(workdir)
  run, model = load_model(workdir)
  width = model.rnn.forward_cells[-1].hidden_size
  start = time.time()
  feats, labels, texts = review_features(model, corpus, max_bytes)
  log(
    f'features of {sum(len(t) for t in texts.values())} {corpus} at width {width}: '
    f'{time.time() - start:.0f} s'
  )
  result = {
    'workdir': str(workdir),
    'step': run.step,
    'width': width,
    'cell': run.config.model.cell,
    'corpus': corpus,
    'max_bytes': max_bytes,
    'n': {s: len(labels[s]) for s in SPLITS},
  }
  for kind in features.KINDS:
    unit = probe.best_unit(by_kind(feats, kind), labels)
    curve = probe.data_efficiency(
      by_kind(feats, kind),
      labels,
      texts if (baseline and kind == 'cell') else None,
      resamples=resamples,
    )
    result[kind] = {'unit': unit, 'data_efficiency': curve}
    log(
      f'{kind:6s} state: probe {unit["probe_test_accuracy"]:.1%} (C {unit["C"]:g}, '
      f'{unit["nonzero_weights"]} units used); best unit {unit["unit"]} alone '
      f'{unit["test_accuracy"]:.1%} test ({unit["train_accuracy"]:.1%} train)'
    )
  cell = result['cell']
  if baseline:
    result['tfidf'] = {'data_efficiency': cell['data_efficiency'].pop('tfidf')}
  if permutations:
    start = time.time()
    null = probe.permutation_null(by_kind(feats, 'cell'), labels, cell['unit']['C'], permutations)
    observed = cell['unit']['test_accuracy']
    result['permutation'] = {
      **probe.summary(null),
      'accuracies': null,
      'p_value': (1 + sum(a >= observed for a in null)) / (1 + len(null)),
      'q95': float(np.quantile(null, 0.95)),
    }
    log(
      f'label permutation ({permutations}x, {time.time() - start:.0f} s): best unit '
      f'{probe.summary(null)["mean"]:.1%} +- {probe.summary(null)["std"]:.1%}, 95th percentile '
      f'{result["permutation"]["q95"]:.1%}; p = {result["permutation"]["p_value"]:.3f}'
    )
  if random_control:
    random_model = run.task.build_model(nnx.Rngs(run.config.seed + 1))
    rfeats, _, _ = review_features(random_model, corpus, max_bytes)
    result['random'] = {}
    for kind in features.KINDS:
      unit = probe.best_unit(by_kind(rfeats, kind), labels)
      result['random'][kind] = {'unit': unit}
      log(
        f'random-init {kind}: probe {unit["probe_test_accuracy"]:.1%}; best unit '
        f'{unit["unit"]} alone {unit["test_accuracy"]:.1%} test'
      )
  (workdir / probe_file(corpus)).write_text(json.dumps(result, indent=1) + '\n')
  u = cell['unit']['unit']
  np.savez(
    workdir / probe_file(corpus, FEATURES_FILE),
    unit=u,
    test_cell=feats['test']['cell'],
    test_hidden=feats['test']['hidden'],
    test_labels=labels['test'],
  )
  log(f'wrote {workdir / probe_file(corpus)} and {workdir / probe_file(corpus, FEATURES_FILE)}')
  return result


def probe_file(corpus: str = 'reviews', name: str = PROBE_FILE) -> str:
  """The reviews' probe is `name`; another corpus's gets its name in the file's."""
  return name if corpus == 'reviews' else name.replace('.', f'_{corpus}.', 1)


def read_probe(workdir, corpus: str = 'reviews') -> dict:
  from jdl.paths import workdir as as_workdir

  path = as_workdir(workdir) / probe_file(corpus)
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: run `jdl sentiment probe --workdir {workdir}`')
  return json.loads(path.read_text())
