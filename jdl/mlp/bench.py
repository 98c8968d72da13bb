"""`jdl bench mlp`: seconds per training epoch of the lecture's MLP (Dense 10-2-1, SGD, batch 32)
on 200,000 x 8 synthetic regression rows (a speed workload, not a result), jdl's training loop
against Keras 3 on its JAX backend, in the same run on the same machine.

jdl runs the epoch's 6,250 steps inside one compiled call (`steps_per_call`, scan unrolled 4
times); Keras runs at its
documented settings, with `steps_per_execution` 1 and 64 (the better one counts). The first
epoch of each includes compilation and is left out of the medians.
"""

from __future__ import annotations

import json
import tempfile

import ml_collections

from jdl import config as config_lib
from jdl.bench import common

ROWS, FEATURES = 200_000, 8


def jdl_config(epochs: int) -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.task = 'regression'
  c.data.name = 'synthetic'
  c.data.kwargs = ml_collections.ConfigDict(dict(rows=ROWS, features=FEATURES, eval_rows=1000))
  c.model.name = 'mlp'
  c.model.in_features = FEATURES
  c.model.features = (10, 2, 1)
  c.batch_size = 32
  c.num_epochs = epochs
  c.steps_per_call = ROWS // 32  # the whole epoch in one compiled call
  c.steps_unroll = 4
  c.eval_every_steps = -1
  c.checkpoint_every_steps = -1
  c.async_checkpointing = False
  c.progress_bar = 'never'
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.01
  c.mesh.data = 1
  return c


def jdl_epoch_seconds(epochs: int) -> tuple[list[float], float]:
  from jdl.train import loop
  from jdl.train.run import read_metrics

  with tempfile.TemporaryDirectory() as workdir:
    loop.train_and_evaluate(jdl_config(epochs), workdir)
    records = read_metrics(workdir)
  steps = ROWS // 32
  return [steps / r['steps_per_sec'] for r in records], records[-1]['loss']


def main(quick: bool = False) -> int:
  epochs = 3 if quick else 6
  print(
    f'MLP 8-10-2-1, SGD, batch 32, {ROWS:,} rows ({ROWS // 32} steps/epoch), {epochs} epochs '
    f'each; {common.machine()}; {common.today()}',
    flush=True,
  )
  jdl_times, jdl_loss = jdl_epoch_seconds(epochs)
  print(
    f'jdl   epochs (s): {[round(t, 3) for t in jdl_times]}  final loss {jdl_loss:.4f}', flush=True
  )
  keras = {}
  for spe in (1, 64):
    out = json.loads(
      common.run_peer(
        'jdl.mlp.peer_keras',
        [str(epochs), '0', str(spe)],
        env={'KERAS_BACKEND': 'jax', 'JAX_PLATFORMS': 'cpu'},
      )
    )
    keras[spe] = out
    print(
      f'keras {out["keras"]} steps_per_execution={spe} epochs (s): '
      f'{[round(t, 3) for t in out["epoch_seconds"]]}  final loss {out["loss"][-1]:.4f}',
      flush=True,
    )
  jdl_median = common.median(jdl_times[1:])
  keras_best_spe, keras_best = min(
    ((spe, common.median(out['epoch_seconds'][1:])) for spe, out in keras.items()),
    key=lambda item: item[1],
  )
  ratio = keras_best / jdl_median
  print('\n| workload | jdl s/epoch (median) | Keras best s/epoch (median) | speed-up |')
  print('|---|---|---|---|')
  print(
    f'| MLP 8-10-2-1, 200k rows, batch 32, SGD | {jdl_median:.3f} | {keras_best:.3f} '
    f'(steps_per_execution={keras_best_spe}) | {ratio:.1f}x |'
  )
  print(f'target: at least 3x faster than Keras -> {"met" if ratio >= 3 else "NOT met"}')
  return 0
