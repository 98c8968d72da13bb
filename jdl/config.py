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
import os
import re
import traceback

import ml_collections
from etils import epath

from jdl import paths


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
      'final_fraction': 0.0,  # cosine/linear: decay to this fraction of the rate (GPT-3: 0.1)
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
  module = _module(path)
  try:
    config = module.get_config(arg or None)
  except ValueError as e:  # an unknown variant, a value the file rejects
    raise ConfigError(f'{spec}: {e}') from None
  except Exception as e:  # a mistake in the file's own code: where, in one line
    raise ConfigError(f'{spec}: get_config failed{_where(e, module)}: {_reason(e)}') from None
  config.lock()  # from here on, a misspelled key is an error rather than a new field
  return config


def _module(path: str):
  """The config file as a module; a file that is missing, does not parse or fails to run is a
  ConfigError naming the file (and the line)."""
  file = paths.config_file(path)  # experiments/... also names the copy installed with jdl
  if not file.is_file():
    raise ConfigError(f'config file not found: {path} (see `jdl list` for the experiments)')
  module_spec = importlib.util.spec_from_file_location(f'jdl_config_{file.stem}', file)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f'{path}, line {e.lineno}: syntax error: {e.msg}') from None
  except Exception as e:  # an import that fails, a name that is not defined
    raise ConfigError(f'{path} cannot be loaded{_where(e, module)}: {_reason(e)}') from None
  if not hasattr(module, 'get_config'):
    raise ConfigError(f'{path} defines no get_config(arg)')
  return module


def _where(error: BaseException, module) -> str:
  """' (line N)': the innermost line of the config file in the error's traceback."""
  lines = [
    frame.lineno
    for frame in traceback.extract_tb(error.__traceback__)
    if os.path.abspath(frame.filename) == os.path.abspath(module.__file__)
  ]
  return f' (line {lines[-1]})' if lines else ''


def _reason(error: BaseException) -> str:
  return f'{type(error).__name__}: {error}'


def variants(path: str) -> str:
  """The variants a config file accepts after `:`, as the file itself lists them in the error of
  an unknown one (every experiment's `get_config` ends with such a check)."""
  try:
    _module(path).get_config('?')
  except ValueError as e:
    found = re.search(r'unknown variant(?:\(s\))? \S+ \((.*)\)$', str(e), re.S)
    return found.group(1) if found else 'none but the default'
  except Exception:
    return 'unknown (get_config fails on an unknown variant)'
  return 'any (the file does not check)'


def describe(spec: str) -> str:
  """What `jdl train --config SPEC --help` adds: every field of the config with its value (each
  one can be overridden), and the file's variants."""
  config = load(spec)
  path = spec.partition(':')[0]

  def fields(node, prefix=''):
    for key, value in node.items():
      if isinstance(value, ml_collections.ConfigDict) and len(value):
        yield from fields(value, f'{prefix}{key}.')
      else:
        text = repr(value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value)
        yield f'  {prefix}{key} = {text if len(text) <= 90 else text[:87] + "..."}'

  return '\n'.join(
    [f'Fields of {spec} (set any with --config.FIELD=VALUE):', *fields(config), '']
    + [f'Variants ({path}:VARIANT): {variants(path)}']
  )


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


def write(config: ml_collections.ConfigDict, workdir: epath.PathLike, resumed_at: int = 0) -> str:
  """The run's `config.json`, in a local or remote (gs://) workdir. A run resumed at step
  `resumed_at` with another config than it trained with so far (more epochs, another rate) keeps
  that one as `config.until_step_<step>.json`: the returned line says what changed ('' if
  nothing did)."""
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  path, text, note = workdir / 'config.json', to_json(config) + '\n', ''
  if resumed_at and path.exists():
    before, now = _flat(json.loads(path.read_text())), _flat(json.loads(text))
    changed = [
      f'{k} {before.get(k, "(absent)")} -> {now.get(k, "(absent)")}'
      for k in sorted(set(before) | set(now))
      if before.get(k) != now.get(k)
    ]
    if changed:
      kept = workdir / f'config.until_step_{resumed_at}.json'
      kept.write_text(path.read_text())
      more = f'; and {len(changed) - 5} more' if len(changed) > 5 else ''
      note = (
        f'the config changed at step {resumed_at} ({"; ".join(changed[:5])}{more}); the one '
        f'before is kept in {kept.name}'
      )
  path.write_text(text)
  return note


def _flat(tree: dict, prefix: str = '') -> dict:
  """{'optimizer.learning_rate': 0.01, ...} of a nested dict."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out
