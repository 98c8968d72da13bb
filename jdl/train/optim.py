"""Optimizers and learning-rate schedules from the config, all from optax."""

from __future__ import annotations

import ml_collections
import optax

from jdl.config import ConfigError


def schedule(opt: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Warm-up, then the named schedule. For the decaying schedules (cosine, linear),
  `decay_fraction` < 1 holds the rate constant until the last fraction of the steps (CycleGAN:
  constant for the first half, then linear to zero); they end at `final_fraction` of the rate
  (GPT-3: cosine to 10%)."""
  lr, warmup = opt.learning_rate, opt.warmup_steps
  fraction = opt.get('decay_fraction', 1.0)
  if not 0 < fraction <= 1:
    raise ConfigError(f'config.optimizer.decay_fraction: must be in (0, 1], got {fraction}')
  final = opt.get('final_fraction', 0.0)
  if not 0 <= final <= 1:
    raise ConfigError(f'config.optimizer.final_fraction: must be in [0, 1], got {final}')
  decay_steps = max(round((total_steps - warmup) * fraction), 1)
  hold = max(total_steps - warmup - decay_steps, 0) if opt.schedule in ('cosine', 'linear') else 0
  match opt.schedule:
    case 'constant':
      main = optax.constant_schedule(lr)
    case 'cosine':
      main = optax.cosine_decay_schedule(lr, decay_steps, alpha=final)
    case 'linear':
      main = optax.linear_schedule(lr, lr * final, decay_steps)
    case 'rsqrt':  # the Transformer's inverse square root, continuing from the warm-up's peak
      main = lambda step: lr * (max(warmup, 1) / (step + max(warmup, 1))) ** 0.5
    case 'staircase':  # GoogLeNet's "decrease by 4% every 8 epochs"
      if opt.decay_every_steps <= 0:
        raise ConfigError(
          'config.optimizer.decay_every_steps: the staircase schedule needs a positive interval'
        )
      main = optax.exponential_decay(lr, opt.decay_every_steps, opt.decay_factor, staircase=True)
    case other:
      raise ConfigError(
        f"config.optimizer.schedule: unknown schedule '{other}' "
        '(constant, cosine, linear, rsqrt, staircase)'
      )
  if hold:
    main = optax.join_schedules([optax.constant_schedule(lr), main], [hold])
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def for_network(opt: ml_collections.ConfigDict, network: str) -> ml_collections.ConfigDict:
  """The optimizer of one network: `config.optimizer` with the fields of its section
  `config.optimizer.<network>` (if any) in place of the shared ones."""
  shared = {k: v for k, v in opt.items() if not _is_section(k, v)}
  section = opt.get(network)
  if section is not None and _is_section(network, section):
    if unknown := sorted(set(section) - set(shared)):
      raise ConfigError(
        f'config.optimizer.{network}: unknown optimizer field(s) {unknown} '
        f'(known: {sorted(shared)})'
      )
    shared.update(section.to_dict())
  return ml_collections.ConfigDict(shared)


def _is_section(key: str, value) -> bool:
  return isinstance(value, ml_collections.ConfigDict) and key != 'kwargs'


def make(opt: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """`optax.<name>(learning_rate=schedule, **kwargs)`, with optional global-norm clipping."""
  factory = getattr(optax, opt.name, None)
  if factory is None or not callable(factory):
    raise ConfigError(f"config.optimizer.name: optax has no optimizer '{opt.name}'")
  try:
    tx = factory(learning_rate=schedule(opt, total_steps), **opt.kwargs.to_dict())
  except TypeError as e:
    raise ConfigError(f'config.optimizer: {e}') from None
  if opt.weight_decay > 0:
    tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
  if opt.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx
