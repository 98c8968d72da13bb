"""Experiment configs: `experiments/<arch>/<name>.py[:arg]` files, `--config.key=value` overrides.

A config file defines `get_config(arg: str | None) -> ml_collections.ConfigDict`. The string after
`:` selects a variant (`:smoke` shrinks a run to seconds). Every experiment starts from
`base_config()`, so the training loop can rely on its keys being present.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import pathlib

import ml_collections
from etils import epath


class ConfigError(ValueError):
  """A config file, override or value that cannot be used; the message names the field."""


def base_config() -> ml_collections.ConfigDict:
  """The keys every experiment shares. Experiments change values; they never need new loop keys."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = ''  # module under jdl.tasks, e.g. 'regression'
  c.model = ml_collections.ConfigDict({'name': ''})
  c.data = ml_collections.ConfigDict({'name': ''})

  c.batch_size = 32  # global batch, across all processes
  c.eval_batch_size = 256
  c.num_epochs = 0  # when > 0, num_train_steps = num_epochs * steps_per_epoch
  c.num_train_steps = 0
  c.steps_per_call = 1  # training steps run inside one jit-compiled call (lax.scan)
  c.steps_unroll = 1  # lax.scan unroll of those steps: 4-8 speeds up tiny models on CPU
  c.grad_accum_steps = 1
  c.log_every_steps = 0  # 0: once per epoch
  c.eval_every_steps = 0  # 0: once per epoch; -1: only at the end
  c.checkpoint_every_steps = 0  # 0: once per epoch; -1: only at the end
  c.max_seconds = 0.0  # wall-clock budget of a run, compilation included (0: none)
  c.keep_checkpoints = 3
  c.async_checkpointing = True
  c.progress_bar = 'auto'  # 'auto' (on a terminal), 'always', 'never'

  c.optimizer = ml_collections.ConfigDict(
    {
      'name': 'sgd',  # any optax optimizer taking learning_rate: sgd, adam, adamw, lamb, ...
      'learning_rate': 0.01,
      'schedule': 'constant',  # constant, cosine, linear, rsqrt, staircase
      'warmup_steps': 0,
      'decay_every_steps': 0,  # staircase: multiply by decay_factor every this many steps
      'decay_factor': 1.0,
      'decay_fraction': 1.0,  # cosine/linear: hold the rate, then decay over this last fraction
      'weight_decay': 0.0,  # L2 decay added to the gradients (SGD-style, before momentum)
      'kwargs': ml_collections.ConfigDict(),  # extra keyword arguments of the optax optimizer
      'grad_clip_norm': 0.0,  # 0: no clipping
    }
  )

  c.dtype = 'float32'  # compute dtype: float32 or bfloat16; parameters stay float32
  c.mesh = ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1})  # -1 fills the rest
  # Logical axis names (used by the models) -> mesh axes. A dimension that the mesh axes do not
  # divide is replicated instead, so one rule set serves every model size.
  c.sharding_rules = (
    ('batch', ('data', 'fsdp')),
    ('embed', 'fsdp'),
    ('mlp', 'tensor'),
    ('heads', 'tensor'),
    ('kv', None),
    ('vocab', 'tensor'),
    ('conv_in', None),
    ('conv_out', 'tensor'),
  )
  return c


def load(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/file.py[:arg]` and calls its `get_config(arg)`."""
  path, _, arg = spec.partition(':')
  file = pathlib.Path(path)
  if not file.is_file():
    raise ConfigError(f'config file not found: {path} (see `jdl list` for the experiments)')
  module_spec = importlib.util.spec_from_file_location(f'jdl_config_{file.stem}', file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ConfigError(f'{path} defines no get_config(arg)')
  try:
    config = module.get_config(arg or None)
  except ValueError as e:  # an unknown variant, a value the file rejects
    raise ConfigError(f'{spec}: {e}') from None
  config.lock()  # from here on, a misspelled key is an error rather than a new field
  return config


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # a bare word such as adamw or bfloat16


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `config.<key>` from a command-line string, refusing unknown keys and wrong types."""
  *parents, leaf = key.split('.')
  node = config
  for depth, name in enumerate(parents + [leaf]):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      where = '.'.join(parents[:depth] + [name])
      choices = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      close = difflib.get_close_matches(name, choices, n=1)
      hint = f"; did you mean '{'.'.join(parents[:depth] + close)}'?" if close else ''
      raise ConfigError(f"unknown config key '{where}'{hint}")
    if name != leaf or depth < len(parents):
      node = node[name]
  value = _parse_value(text)
  old = node[leaf]
  if isinstance(old, str) and not isinstance(value, str):
    value = text  # '--config.task=123' on a string field means the string
  if isinstance(old, tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    with node.unlocked():
      node[leaf] = value
  except TypeError as e:
    raise ConfigError(
      f'config.{key}: cannot set {type(old).__name__} field to {text!r} ({e})'
    ) from None


def apply_overrides(config: ml_collections.ConfigDict, argv: list[str]) -> list[str]:
  """Consumes `--config.key=value` / `--config.key value` items; returns the other items."""
  rest, i = [], 0
  while i < len(argv):
    item = argv[i]
    if item.startswith('--config.'):
      body = item[len('--config.') :]
      if '=' in body:
        key, text = body.split('=', 1)
      else:
        if i + 1 >= len(argv):
          raise ConfigError(f'{item} needs a value')
        key, text = body, argv[i + 1]
        i += 1
      apply_override(config, key, text)
    else:
      rest.append(item)
    i += 1
  return rest


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the loop's own fields; tasks validate theirs in `Task.__init__`."""

  def need(ok: bool, field: str, why: str):
    if not ok:
      raise ConfigError(f'config.{field}: {why}')

  need(bool(config.task), 'task', 'must name a task module under jdl.tasks')
  need(config.batch_size > 0, 'batch_size', f'must be positive, got {config.batch_size}')
  need(
    config.num_epochs > 0 or config.num_train_steps > 0,
    'num_train_steps',
    'set num_epochs or num_train_steps',
  )
  need(config.steps_per_call >= 1, 'steps_per_call', 'must be >= 1')
  need(config.grad_accum_steps >= 1, 'grad_accum_steps', 'must be >= 1')
  need(
    config.batch_size % config.grad_accum_steps == 0,
    'grad_accum_steps',
    f'must divide batch_size {config.batch_size}',
  )
  need(config.eval_batch_size > 0, 'eval_batch_size', 'must be positive')
  need(
    config.dtype in ('float32', 'bfloat16', 'float16'),
    'dtype',
    f'must be float32, bfloat16 or float16, got {config.dtype!r}',
  )
  need(
    config.progress_bar in ('auto', 'always', 'never'),
    'progress_bar',
    "must be 'auto', 'always' or 'never'",
  )
  for axis in ('data', 'fsdp', 'tensor'):
    size = config.mesh[axis]
    need(size == -1 or size >= 1, f'mesh.{axis}', f'must be -1 or >= 1, got {size}')


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def write(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> None:
  """The run's `config.json`, in a local or remote (gs://) workdir."""
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'config.json').write_text(to_json(config) + '\n')
