"""`jdl ioi`: the indirect-object-identification task and circuit of a GPT.

  jdl ioi eval    --workdir RUN            accuracy and logit difference, training and held-out
                                           names and templates
  jdl ioi circuit --workdir RUN [--json F] the circuit by path patching, and how faithful it is
  jdl ioi eval    --hf DIR                 the same for a Hugging Face GPT-2 folder (GPT-2 small:
                                           `model.safetensors` + `config.json`, GPT-2's BPE)

`eval` reports the four mixes of the IOI training text's names and templates with those it holds
out (jdl.data.ioi); `circuit` reads the mix of --names-from and --templates-from (default:
training names and templates, in new combinations). --names replaces the names (each must be
one token with its leading space).
"""

from __future__ import annotations

import argparse
import json
import pathlib


def load_model(workdir: str | None, hf: str | None):
  """(model, tokenizer) of a jdl GPT run or of a Hugging Face GPT-2 folder (GPT-2's BPE)."""
  from jdl.models.gpt import GPT
  from jdl.train.errors import UsageError

  if hf:
    from jdl.data import tokenizers
    from jdl.models import hf_gpt2

    if not (pathlib.Path(hf) / 'config.json').is_file():
      raise UsageError(f'--hf {hf}: no config.json there (a Hugging Face GPT-2 folder is needed)')
    return hf_gpt2.load(hf), tokenizers.gpt2()
  from jdl.train.run import load_run

  run = load_run(workdir)
  if not isinstance(run.model, GPT):
    raise UsageError(
      f'--workdir {workdir}: a {type(run.model).__name__} run; the IOI tools read GPT runs'
    )
  return run.model, run.task.tokenizer()


def _data(tokenizer, n: int, seed: int, names: str, names_from='train', templates_from='train'):
  from jdl.data import ioi
  from jdl.interp import circuit

  if not names:
    return circuit.prompt_data(tokenizer, n, seed, names_from, templates_from)
  words = tuple(w.strip() for w in names.split(',') if w.strip())
  vocab = ioi.Vocabulary.single(tokenizer, names=words)
  if len(vocab.names) < len(words):  # name them: prompts() refuses the first that is not one
    ioi.prompts(tokenizer, 2, vocab=ioi.Vocabulary(names=words))
  clean = ioi.prompts(tokenizer, n, seed=seed, vocab=vocab)
  return circuit.Data(clean, ioi.corrupted(tokenizer, clean, seed=seed + 1))


def _print_classes(found: dict) -> None:
  print(f'circuit (path effects <= -{found["threshold"]} of the clean-corrupted gap):')
  for name, heads in found['classes'].items():
    print(f'  {name:<20} {", ".join(f"{a}.{b}" for a, b in heads) or "-"}')


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(prog='jdl ioi', description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='command', required=True)
  for name, text in (('eval', 'how well a model does the task'), ('circuit', 'find the circuit')):
    c = sub.add_parser(name, help=text)
    where = c.add_mutually_exclusive_group(required=True)
    where.add_argument('--workdir', help='a jdl GPT run')
    where.add_argument('--hf', help='a Hugging Face GPT-2 folder (config.json, model.safetensors)')
    c.add_argument('--prompts', type=int, default=200)
    c.add_argument('--seed', type=int, default=0)
    c.add_argument('--names', default='', help='comma-separated names to use instead')
    c.add_argument('--names-from', choices=('train', 'held'), default='train')
    c.add_argument('--templates-from', choices=('train', 'held'), default='train')
    if name == 'circuit':
      c.add_argument('--threshold', type=float, default=0.1)
      c.add_argument('--json', default='', help='write the whole analysis here')
  args = p.parse_args(argv)

  from jdl.interp import circuit
  from jdl.train.errors import UsageError

  if args.prompts < 2:
    raise UsageError(f'--prompts {args.prompts}: at least 2')
  model, tokenizer = load_model(args.workdir, args.hf)
  mixes = [(args.names_from, args.templates_from)]
  if args.command == 'eval' and not args.names:
    mixes = [(n, t) for n in ('train', 'held') for t in ('train', 'held')]
  for names_from, templates_from in mixes:
    try:
      data = _data(tokenizer, args.prompts, args.seed, args.names, names_from, templates_from)
    except ValueError as e:
      raise UsageError(str(e)) from None
    if data.clean.tokens.shape[1] > model.cfg.context:
      raise UsageError(
        f'the prompts are {data.clean.tokens.shape[1]} tokens long, more than the model context '
        f'of {model.cfg.context}'
      )
    scores = circuit.evaluate(model, data.clean)
    what = 'given names' if args.names else f'{names_from} names, {templates_from} templates'
    print(
      f'{scores["prompts"]} prompts ({what}): logit diff {scores["logit_diff"]:.3f} '
      f'(std {scores["logit_diff_std"]:.3f}), IO > S {scores["io_over_s"]:.1%}, '
      f'IO top-1 {scores["top1"]:.1%}, P(IO) {scores["p_io"]:.3f}'
    )
  if args.command == 'eval':
    return 0
  found = circuit.find(model, data, args.threshold)
  _print_classes(found)
  judged = circuit.judge(model, data, found['classes'])
  print(
    f'faithfulness F(C)/F(M) = {judged["F(C)"]:.3f} / {judged["F(M)"]:.3f} = '
    f'{judged["faithfulness"]:.1%} ({judged["heads"]} heads; all heads ablated: '
    f'{judged["F(empty)"]:.3f})'
  )
  for name, c in judged['completeness'].items():
    print(f'  without {name:<20} F(C-K) {c["F(C-K)"]:7.3f}   F(M-K) {c["F(M-K)"]:7.3f}')
  if args.json:
    out = {'evaluate': scores, **circuit.to_json(found), 'judge': judged}
    pathlib.Path(args.json).write_text(json.dumps(out, indent=1))
    print(f'wrote {args.json}')
  return 0
