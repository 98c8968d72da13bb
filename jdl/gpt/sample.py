"""`jdl sample --workdir DIR --prompt "..."`: text from a trained language model (GPT or RNN).

The run comes from `jdl.train.run.load_run`; the generation is the task's `sample_text`
(`jdl.models.sampling` by default; a recurrent model carries its state instead of a KV cache).
Past a GPT's context the window slides: the last half of the context is read again and the
sampling goes on (`jdl.models.sampling.sample_text`).
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
  from jdl.models import sampling

  try:
    sampling.check_options(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
  except ValueError as e:
    p.error(str(e).replace('_', '-'))  # as the flags are spelled: --max-new-tokens, --top-k
  if args.num_samples < 1:
    p.error(f'num-samples must be at least 1, got {args.num_samples}')
  from jdl.train.errors import UsageError
  from jdl.train.run import load_run

  run = load_run(args.workdir)
  tokenizer = run.task.tokenizer()
  if tokenizer is None:
    raise UsageError(
      f'{args.workdir} is a {run.config.task} run, not a language model: jdl sample reads runs '
      'of experiments/gpt/ and experiments/rnn/char_bible.py'
    )
  context = run.config.model.get('context')
  slides = context and len(tokenizer.encode(args.prompt)) + args.max_new_tokens > context
  print(
    f'# {args.workdir}, step {run.step}; temperature {args.temperature}, top-k {args.top_k}, '
    f'top-p {args.top_p}'
    + (f'; past the context of {context} tokens the window slides' if slides else ''),
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
