"""`jdl sample --workdir DIR --prompt "..."`: text from a trained language model (GPT or RNN).

The run comes from `jdl.train.run.load_run`; the generation is the task's `sample_text`
(`jdl.models.sampling` by default; a recurrent model carries its state instead of a KV cache).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(
    prog='jdl sample', description='sample text from a trained language model (GPT or RNN)'
  )
  p.add_argument('--workdir', required=True, help='a run folder of `jdl train`')
  p.add_argument('--prompt', default='\n')
  p.add_argument('--temperature', type=float, default=1.0, help='0: greedy')
  p.add_argument('--top-k', type=int, default=0, help='0: no top-k filter')
  p.add_argument('--top-p', type=float, default=1.0, help='1: no nucleus filter')
  p.add_argument('--max-new-tokens', type=int, default=200)
  p.add_argument('--num-samples', type=int, default=1)
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  from jdl.train.run import load_run

  run = load_run(args.workdir)
  tokenizer = run.task.tokenizer()
  if tokenizer is None:
    raise SystemExit(f'jdl sample: {args.workdir} is a {run.config.task} run, not a text model')
  print(
    f'# {args.workdir}, step {run.step}; temperature {args.temperature}, top-k {args.top_k}, '
    f'top-p {args.top_p}',
    file=sys.stderr,
  )
  for i in range(args.num_samples):
    print(
      run.task.sample_text(
        run.model,
        tokenizer,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed + i,
      )
    )
    if i + 1 < args.num_samples:
      print('-' * 40)
  return 0
