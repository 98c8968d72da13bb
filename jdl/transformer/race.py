"""Equal wall time: jdl's Transformer and the PyTorch `nn.Transformer` peer trained from one config
(the same batches in the same order, the same steps, the same `max_seconds` budget), validation
BLEU recorded at every evaluation.

  python -m jdl.transformer.race --framework jdl \\
      --config experiments/transformer/ding_de_en.py:race --workdir runs/transformer/de_en
  python -m jdl.transformer.race --framework torch \\
      --config experiments/transformer/ding_de_en.py:race --workdir runs/transformer/torch_de_en

jdl's side is the loop itself, `Trainer(config).fit(workdir)` with the translation task's BLEU
hook (`decode.validation_sentences`): it stops when `config.max_seconds` of wall time are spent
(compilation and evaluation included),
evaluates, checkpoints and scores the test set (results.json), so `jdl translate` and `jdl
figures` can use the run. The peer (`peer_torch.fit`) keeps the same schedule and clock and writes
the same records. Every evaluation translates the first `--eval-sentences` validation sentences
greedily (the peer has no beam search, so the config must say `decode.beam_size=0`) into
`validation_bleu` and `validation_chrf` of metrics.jsonl; `jdl figures bleu_time` draws them
against `seconds`. `--config.key=value` overrides apply as in `jdl train`; any other unknown flag
is an error.

For a fair split of a 2-core machine run both at once, each pinned to its own core with one
thread: `taskset -c 0 ... --threads 1` and `taskset -c 1 ... --threads 1`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from jdl import config as config_lib
from jdl import paths
from jdl.bench.common import TORCH_ENV


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  p = argparse.ArgumentParser(
    prog='python -m jdl.transformer.race',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog='Config overrides: --config.key=value (e.g. --config.max_seconds=600).',
  )
  p.add_argument('--framework', choices=('jdl', 'torch'), required=True)
  p.add_argument(
    '--config',
    required=True,
    help='experiments/transformer/{ding_de_en,bible_es_en,seq2seq_es_en}.py[:variant]',
  )
  p.add_argument('--workdir', required=True, help='a new run folder')
  p.add_argument(
    '--eval-sentences',
    type=int,
    default=250,
    help='validation sentences translated at each evaluation (0: all)',
  )
  p.add_argument('--threads', type=int, default=0, help='0: all cores')
  args, extra = p.parse_known_args(argv)
  try:
    config = config_lib.load(args.config)
    rest = config_lib.apply_overrides(config, extra)
  except config_lib.ConfigError as e:
    p.error(f'config error: {e}')
  if rest:
    p.error(f'unrecognized arguments: {" ".join(rest)}')
  if config.data.name not in ('ding', 'bible_pairs'):
    p.error(f'config error: the race runs on the Ding or Bible pairs, not {config.data.name!r}')
  if args.framework == 'torch' and config.model.name != 'transformer':
    p.error('config error: the PyTorch peer is a Transformer; --framework jdl for other models')
  if config.decode.beam_size != 0:
    p.error(
      'config error: decode.beam_size must be 0: both frameworks decode greedily (the PyTorch '
      'peer has no beam search), as the :race variant says'
    )
  workdir = paths.workdir(args.workdir)
  if (workdir / 'metrics.jsonl').exists():
    p.error(f'{workdir} holds a run already: a race starts from scratch in a new --workdir')
  threads = args.threads or os.cpu_count()
  if args.framework == 'torch' and any(os.environ.get(k) != v for k, v in TORCH_ENV.items()):
    # glibc reads its malloc settings at start: run again with them.
    os.execve(
      sys.executable,
      [sys.executable, '-m', 'jdl.transformer.race', *argv],
      dict(os.environ, **TORCH_ENV),
    )
  if args.framework == 'jdl' and args.threads:
    os.environ['XLA_FLAGS'] = (
      os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_multi_thread_eigen='
      f'{"false" if threads == 1 else "true"}'
    ).strip()
    os.environ.setdefault('JAX_PLATFORMS', 'cpu')

  import importlib

  from jdl.train.loop import Trainer
  from jdl.train.run import read_metrics

  kwargs = config.data.kwargs
  data = importlib.import_module(f'jdl.data.{config.data.name}')
  validation = data.validation_set(kwargs)
  # jdl's side: the translation task's own hook (`decode.validation_sentences`) translates them.
  config.decode.validation_sentences = args.eval_sentences or len(validation[0])
  validation = tuple(side[: config.decode.validation_sentences] for side in validation)
  try:
    if args.framework == 'jdl':
      trainer = Trainer(config)
      train = trainer.data.train
    else:
      train = data.load(**kwargs.to_dict()).train
    rows = train['tgt_segments']
    tokens_per_step = float((rows > 0).sum()) / len(rows) * config.batch_size
    print(
      f'{args.framework}: budget {config.max_seconds:g} s, {threads} thread(s); {len(rows)} '
      f'packed rows, ~{tokens_per_step:.0f} target tokens a step',
      flush=True,
    )
    if args.framework == 'jdl':
      trainer.fit(workdir)
    else:
      from jdl.transformer import peer_torch

      peer_torch.fit(config, workdir, train, validation, threads)
  except config_lib.ConfigError as e:
    print(f'race: config error: {e}', file=sys.stderr)
    return 2

  last = [r for r in read_metrics(workdir) if 'validation_bleu' in r][-1]
  outcome = {
    'framework': args.framework,
    'steps': last['step'],
    'seconds': round(last['seconds'], 1),
    'target_tokens_per_second': round(last['step'] * tokens_per_step / last['seconds'], 1),
    'validation_bleu': last['validation_bleu'],
    'validation_chrf': last['validation_chrf'],
  }
  print(json.dumps(outcome), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
