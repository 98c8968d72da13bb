"""The tiny runs the RLHF stage tests start from, made once per test session through `jdl train`
(in this process: the compiled programs are shared): an SFT run (experiments/rlhf/sft.py:smoke),
synthetic preference pairs and a reward model (experiments/rlhf/reward_model.py:smoke)."""

from __future__ import annotations

import pathlib
import random

from jdl.cli import main
from jdl.data import preferences
from tests.conftest import ROOT

_MADE: dict[str, pathlib.Path] = {}
WORDS = ('good', 'bad', 'great', 'awful', 'fine', 'dull', 'fun', 'sad')


def jdl_train(config: str, workdir, *overrides: str) -> None:
  argv = ['train', '--config', str(ROOT / 'experiments/rlhf' / config), '--workdir', str(workdir)]
  assert main([*argv, *overrides]) == 0


def write_pairs(path, n: int = 40) -> None:
  """Synthetic pairs (unit tests only): 15-byte prompts, one tie among them."""
  rng = random.Random(0)
  pairs = []
  for i in range(n):
    a, b = rng.sample(WORDS, 2)
    pairs.append(
      preferences.Pair(f'rev {i:02d}: it is ', f'{a} film', f'{b} one', 'auto:test', 0.8, i == 3)
    )
  preferences.write(path, pairs)


def made_runs(tmp_path_factory) -> pathlib.Path:
  """A folder with sft/, prefs.jsonl and rm/ (made on first use)."""
  if 'root' not in _MADE:
    root = tmp_path_factory.mktemp('rlhf_stages')
    jdl_train('sft.py:smoke', root / 'sft')
    write_pairs(root / 'prefs.jsonl')
    jdl_train('reward_model.py:smoke', root / 'rm', *stage_overrides(root))
    _MADE['root'] = root
  return _MADE['root']


def stage_overrides(root) -> list[str]:
  return [
    f'--config.sft_run={root / "sft"}',
    f'--config.rm_run={root / "rm"}',
    f'--config.data.pairs={root / "prefs.jsonl"}',
  ]
