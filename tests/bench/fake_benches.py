"""Benchmarks with known numbers for tests/bench: one that reports through
common.print_comparison, one that prints a table of its own, one that fails."""

from jdl.bench import common


def comparison(quick: bool = False) -> int:
  # jdl 0.5 s a step, the peer 1.0 s: 2.0x; 100 FLOPs a step against a peak of 400 FLOP/s
  common.print_comparison(
    'peer',
    [0.5, 0.4, 0.6],
    [1.0, 1.0, 1.0],
    units_per_step=10,
    unit='tokens',
    flops_per_step=100.0,
    peak=400.0,
    flops_label='MFU',
    stretch=1.5,
  )
  return 0


def own_table(quick: bool = False) -> int:
  print('| workload | jdl | peer | ratio |')
  print('|---|---|---|---|')
  print(f'| toy, quick={quick} | 5.0 | 4.0 | 1.25x |')
  print('target: at least 1.0x -> met (12.5% of peak)')
  return 0


def broken(quick: bool = False) -> int:
  raise RuntimeError('this benchmark fails')
