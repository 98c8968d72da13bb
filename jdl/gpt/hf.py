"""`jdl hf export --workdir RUN --out DIR`: a trained jdl GPT as a Hugging Face GPT-2 folder.

The folder (`config.json` + `model.safetensors`) is what `GPT2LMHeadModel.from_pretrained(DIR)`
reads, and what `jdl.models.hf_gpt2.load(DIR)` reads back bitwise. The mapping, both ways, is
`jdl.models.hf_gpt2`; a GPT-1-style (post-LN) run is refused by name. The tokenizer is not
written: a GPT-2-BPE run uses GPT-2's own (`GPT2TokenizerFast.from_pretrained('gpt2')` where it
is at hand).
"""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(
    prog='jdl hf', description='jdl GPT runs and Hugging Face GPT-2 checkpoints'
  )
  sub = p.add_subparsers(dest='command', required=True, metavar='COMMAND')
  e = sub.add_parser('export', help='a GPT run as a GPT2LMHeadModel folder')
  e.add_argument('--workdir', required=True, help='a run folder of `jdl train` (a GPT config)')
  e.add_argument('--out', required=True, help='the folder to write (created)')
  e.add_argument('--step', type=int, default=None, help='a checkpoint step (default: newest)')
  args = p.parse_args(argv)

  from jdl.models import hf_gpt2
  from jdl.train.errors import UsageError
  from jdl.train.run import load_run

  run = load_run(args.workdir, args.step)
  try:
    out = hf_gpt2.save(run.model, args.out)
  except ValueError as err:
    raise UsageError(f'{args.workdir} (step {run.step}) cannot be exported: {err}') from err
  print(f'{args.workdir}, step {run.step} -> {out}/config.json, {out}/model.safetensors')
  return 0
