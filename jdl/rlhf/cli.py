"""`jdl rlhf`: learning from preferences' tools.

jdl rlhf pairs [--policy runs/rlhf/sft --labeller runs/rlhf/labeller_bow_snippets --n 3000 ...]
      two sampled continuations per training prompt, labelled by the automatic labeller
      -> runs/rlhf/prefs4.jsonl (+ runs/rlhf/prefs4_heldout.jsonl from validation prompts)
jdl rlhf label --workdir DIR [--policy runs/rlhf/sft --n 20]
      a person labels pairs in the terminal (1 / 2 / tie / skip / q) -> DIR/prefs_human.jsonl
jdl rlhf eval --workdir RUN [--sft runs/rlhf/sft --labeller runs/rlhf/labeller_bow_snippets]
      fresh samples of a policy run on held-out prompts: the labeller's mean p(positive) with a
      bootstrap CI, KL to the supervised policy, bits per byte under it -> RUN/eval.json
"""

from __future__ import annotations

import argparse
import sys

# The bag-of-words labeller: no ScalarGPT classifier learned in the time here (docs/rlhf.md).
SFT, LABELLER = 'runs/rlhf/sft', 'runs/rlhf/labeller_bow_snippets'


def _sampling_args(p: argparse.ArgumentParser, n: int) -> None:
  p.add_argument('--n', type=int, default=n, help='prompts')
  p.add_argument('--prompt-bytes', type=int, default=64)
  p.add_argument('--continuation-bytes', type=int, default=48)
  p.add_argument('--temperature', type=float, default=1.0)
  p.add_argument('--seed', type=int, default=0)


def main(argv: list[str]) -> int:
  from jdl.rlhf import evaluate, preferences

  p = argparse.ArgumentParser(prog='jdl rlhf', description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='command', required=True, metavar='COMMAND')
  pairs = sub.add_parser('pairs', help='auto-labelled preference pairs from the SFT policy')
  pairs.add_argument('--policy', default=SFT, help='the run whose continuations are compared')
  pairs.add_argument('--labeller', default=LABELLER)
  pairs.add_argument('--labeller-temperature', type=float, default=0.25)
  pairs.add_argument('--out', default='runs/rlhf/prefs4.jsonl')
  pairs.add_argument('--heldout-out', default='runs/rlhf/prefs4_heldout.jsonl')
  pairs.add_argument('--heldout-n', type=int, default=400, help='validation prompts (0: none)')
  pairs.add_argument('--batch', type=int, default=128, help='continuations per sampling call')
  pairs.add_argument(
    '--per-prompt',
    type=int,
    default=4,
    help="continuations sampled per prompt; the pair is the labeller's best and worst of them",
  )
  pairs.add_argument(
    '--every-pair',
    action='store_true',
    help="every pair of the labeller's ranking of a prompt's continuations, not only its best "
    'and worst',
  )
  pairs.add_argument(
    '--relabel', action='store_true', help='label the kept samples (OUT.samples.json) again'
  )
  pairs.add_argument('--samples', default='', help='with --relabel: the kept samples to read')
  pairs.add_argument('--heldout-samples', default='', help='the same for the held-out prompts')
  _sampling_args(pairs, 3000)

  lab = sub.add_parser('label', help='label pairs yourself in the terminal')
  lab.add_argument('--workdir', required=True, help='folder of prefs_human.jsonl')
  lab.add_argument('--policy', default=SFT)
  lab.add_argument('--split', choices=('train', 'validation', 'test'), default='train')
  _sampling_args(lab, 20)

  ev = sub.add_parser('eval', help='evaluate a policy run on held-out prompts')
  ev.add_argument('--workdir', required=True, help='a policy run (SFT, PPO, DPO, RLOO)')
  ev.add_argument('--sft', default=SFT, help='the reference policy of the KL')
  ev.add_argument('--labeller', default=LABELLER)
  ev.add_argument('--step', type=int, default=None, help='a checkpoint (-> eval_stepS.json)')
  ev.add_argument('--resamples', type=int, default=2000, help='bootstrap resamples')
  ev.add_argument('--show', type=int, default=4, help='samples printed side by side')
  ev.add_argument(
    '--prompts', default='', help='a text file, one prompt a line (else test reviews)'
  )
  _sampling_args(ev, 0)
  ev.set_defaults(n=0)

  bow = sub.add_parser('bow-labeller', help='fit the bag-of-words labeller (the fallback)')
  bow.add_argument('--workdir', default=LABELLER)
  bow.add_argument('--C', type=float, default=0.1, help='inverse L2 strength')
  bow.add_argument(
    '--snippet-copies', type=int, default=3, help='times the training snippets are added'
  )

  args = p.parse_args(argv)
  if args.command == 'bow-labeller':
    import json

    from jdl.rlhf.labeller import fit_bow

    print(json.dumps(fit_bow(args.workdir, c=args.C, snippet_copies=args.snippet_copies), indent=2))
    return 0
  preferences.check_args(args) if args.command != 'eval' else evaluate.check_args(args)
  if args.command == 'pairs':
    return preferences.make_pairs(args)
  if args.command == 'label':
    return preferences.label(args)
  return evaluate.main(args)


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
