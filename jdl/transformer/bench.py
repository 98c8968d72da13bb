"""`jdl bench transformer`: training tokens/s of jdl's Transformer against PyTorch's
`nn.Transformer` of the same size, in the same run, on this machine's CPU.

Workloads: experiments/transformer/ding_de_en.py, `:small` (d_model 128, 4 heads, FFN 512,
2+2 layers, 4,000 subwords: the size of the equal-time comparison) and the default (d_model 256,
FFN 1024, 3+3 layers, 8,000 subwords); pre-LN, dropout 0.1, label smoothing 0.1, Adam; batches of
32 packed rows of 64 tokens from the Ding training split: the same batches, in the same order,
for both. jdl runs the loop's own compiled call (`Trainer.run_steps`: `steps_per_call` steps in
one `lax.scan`, as `jdl train` runs it); the peer (jdl.transformer.peer_torch) runs in its own
process with `torch.set_num_threads(cores)` and glibc malloc's thresholds. Tokens are source plus
target tokens, padding excluded. Rounds alternate jdl and PyTorch so both see the same machine
load.
"""

from __future__ import annotations

import time

from jdl.bench import common
from jdl.paths import ROOT

CONFIG = str(ROOT / 'experiments/transformer/ding_de_en.py')


def main(quick: bool = False) -> int:
  for variant in (':small', ''):
    measure(CONFIG + variant, quick)
    print()
  return 0


def measure(config_file: str, quick: bool) -> float:
  """Prints the comparison of one config's shape; returns jdl / PyTorch tokens/s."""
  import jax

  from jdl import config as config_lib
  from jdl.train.loop import Trainer

  config = config_lib.load(config_file)
  rounds, calls = (2, 1) if quick else (4, 1)  # jdl calls of steps_per_call steps per round
  k = config.steps_per_call
  m = config.model
  print(
    f'Transformer d_model {m.d_model}, {m.n_heads} heads, FFN {m.d_ff}, '
    f'{m.n_encoder_layers}+{m.n_decoder_layers} layers, vocab {m.vocab_size}, batch '
    f'{config.batch_size} x {config.data.kwargs.length} packed tokens, float32, Adam; '
    f'{common.machine()}; {common.today()}',
    flush=True,
  )
  peer = common.Peer('jdl.transformer.peer_torch', [config_file], env=common.TORCH_ENV)
  info, torch_steps = peer.info, peer.steps
  trainer = Trainer(config)
  state = trainer.init_state()
  batches = trainer.train_batches()

  def jdl_call() -> int:
    """One compiled call of `steps_per_call` steps, waited for; returns its tokens."""
    nonlocal state
    local = next(batches)
    state, metrics = trainer.run_steps(state, trainer.global_batch(local))
    jax.block_until_ready(metrics)
    return int((local['src_segments'] > 0).sum() + (local['tgt_segments'] > 0).sum())

  jdl_call()  # compilation, not timed
  torch_steps(2)  # first touches, not timed
  jdl_rate, torch_rate, jdl_step, torch_step = [], [], [], []
  for r in range(rounds):
    for _ in range(calls):
      t = time.perf_counter()
      tokens = jdl_call()
      seconds = time.perf_counter() - t
      jdl_rate.append(tokens / seconds)
      jdl_step.append(seconds / k)
    out = torch_steps(calls * k)
    torch_rate += [n / s for n, s in zip(out['tokens'], out['step_seconds'])]
    torch_step += out['step_seconds']
    print(
      f'round {r + 1}/{rounds}: jdl {common.median(jdl_rate[-calls:]):,.0f} tokens/s; '
      f'torch {common.median(torch_rate[-calls * k :]):,.0f} tokens/s',
      flush=True,
    )
  peer.close()
  jdl_tps, torch_tps = common.median(jdl_rate), common.median(torch_rate)
  print(
    f'\njdl {trainer.num_params:,} parameters, PyTorch {info["parameters"]:,}; '
    f'torch {info["torch"]} ({info["threads"]} threads); jdl {k} steps per compiled call, '
    f'jax {jax.__version__}'
  )
  print('\n| implementation | tokens/s (median) | s/step |')
  print('|---|---|---|')
  for name, tps, steps in (
    ('jdl (JAX/XLA)', jdl_tps, jdl_step),
    ('PyTorch nn.Transformer', torch_tps, torch_step),
  ):
    print(f'| {name} | {tps:,.0f} | {common.median(steps):.3f} |')
  ratio = jdl_tps / torch_tps
  print(
    f'\njdl / PyTorch tokens/s: {ratio:.2f}x (target >= 1.0x: '
    f'{"met" if ratio >= 1.0 else "NOT met"}; stretch 1.3x: '
    f'{"met" if ratio >= 1.3 else "not met"})'
  )
  return ratio
