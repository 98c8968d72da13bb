"""`jdl sentiment`: the sentiment unit of a trained byte-level mLSTM run.

  jdl sentiment --workdir DIR "text"        the unit's value after each byte of the text
        [--unit N] [--state cell|hidden] [--png FILE] [--file PATH (the text's bytes)]
  jdl sentiment probe --workdir DIR         features, L1 probe, data efficiency, the unit and
        [--max-bytes N --resamples R --permutations P --no-random --no-baseline
         --corpus snippets]
                                            its controls -> DIR/sentiment_probe.json
  jdl sentiment steer --workdir DIR         samples with the unit held positive and negative
        [--prompt TEXT --value V --n N --length L --temperature T]

The unit is the probe's (run `probe` first) unless --unit names one.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from jdl.train.errors import UsageError


def _unit(args) -> tuple[int, dict | None]:
  from jdl.sentiment import pipeline

  if args.unit is not None:
    return args.unit, None
  try:
    found = pipeline.read_probe(args.workdir)
  except FileNotFoundError as e:
    raise UsageError(f'{e}, or name a unit with --unit N') from None
  return found[args.state]['unit']['unit'], found[args.state]['unit']


def _text_bytes(args) -> bytes:
  if args.file:
    data = pathlib.Path(args.file).read_bytes()
  else:
    try:  # argv holds undecodable bytes as surrogates (PEP 383)
      data = args.text.encode('utf-8')
    except UnicodeEncodeError:
      raise UsageError('the text is not valid UTF-8; pass UTF-8 text (or --file PATH)') from None
  if not data.strip():
    raise UsageError('the text is empty: give the text to read, e.g. "a wonderful film"')
  try:
    data.decode('utf-8')
  except UnicodeDecodeError as e:
    raise UsageError(f'the text is not valid UTF-8 (byte {e.start}: {data[e.start]:#x})') from None
  return data


def show(args) -> int:
  from jdl.sentiment import features, figures, pipeline

  data = _text_bytes(args)
  _, model = pipeline.load_model(args.workdir)
  unit, info = _unit(args)
  width = model.rnn.forward_cells[-1].hidden_size
  if not 0 <= unit < width:
    raise UsageError(f'--unit {unit} is outside the {width} units of this run')
  values = features.byte_trace(model, data)[args.state][:, unit]
  sign = info['sign'] if info else 1
  print(
    f'# unit {unit} ({args.state} state, width {width}); positive reads '
    f'{"high" if sign > 0 else "low"}' + (f', threshold {info["threshold"]:+.3f}' if info else '')
  )
  print(f'{"byte":>5}  {"char":<6}{"value":>9}')
  for i, (b, v) in enumerate(zip(data, values, strict=True)):
    char = repr(chr(b))[1:-1] if b < 128 else f'\\x{b:02x}'
    print(f'{i:5d}  {char:<6}{v:+9.4f}')
  verdict = ''
  if info:
    positive = (values[-1] > info['threshold']) == (sign > 0)
    verdict = f' -> {"positive" if positive else "negative"}'
  print(f'# final value {values[-1]:+.4f}{verdict}')
  if args.png:
    path = figures.render_text(pathlib.Path(args.png), data, values, unit, sign)
    print(f'wrote {path}')
  return 0


def steer(args) -> int:
  from jdl.sentiment import pipeline
  from jdl.sentiment.steer import steered_samples

  run, model = pipeline.load_model(args.workdir)
  unit, info = _unit(args)
  sign = info['sign'] if info else 1
  tokenizer = run.task.tokenizer()
  for label, value in (
    ('positive', sign * args.value),
    ('negative', -sign * args.value),
    ('free', None),
  ):
    print(f'--- {label} (unit {unit} held at {value:+g})' if value is not None else f'--- {label}')
    samples = steered_samples(
      model,
      tokenizer,
      args.prompt,
      None if value is None else unit,
      value,
      n=args.n,
      max_new_tokens=args.length,
      temperature=args.temperature,
      seed=args.seed,
    )
    for s in samples:
      print(repr(s))
  return 0


def probe(args) -> int:
  from jdl.sentiment import pipeline

  pipeline.run_probe(
    args.workdir,
    max_bytes=args.max_bytes,
    resamples=args.resamples,
    permutations=args.permutations,
    random_control=not args.no_random,
    baseline=not args.no_baseline,
    corpus=args.corpus,
  )
  return 0


def main(argv: list[str]) -> int:
  if argv and argv[0] == 'probe':
    p = argparse.ArgumentParser(prog='jdl sentiment probe', description='the probe of a run')
    p.add_argument('--workdir', required=True)
    p.add_argument('--max-bytes', type=int, default=0, help='read at most N bytes of a review')
    p.add_argument('--resamples', type=int, default=10)
    p.add_argument('--permutations', type=int, default=100)
    p.add_argument('--no-random', action='store_true', help='skip the random-init control')
    p.add_argument('--no-baseline', action='store_true', help='skip TF-IDF')
    p.add_argument('--corpus', choices=('reviews', 'snippets'), default='reviews')
    return probe(p.parse_args(argv[1:]))
  if argv and argv[0] == 'steer':
    p = argparse.ArgumentParser(prog='jdl sentiment steer', description='steered samples')
    p.add_argument('--workdir', required=True)
    p.add_argument('--prompt', default='this movie is ')
    p.add_argument('--value', type=float, default=1.0, help='|value| the unit is held at')
    p.add_argument('--unit', type=int)
    p.add_argument('--state', choices=('cell',), default='cell')
    p.add_argument('--n', type=int, default=3)
    p.add_argument('--length', type=int, default=200)
    p.add_argument('--temperature', type=float, default=0.8)
    p.add_argument('--seed', type=int, default=0)
    return steer(p.parse_args(argv[1:]))
  p = argparse.ArgumentParser(
    prog='jdl sentiment',
    description=__doc__.splitlines()[0],
    epilog='also: jdl sentiment probe ..., jdl sentiment steer ...',
  )
  p.add_argument('--workdir', required=True)
  p.add_argument('text', nargs='?', default='')
  p.add_argument('--file', help="read the text's bytes from a file")
  p.add_argument('--unit', type=int)
  p.add_argument('--state', choices=('cell', 'hidden'), default='cell')
  p.add_argument('--png', help='also draw the text coloured by the unit into this PNG')
  args = p.parse_args(argv)
  return show(args)


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
