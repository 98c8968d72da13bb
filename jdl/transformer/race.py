"""Equal wall time: jdl's Transformer or the PyTorch `nn.Transformer` peer trained for the same
number of minutes on the same packed rows (the same batches in the same order), with validation
BLEU measured along the way.

  python -m jdl.transformer.race --framework jdl --workdir runs/transformer/de_en --minutes 25
  python -m jdl.transformer.race --framework torch --workdir runs/transformer/torch_de_en \
      --minutes 25

Every `--eval-minutes` of training the clock stops, the validation set is translated greedily
and scored (BLEU, chrF); the clock runs again. At the end the test set is scored the same way
(greedy for both frameworks: PyTorch's `nn.Transformer` has no beam search), and `race.json`
holds the curve. jdl's run also writes config.json and a checkpoint, so `jdl translate` and
`jdl figures` can use it. jdl's training time includes its compilation.

For a fair split of a 2-core machine run both at once, each pinned to its own core with one
thread: `taskset -c 0 ... --threads 1` and `taskset -c 1 ... --threads 1`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

from jdl.bench.common import TORCH_ENV


class JdlRunner:
  """The loop's own compiled steps (`loop.build` + `loop.compile_steps`), as `jdl train`."""

  def __init__(self, config, train, workdir: pathlib.Path):
    import jax

    from jdl import sharding
    from jdl.data import pipeline
    from jdl.train import loop

    self.config, self.workdir = config, workdir
    self.task = loop.get_task(config)
    self.mesh = sharding.make_mesh(config.mesh)
    jax.set_mesh(self.mesh)
    key, _, self.shardings, init = loop.build(self.task, config.num_train_steps, self.mesh)
    self.per_call = config.steps_per_call
    self.run = loop.compile_steps(
      self.task, self.shardings, self.mesh, self.per_call, config.steps_unroll
    )
    self.state = init(key)
    self.batches = iter(
      pipeline.train_dataset(train, config.batch_size, config.seed, steps_per_call=self.per_call)
    )
    self.global_batch = sharding.global_batch

  def steps(self) -> tuple[int, float]:
    """One compiled call; returns (steps taken, last loss), waiting for the result."""
    local = next(self.batches)
    self.last_tokens = int((local['src_segments'] > 0).sum() + (local['tgt_segments'] > 0).sum())
    batch = self.global_batch(local, self.mesh, stacked=self.per_call > 1)
    self.state, metrics = self.run(self.state, batch)
    return self.per_call, float(metrics['loss'][-1])

  def model(self):
    return self.task.merge(self.state.params, self.state.model_state)

  def translate(self, tok, sentences: list[str]) -> list[str]:
    from jdl.transformer import evaluate

    return evaluate.translate(
      self.model(),
      tok,
      sentences,
      beam_size=0,
      max_extra_tokens=self.config.decode.max_extra_tokens,
    )

  def save(self, step: int) -> None:
    from jdl import config as config_lib
    from jdl.train.checkpoint import Checkpointer

    config_lib.write(self.config, self.workdir)
    checkpointer = Checkpointer(self.workdir, 1, async_save=False)
    checkpointer.save(step, self.state, self.batches.get_state())
    checkpointer.close()


class TorchRunner:
  def __init__(self, config, train, threads: int):
    from jdl.data import pipeline
    from jdl.transformer.peer_torch import TorchTrainer

    self.config = config
    self.trainer = TorchTrainer(config, threads)
    # The same batches as jdl's, one step at a time.
    self.batches = iter(pipeline.train_dataset(train, config.batch_size, config.seed))

  def steps(self) -> tuple[int, float]:
    return 1, self.trainer.step(next(self.batches))

  def translate(self, tok, sentences: list[str]) -> list[str]:
    from jdl.models import decoding as decode

    ids = tok.encode_batch(sentences)
    order = np.argsort([len(x) for x in ids], kind='stable')
    out = [''] * len(sentences)
    extra = self.config.decode.max_extra_tokens
    for start in range(0, len(order), 64):
      chunk = order[start : start + 64]
      src = decode.pad_batch([ids[i] for i in chunk])
      tokens = self.trainer.greedy(src, src.shape[1] + extra)
      for row, i in enumerate(chunk):
        out[i] = tok.decode(tokens[row])
    return out

  def save(self, step: int) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='python -m jdl.transformer.race', description=__doc__)
  p.add_argument('--framework', choices=('jdl', 'torch'), required=True)
  p.add_argument('--config', default='experiments/transformer/ding_de_en.py')
  p.add_argument('--workdir', required=True)
  p.add_argument('--minutes', type=float, default=25.0, help='training wall time')
  p.add_argument('--eval-minutes', type=float, default=5.0)
  p.add_argument(
    '--eval-sentences',
    type=int,
    default=250,
    help='validation sentences translated for each point of the curve (0: all)',
  )
  p.add_argument('--threads', type=int, default=0, help='0: all cores')
  args, extra = p.parse_known_args(argv)
  threads = args.threads or os.cpu_count()
  if args.framework == 'torch' and any(os.environ.get(k) != v for k, v in TORCH_ENV.items()):
    # glibc reads its malloc settings at start: run again with them.
    os.execve(
      sys.executable,
      [sys.executable, '-m', 'jdl.transformer.race', *sys.argv[1:]],
      dict(os.environ, **TORCH_ENV),
    )
  if args.framework == 'jdl' and args.threads:
    os.environ['XLA_FLAGS'] = (
      os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_multi_thread_eigen='
      f'{"false" if threads == 1 else "true"}'
    ).strip()
    os.environ.setdefault('JAX_PLATFORMS', 'cpu')

  from jdl import config as config_lib
  from jdl.data import ding
  from jdl.transformer import evaluate

  config = config_lib.load(args.config)
  config_lib.apply_overrides(config, extra)
  kwargs = config.data.kwargs
  splits = ding.load(**kwargs.to_dict())
  tok = ding.tokenizer(kwargs.vocab_size, kwargs.seed)
  validation = ding.oriented(
    ding.splits(kwargs.seed)['validation'][: args.eval_sentences or None], kwargs.direction
  )
  test = ding.test_set(kwargs)
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  runner = (
    JdlRunner(config, splits.train, workdir)
    if args.framework == 'jdl'
    else TorchRunner(config, splits.train, threads)
  )
  rows_tokens = int((splits.train['tgt_segments'] > 0).sum()) / len(splits.train['src'])
  print(
    f'{args.framework}: {args.minutes} min, {threads} thread(s); '
    f'{len(splits.train["src"])} packed rows, ~{rows_tokens * config.batch_size:.0f} target '
    f'tokens a step',
    flush=True,
  )

  curve, step, trained, next_eval = [], 0, 0.0, args.eval_minutes * 60
  budget = args.minutes * 60

  def score(split_pairs):
    sources, references = split_pairs
    t = time.perf_counter()
    hyps = runner.translate(tok, sources)
    return {
      **evaluate.corpus_scores(hyps, references),
      'eval_seconds': time.perf_counter() - t,
      'example': hyps[0],
    }

  while trained < budget:
    t = time.perf_counter()
    k, loss = runner.steps()
    trained += time.perf_counter() - t
    step += k
    if trained >= next_eval or trained >= budget:
      record = {'step': step, 'train_seconds': trained, 'loss': loss, **score(validation)}
      curve.append(record)
      print(json.dumps(record, ensure_ascii=False), flush=True)
      next_eval += args.eval_minutes * 60
  final = score(test)
  result = {
    'framework': args.framework,
    'minutes': args.minutes,
    'threads': threads,
    'steps': step,
    'train_seconds': trained,
    'target_tokens_per_second': step * rows_tokens * config.batch_size / trained,
    'test_greedy': final,
    'validation_curve': curve,
    'direction': kwargs.direction,
    'model': config.model.to_dict(),
  }
  print(
    json.dumps({k: v for k, v in result.items() if k != 'validation_curve'}, ensure_ascii=False),
    flush=True,
  )
  runner.save(step)
  (workdir / 'race.json').write_text(json.dumps(result, indent=2, ensure_ascii=False) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
