"""Training compute of a GPT config: `jdl compute --config FILE --tokens N [--mfu --chips]`.

The front end of jdl.train.cost's counts and chip table. Two counts of the FLOPs to train on D
tokens:

  6ND       (Kaplan et al. 2020; the GPT-3 paper's Table D.1): 2N per token forward, 4N backward.
  per layer: every matmul of the model as jdl computes it, forward per token
               L * (2*D*3D [qkv] + 2*T*D [QK^T] + 2*T*D [AV] + 2*D*D [out] + 2*2*D*F [MLP])
               + 2*D*V [logits through the tied embedding]
             times 3 for training (the backward pass costs two forwards). Attention scores are
             counted for the full T x T square, as computed (the causal half is masked, not
             skipped); layer norms, softmax and GELU are elementwise and left out.

PF-day = 10^15 FLOP/s for a day = 8.64e19 FLOPs. Time on hardware = FLOPs / (chips * peak * MFU).
"""

from __future__ import annotations

import argparse

from jdl.models.gpt import GPTConfig

# The counts and the chip table live in jdl.train.cost: `jdl compile` uses them too.
from jdl.train.cost import CHIPS, PF_DAY, days_to_train, training_flops
from jdl.train.errors import UsageError


def _parse_tokens(text: str) -> float:
  suffix = {'K': 1e3, 'M': 1e6, 'B': 1e9, 'T': 1e12}
  text = text.strip().upper()
  return float(text[:-1]) * suffix[text[-1]] if text[-1:] in suffix else float(text)


def _tokens(text: str) -> float:
  try:
    tokens = _parse_tokens(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'not a number of tokens: {text!r} (300e9 or 300B)') from None
  if not tokens > 0:  # also NaN
    raise argparse.ArgumentTypeError(f'must be positive, got {text}')
  return tokens


def _chips(text: str) -> int:
  if not (text.strip().isdigit() and int(text) > 0):
    raise argparse.ArgumentTypeError(f'must be a positive whole number, got {text}')
  return int(text)


def _mfu(text: str) -> float:
  try:
    mfu = float(text)
  except ValueError:
    mfu = float('nan')
  if not 0 < mfu <= 1:
    raise argparse.ArgumentTypeError(f'must be a fraction in (0, 1], got {text}')
  return mfu


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(prog='jdl compute', description=__doc__.splitlines()[0])
  p.add_argument('--config', required=True, help='experiments/gpt/<name>.py')
  p.add_argument(
    '--tokens', type=_tokens, required=True, help='training tokens, e.g. 300e9 or 300B'
  )
  p.add_argument('--mfu', type=_mfu, default=0.4, help='model FLOPs utilization, in (0, 1]')
  p.add_argument('--chips', type=_chips, default=1024)
  p.add_argument('--hardware', default='all', choices=[*sorted(CHIPS), 'all'])
  args = p.parse_args(argv)
  from jdl import config as config_lib

  config = config_lib.load(args.config)
  if config.model.get('name') != 'gpt':
    raise UsageError(
      f'{args.config} is a {config.task or "?"} config of model '
      f'{config.model.get("name") or "?"}; jdl compute counts GPT models (experiments/gpt/)'
    )
  cfg = GPTConfig.from_config(config.model, config.dtype)
  tokens = args.tokens
  f = training_flops(cfg, tokens)
  print(f'{args.config}: {f["params"]:,} parameters, {tokens:.4g} tokens, context {cfg.context}')
  print(f'  6ND                  {f["six_nd"]:.3e} FLOPs = {f["six_nd"] / PF_DAY:10.4g} PF-days')
  print(
    f'  per-layer (exact)    {f["exact"]:.3e} FLOPs = {f["exact"] / PF_DAY:10.4g} PF-days '
    f'({f["exact"] / f["six_nd"]:.3f} x 6ND; attention over the context and the logits '
    f'make the difference)'
  )
  chips = sorted(CHIPS) if args.hardware == 'all' else [args.hardware]
  print(f'\ntime to train (exact FLOPs) on {args.chips} chips at MFU {args.mfu:.0%}:')
  for name in chips:
    chip = CHIPS[name]
    days = days_to_train(f['exact'], name, args.chips, args.mfu)
    print(
      f'  {name:8s} {chip.bf16_flops / 1e12:6.0f} TFLOP/s bf16, '
      f'{chip.hbm_bytes_per_s / 1e12:5.2f} TB/s: {days:10.2f} days '
      f'({days * 24:.4g} hours)'
    )
  return 0
