"""Every matrix-product shape of a compiled training step, timed alone with JAX and with
PyTorch: `python -m jdl.bench.gemms DIR/jdl_step.hlo` (the HLO `jdl bench NAME --profile DIR`
writes).

It answers whether a step's MFU is bounded by the products themselves: if XLA:CPU's products of
the model's sizes, each alone, reach only X% of the 2048^3 rate, the step cannot reach more. On
a shared machine wall-clock rates swing with the load (a product that fits in one scheduling
slice escapes it; 2048^3 does not), so each product is also measured in process CPU time
(FLOPs per CPU-second of all the process's threads, against the same for 2048^3), which the
load changes far less. Both are the best of several rounds, each round JAX then PyTorch (in its
own process, with jdl.bench's malloc settings), so that both see the same load.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

REFERENCE = (1, 2048, 2048, 2048)


def _best(run, wait, flops: float, repeats: int) -> tuple[float, float]:
  """(best wall seconds, best process CPU seconds) of one `run()`, after an untimed call. A small
  product is timed over enough calls (waited for once, at the end) for about 4 GFLOP, so that
  clocks' resolution and one call's dispatch do not dominate."""
  calls = max(1, math.ceil(4e9 / flops))
  wait(run())
  wall = cpu = math.inf
  for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    for _ in range(calls):
      out = run()
    wait(out)
    wall = min(wall, (time.perf_counter() - t) / calls)
    cpu = min(cpu, (time.process_time() - c) / calls)
  return wall, cpu


def time_jax(shapes, repeats: int = 5) -> list[tuple[float, float]]:
  """(wall, CPU) seconds of each (batch, m, k, n) float32 product with JAX."""
  import jax
  import jax.numpy as jnp

  out = []
  product = jax.jit(lambda x, y: jnp.einsum('bmk,bkn->bmn', x, y))
  for b, m, k, n in shapes:
    x = jax.random.normal(jax.random.key(0), (b, m, k), jnp.float32)
    y = jax.random.normal(jax.random.key(1), (b, k, n), jnp.float32)
    out.append(_best(lambda: product(x, y), jax.block_until_ready, 2.0 * b * m * k * n, repeats))
  return out


def time_torch(shapes, repeats: int = 5) -> list[tuple[float, float]]:
  import torch

  torch.set_num_threads(os.cpu_count())
  out = []
  for b, m, k, n in shapes:
    x, y = torch.randn(b, m, k), torch.randn(b, k, n)
    x0, y0 = x[0], y[0]
    run = (lambda: torch.bmm(x, y)) if b > 1 else (lambda: x0 @ y0)
    out.append(_best(run, lambda _: None, 2.0 * b * m * k * n, repeats))  # torch is synchronous
  return out


def report(hlo_file: str, rounds: int = 5) -> str:
  """The Markdown table of every product shape of the step, with the 2048^3 reference."""
  from jdl.bench import common, profile

  shapes = profile.Hlo(open(hlo_file).read()).gemm_shapes()
  keys = [REFERENCE] + [s for s, _ in shapes.most_common()]
  best = {'jax': [(math.inf, math.inf)] * len(keys), 'torch': [(math.inf, math.inf)] * len(keys)}
  merge = lambda old, new: [(min(a[0], b[0]), min(a[1], b[1])) for a, b in zip(old, new)]
  for _ in range(rounds):
    best['jax'] = merge(best['jax'], time_jax(keys))
    out = common.run_peer('jdl.bench.gemms', ['torch', json.dumps(keys)], env=common.TORCH_ENV)
    best['torch'] = merge(best['torch'], json.loads(out))
  flops = [2.0 * b * m * k * n for b, m, k, n in keys]
  peak_wall, peak_cpu = (flops[0] / s for s in best['jax'][0])

  def cells(seconds, f):
    wall, cpu = f / seconds[0], f / seconds[1]
    return f'{wall / 1e9:.0f} ({wall / peak_wall:.0%}) | {cpu / 1e9:.0f} ({cpu / peak_cpu:.0%})'

  lines = [
    '| batch x m x k x n | per step | JAX GFLOP/s wall (% of 2048^3) | JAX GFLOP per CPU-s '
    '(%) | PyTorch GFLOP/s wall (%) | PyTorch GFLOP per CPU-s (%) |',
    '|---|---|---|---|---|---|',
  ]
  totals = {'jax': [0.0, 0.0], 'torch': [0.0, 0.0]}
  for i, key in enumerate(keys):
    count = shapes.get(key, 0)
    for side in totals:
      totals[side][0] += best[side][i][0] * count
      totals[side][1] += best[side][i][1] * count
    name = ' x '.join(map(str, key)) + (' (reference)' if i == 0 else '')
    lines.append(
      f'| {name} | {count} | {cells(best["jax"][i], flops[i])} | '
      f'{cells(best["torch"][i], flops[i])} |'
    )
  f = sum(flops[i] * shapes.get(k, 0) for i, k in enumerate(keys))
  lines.append(
    f"| **the step's products, each alone** | {sum(shapes.values())} | "
    f'{cells(totals["jax"], f)} | {cells(totals["torch"], f)} |'
  )
  load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
  lines.append(
    f'\n{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; load average {load}; best of '
    f'{rounds} rounds; 2048^3 with JAX: {peak_wall / 1e9:.1f} GFLOP/s wall, '
    f'{peak_cpu / 1e9:.1f} GFLOP per CPU-second; {f / 1e9:.1f} GFLOP of products a step'
  )
  return '\n'.join(lines)


if __name__ == '__main__':
  if sys.argv[1] == 'torch':  # the PyTorch side of `report`, in its own process
    print(json.dumps(time_torch([tuple(s) for s in json.loads(sys.argv[2])])))
  else:
    print(report(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5))
