"""What the RLHF tasks share: preference pairs as byte batches, prompts as fixed-width rows, the
weights of the runs a stage starts from, and the policy models (which networks, by which names).

Every stage after supervised fine-tuning starts from earlier runs, named by path in the config:
`config.sft_run` (the policy, the reference, the reward model's and the value function's trunk)
and `config.rm_run` (PPO's and RLOO's reward model). A missing run is refused with the command
that makes it (`config.sft_config` / `config.rm_config` name the config file that trains it).
The weights are copied in when the train state is initialised (a fresh run) and are part of every
checkpoint after that: a finished run loads (`jdl.train.run.load_run`) without the runs it came
from.

Config fields read here: sft_run, sft_config, rm_run, rm_config, model (the policy's GPT shape:
the SFT run's, with dropout 0, since a policy's log-probabilities must not depend on a dropout
mask), data.{pairs, validation_pairs, holdout_fraction, prompt_bytes, completion_bytes}.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl.config import ConfigError
from jdl.data import preferences
from jdl.models.gpt import GPT, GPTConfig
from jdl.models.scalar_head import ScalarGPT, at_last
from jdl.train import task as base

# ---- the runs a stage starts from --------------------------------------------------------------


def require_run(config, which: str) -> str:
  """The path of `config.<which>_run` ('sft' or 'rm'), refused with the command that trains it
  when it holds no checkpoint."""
  path = config[f'{which}_run']
  if not os.path.isdir(os.path.join(path, 'checkpoints')) or not os.listdir(
    os.path.join(path, 'checkpoints')
  ):
    raise ConfigError(
      f'config.{which}_run: {path} holds no trained run; make it first with '
      f'`jdl train --config {config[f"{which}_config"]} --workdir {path}`'
    )
  return path


@functools.cache
def _run_params(path: str) -> tuple[dict, dict]:
  """(the run's model config as a dict, its parameters as a nested dict of numpy arrays)."""
  from jdl.train.run import load_config, load_run

  config = load_config(path)
  if config.get('init_from'):  # (the labeller) its weights are in its checkpoint already
    with config.unlocked():
      config.init_from = ''
  run = load_run(path, config=config)
  params = nnx.to_pure_dict(nnx.state(run.model, nnx.Param))
  return run.config.model.to_dict(), jax.tree.map(np.asarray, params)


def run_params(path: str) -> tuple[dict, dict]:
  """A trained run's model config and parameters (numpy), read once per process: `load_data`
  reads them, so the init's host callback finds them here and runs no JAX of its own."""
  return _run_params(os.path.abspath(path))


SHAPE_FIELDS = ('vocab_size', 'context', 'n_layer', 'n_head', 'd_model', 'd_ff', 'post_ln')


def check_shape(model, which: str, saved_model: dict) -> None:
  """A config's model section must have the shape of the run it copies weight by weight."""
  differ = [
    f'{k} {model[k]} (the run has {saved_model.get(k)})'
    for k in SHAPE_FIELDS
    if model[k] != saved_model.get(k)
  ]
  if differ:
    raise ConfigError(
      f'the model shape differs from {which}: {", ".join(differ)}; the weights are copied one '
      'to one'
    )


def initial_params(params: dict, sources: dict[str, tuple[str, str]]) -> dict:
  """`params` with the subtrees named in `sources` ({attribute: (run path, 'lm' | 'trunk' |
  'scalar')}) replaced by a trained run's weights, inside the compiled init: a language model
  run into a GPT ('lm') or into a ScalarGPT's trunk ('trunk', the head stays fresh), a ScalarGPT
  run into a ScalarGPT ('scalar'). The arrays come in through a host callback (not as constants
  of the program, which would be compiled in)."""
  out = dict(params)
  for name, (path, kind) in sources.items():
    target = params[name]['trunk'] if kind == 'trunk' else params[name]
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target)

    def read(path=path):
      return jax.tree.map(np.asarray, run_params(path)[1])

    loaded = jax.pure_callback(read, shapes)
    out[name] = dict(params[name], trunk=loaded) if kind == 'trunk' else loaded
  return out


class FromRuns:
  """Mixin of the RLHF tasks: the train state starts from trained runs (`weight_sources`), which
  `load_data` checks (and reads) before anything is compiled."""

  def weight_sources(self) -> dict[str, tuple[str, str]]:
    raise NotImplementedError

  def check_runs(self) -> None:
    for which in ('sft', 'rm', 'labeller'):
      if any(path == self.config.get(f'{which}_run') for path, _ in self.weight_sources().values()):
        path = require_run(self.config, which)
        model = self.config.labeller_model if which == 'labeller' else self.config.model
        check_shape(model, f'config.{which}_run {path}', run_params(path)[0])
    rl = self.config.get('ppo')
    if rl is not None:  # the rollouts must be scored as the reward model was trained to read
      from jdl.train.run import load_config

      trained = load_config(self.config.rm_run).data
      for field, default in (('reward_input', 'full'), ('reward_pooling', 'last')):
        if rl.get(field, default) != trained.get(field, default):
          raise ConfigError(
            f'config.ppo.{field} is {rl.get(field, default)!r}, but the reward model '
            f'{self.config.rm_run} was trained with {trained.get(field, default)!r} '
            f'(its data.{field})'
          )

  def init_state(self, plan: base.Plan, key: jax.Array) -> base.TrainState:
    state = super().init_state(plan, key)
    params = initial_params(state.params, self.weight_sources())
    return state.replace(params=params, opt_state=plan.tx.init(params))


def policy_config(config) -> GPTConfig:
  return GPTConfig.from_config(config.model, config.dtype)


# ---- preference pairs as byte batches ----------------------------------------------------------


def encode_pairs(
  pairs: list[preferences.Pair], prompt_bytes: int, completion_bytes: int
) -> dict[str, np.ndarray]:
  """Pairs as right-padded byte rows of width prompt_bytes + completion_bytes: 'chosen' and
  'rejected' [N, W] int32 (prompt then completion, zeros after), 'prompt_len', 'chosen_len',
  'rejected_len' [N]. A prompt longer than `prompt_bytes` is refused (the limit named); a
  completion longer than `completion_bytes` (a sample decoded with replacement characters) keeps
  its first completion_bytes bytes."""
  width = prompt_bytes + completion_bytes
  n = len(pairs)
  out = {k: np.zeros((n, width), np.int32) for k in ('chosen', 'rejected')}
  out.update({k: np.zeros(n, np.int32) for k in ('prompt_len', 'chosen_len', 'rejected_len')})
  for i, pair in enumerate(pairs):
    prompt = pair.prompt.encode('utf-8')
    if len(prompt) > prompt_bytes:
      raise ConfigError(
        f'pair {i}: its prompt is {len(prompt)} bytes, over the limit of config.data.prompt_bytes '
        f'= {prompt_bytes} (prompt + completion must fit the context of the policy)'
      )
    out['prompt_len'][i] = len(prompt)
    for key in ('chosen', 'rejected'):
      row = prompt + getattr(pair, key).encode('utf-8')[:completion_bytes]
      out[key][i, : len(row)] = np.frombuffer(row, np.uint8)
      out[f'{key}_len'][i] = len(row)
  return out


def pair_splits(config, without_prompt: bool = False) -> base.Splits:
  """The preference pairs of `config.data.pairs` for training and 'validation' pairs: those of
  `config.data.validation_pairs` or, when it is empty, a seeded `holdout_fraction` of the pairs
  held out by prompt (both continuations of a prompt on the same side). Ties are dropped, and
  counted. `without_prompt`: every row is the continuation alone."""
  d = config.data
  pairs, ties = preferences.split_ties(preferences.read(d.pairs))
  if d.validation_pairs:
    train, held, held_ties = pairs, *preferences.split_ties(preferences.read(d.validation_pairs))
    ties += held_ties
  else:
    prompts = sorted({p.prompt for p in pairs})
    order = np.random.default_rng(config.seed).permutation(len(prompts))
    held_prompts = {prompts[i] for i in order[: round(len(prompts) * d.holdout_fraction)]}
    train = [p for p in pairs if p.prompt not in held_prompts]
    held = [p for p in pairs if p.prompt in held_prompts]
  if not train or not held:
    raise ConfigError(
      f'config.data: {len(train)} training and {len(held)} validation pairs; both must be non-empty'
    )
  print(
    f'preference pairs: {len(train)} train, {len(held)} validation ({ties} ties dropped: '
    'no preference to learn)'
  )
  if without_prompt:  # a reward model that reads the continuation alone, as the labeller does
    train, held = ([dataclasses.replace(p, prompt='') for p in ps] for ps in (train, held))
  prompt_bytes = 0 if without_prompt else d.prompt_bytes
  encode = lambda ps: encode_pairs(ps, prompt_bytes, d.completion_bytes)
  return base.Splits(train=encode(train), evals={'validation': encode(held)})


# ---- prompts as fixed-width rows (rollouts) ------------------------------------------------------


def prompt_rows(texts: list[str], width: int) -> np.ndarray:
  """[N, width] int32: the last `width` bytes of every prompt, so that every row of a batch of
  rollouts starts its continuation at the same position (the KV cache has one write position).
  A prompt shorter than `width` is refused with the limit."""
  rows = np.zeros((len(texts), width), np.int32)
  for i, text in enumerate(texts):
    raw = text.encode('utf-8')
    if len(raw) < width:
      raise ConfigError(
        f'prompt {i} has {len(raw)} bytes, fewer than config.data.prompt_bytes = {width}'
      )
    rows[i] = np.frombuffer(raw[-width:], np.uint8)
  return rows


# ---- models ------------------------------------------------------------------------------------


class Policies(nnx.Module):
  """The networks of one RLHF stage as attributes of one module (one train state): `policy` (a
  GPT, trained), `reference` (the SFT policy, frozen), and for the online stages `reward` (the
  reward model, a ScalarGPT, frozen) and `value` (PPO's value function, a ScalarGPT, trained)."""

  def __init__(
    self,
    cfg: GPTConfig,
    *,
    value: bool = False,
    reward: bool = False,
    sharding_rules=None,
    rngs: nnx.Rngs,
  ):
    self.policy = GPT(cfg, sharding_rules=sharding_rules, rngs=rngs)
    self.reference = GPT(cfg, sharding_rules=sharding_rules, rngs=rngs)
    if reward:
      self.reward = ScalarGPT(cfg, 1, sharding_rules=sharding_rules, rngs=rngs)
    if value:
      self.value = ScalarGPT(cfg, 1, sharding_rules=sharding_rules, rngs=rngs)


def last_scores(model: ScalarGPT, tokens_BxT, lengths_B, dropout_key=None) -> jax.Array:
  """A ScalarGPT's score [B] at each row's last real token."""
  return at_last(model(tokens_BxT, dropout_key=dropout_key), lengths_B)[:, 0]


POOLINGS = ('last', 'mean')


def sequence_scores(
  model: ScalarGPT, tokens_BxT, lengths_B, pooling: str = 'last', dropout_key=None
) -> jax.Array:
  """A reward model's score [B] of each right-padded row: 'last', the head at the last real
  token (Stiennon et al.; trl's RewardTrainer), or 'mean', the mean of the head over the real
  tokens, r = 1/L sum_t w . h_t: every position scores what it has read so far (a word ends
  at some t), so a small byte-level trunk need not carry a summary of the whole continuation
  to its last byte, where a next-byte predictor keeps mostly the last few characters."""
  if pooling == 'last':
    return last_scores(model, tokens_BxT, lengths_B, dropout_key)
  if pooling != 'mean':
    raise ConfigError(f'reward pooling {pooling!r}: one of {POOLINGS}')
  scores_BxT = model(tokens_BxT, dropout_key=dropout_key)[..., 0]
  real_BxT = jnp.arange(tokens_BxT.shape[1])[None, :] < lengths_B[:, None]
  return (scores_BxT * real_BxT).sum(-1) / jnp.maximum(lengths_B, 1)


def frozen(x):
  return jax.tree.map(jax.lax.stop_gradient, x)


def as_f32(x):
  return jnp.asarray(x, jnp.float32)
