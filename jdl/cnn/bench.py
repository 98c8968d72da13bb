"""`jdl bench cnn`: training images/s of the Keras example's simple convnet (batch 128, Adam) on
Fashion-MNIST, jdl's training loop against Keras 3 on its JAX backend, in the same run.

Both train for timed "epochs" of 100 steps, in rounds that alternate jdl and Keras (so that both
see the same load on a shared machine); each run's first epoch (compilation) is left out and the
median counts. jdl runs one step per compiled call (on XLA:CPU a convolution inside a scanned
multi-step call runs about 20 times slower than outside it); Keras runs with
`steps_per_execution` 1 and 10 (the better counts). Both run the same XLA convolutions; jdl's
2x2 max pools are a reshape and a max (jdl.models.cnn.max_pool), whose gradient avoids XLA's slow
select-and-scatter. The FLOPs of a training step come from XLA's cost analysis of jdl's compiled
step; the machine's float32 matmul rate, measured in the same run, is the peak.
"""

from __future__ import annotations

import json
import tempfile

from jdl import config as config_lib
from jdl.bench import common
from jdl.paths import ROOT

STEPS = 100  # per timed epoch
BATCH = 128


def jdl_config(epochs: int):
  c = config_lib.load(str(ROOT / 'experiments/cnn/simple_fmnist.py'))
  c.num_epochs = 0
  c.num_train_steps = epochs * STEPS
  c.log_every_steps = STEPS
  c.eval_every_steps = -1
  c.checkpoint_every_steps = -1
  c.steps_per_call = 1
  c.progress_bar = 'never'
  c.mesh.data = 1
  return c


def train_step_flops(trainer) -> float:
  """FLOPs of the trainer's compiled step, lowered on the state's shapes (nothing allocated)."""
  import numpy as np

  local = {'image': np.zeros((BATCH, 28, 28, 1), np.uint8), 'label': np.zeros(BATCH, np.int32)}
  return common.compiled_flops(
    trainer.run_steps, trainer.abstract_state, trainer.global_batch(local)
  )


def main(quick: bool = False) -> int:
  from jdl.train.loop import Trainer
  from jdl.train.run import read_metrics

  # Rounds alternate jdl and both Keras settings, so that all three see the same load on a
  # shared machine; each run's first epoch (compilation) is left out.
  rounds, epochs = (1, 3) if quick else (3, 4)
  print(
    f'simple convnet, Adam, batch {BATCH}, Fashion-MNIST; {rounds} rounds of {epochs} '
    f'epochs of {STEPS} steps; {common.machine()}; {common.today()}',
    flush=True,
  )
  peak = common.matmul_peak_flops()
  # One trainer for every round: the data and the compiled step are built once.
  trainer = Trainer(jdl_config(epochs))
  flops = train_step_flops(trainer)
  jdl_rates, keras = [], {1: [], 10: []}
  for r in range(rounds):
    with tempfile.TemporaryDirectory() as workdir:
      trainer.fit(workdir)
      records = read_metrics(workdir)
    rates = [rec['steps_per_sec'] * BATCH for rec in records if 'steps_per_sec' in rec]
    jdl_rates += rates[1:]
    print(f'round {r + 1}: jdl images/s per epoch {[round(x) for x in rates]}', flush=True)
    for spe in keras:
      out = json.loads(
        common.run_peer(
          'jdl.cnn.peer_keras',
          [str(epochs), str(STEPS), str(spe)],
          env={'KERAS_BACKEND': 'jax', 'JAX_PLATFORMS': 'cpu'},
        )
      )
      rates = [STEPS * BATCH / t for t in out['epoch_seconds']]
      keras[spe] += rates[1:]
      print(
        f'round {r + 1}: keras {out["keras"]} steps_per_execution={spe} images/s per '
        f'epoch {[round(x) for x in rates]}',
        flush=True,
      )
  jdl_rate = common.median(jdl_rates)
  best_spe, keras_rate = max(
    ((spe, common.median(r)) for spe, r in keras.items()), key=lambda item: item[1]
  )
  achieved = flops * jdl_rate / BATCH
  print(
    f'\ntraining step: {flops / 1e9:.2f} GFLOP (XLA cost analysis); float32 matmul peak '
    f'{peak / 1e9:.1f} GFLOP/s; jdl achieves {achieved / 1e9:.1f} GFLOP/s '
    f'({100 * achieved / peak:.1f}% of peak)'
  )
  print('\n| workload | jdl images/s (median) | Keras best images/s (median) | ratio |')
  print('|---|---|---|---|')
  print(
    f'| simple convnet, batch 128, Adam | {jdl_rate:.0f} | {keras_rate:.0f} '
    f'(steps_per_execution={best_spe}) | {jdl_rate / keras_rate:.2f}x |'
  )
  print(
    f'target: at least 1.0x Keras (stretch 1.5x) -> '
    f'{"met" if jdl_rate >= keras_rate else "NOT met"}'
  )
  return 0
