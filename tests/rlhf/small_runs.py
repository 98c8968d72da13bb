"""Tiny runs the labeller and CLI tests share (the SFT policy's and the labeller's :smoke
configs), trained once per test session through the one loop (a module-level cache: fixtures
in two test files would otherwise train them twice)."""

import functools
import pathlib

from jdl import config as config_lib
from jdl.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[2]
SFT = str(ROOT / 'experiments/rlhf/sft.py')
LABELLER = str(ROOT / 'experiments/rlhf/labeller.py')


@functools.cache
def smoke_runs(base: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """(SFT run, labeller run) under `base`: a 2-layer d 32 byte GPT with a context of 32, and a
  1-layer classifier of 16-byte windows, 4 steps each."""
  sft, labeller = base / 'sft', base / 'labeller'
  loop.train_and_evaluate(config_lib.load(f'{SFT}:smoke'), sft)
  loop.train_and_evaluate(config_lib.load(f'{LABELLER}:smoke'), labeller)
  return sft, labeller
