"""Two players in one train state and one step: what the GAN and CycleGAN tasks share.

The model is one `nnx` module with a `generator` and a `discriminator` attribute, so a single
split gives params {'generator': ..., 'discriminator': ...}; each player has its own optimizer
and its own optimizer state, side by side in `TrainState.opt_state`. The step evaluates both
losses at the same parameters and takes the gradient of each player's loss with respect to that
player's parameters only (the discriminator's loss says nothing about how the generator should
move, and the reverse), as the reference CycleGAN code does with its detached fakes. The loop
sees an ordinary `TrainState` and runs, checkpoints and resumes it like any other.

A subclass implements `losses(model, batch, key, train) -> ((d_loss, g_loss), metrics)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

from jdl.train import optim
from jdl.train import task as base

PLAYERS = ('generator', 'discriminator')
EVAL_KEY_SEED = 1234  # evaluation draws its noise from a fixed key: the same z at every eval


def player_optimizer(opt, total_steps: int, decay_steps: int) -> optax.GradientTransformation:
  """The config's optimizer; with `decay_steps` > 0, CycleGAN's schedule: the learning rate held
  for the first total - decay_steps steps, then decayed linearly to zero."""
  if decay_steps <= 0:
    return optim.make(opt, total_steps)
  constant = max(total_steps - decay_steps, 0)
  schedule = optax.join_schedules(
    [
      optax.constant_schedule(opt.learning_rate),
      optax.linear_schedule(opt.learning_rate, 0.0, decay_steps),
    ],
    [constant],
  )
  return getattr(optax, opt.name)(learning_rate=schedule, **opt.kwargs.to_dict())


class Task(base.Task):
  # ---- what a subclass implements --------------------------------------------------------------

  def losses(
    self, model: nnx.Module, batch: base.Batch, key: jax.Array, train: bool
  ) -> tuple[tuple[jax.Array, jax.Array], base.Metrics]:
    raise NotImplementedError

  # ---- two optimizers, one state ---------------------------------------------------------------

  def make_optimizer(self, total_steps: int) -> dict[str, optax.GradientTransformation]:
    decay = round(total_steps * self.config.gan.get('decay_fraction', 0.0))
    return {p: player_optimizer(self.config.optimizer, total_steps, decay) for p in PLAYERS}

  def init_state(self, key: jax.Array) -> base.TrainState:
    model = self.build_model(nnx.Rngs(params=key))
    _, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    return base.TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=rest,
      opt_state={p: self.tx[p].init(params[p]) for p in PLAYERS},
      rng=jax.random.key_data(jax.random.fold_in(key, 1)),
    )

  def state_axes(self, abstract_state: base.TrainState) -> base.TrainState:
    """Each optimizer's moments follow its own player's parameter axes."""
    is_spec = lambda x: isinstance(x, P)
    opt_axes = {
      p: optax.tree_map_params(
        self.tx[p],
        lambda _, axes: axes,
        abstract_state.opt_state[p],
        self.param_axes[p],
        transform_non_params=lambda _: P(),
        is_leaf=is_spec,
      )
      for p in PLAYERS
    }
    return base.TrainState(
      step=P(),
      params=self.param_axes,
      model_state=self.model_state_axes,
      opt_state=opt_axes,
      rng=P(),
    )

  # ---- the step --------------------------------------------------------------------------------

  def train_step(
    self, state: base.TrainState, batch: base.Batch, key: jax.Array
  ) -> tuple[base.TrainState, base.Metrics]:
    if self.config.grad_accum_steps != 1:
      raise NotImplementedError('adversarial tasks take no gradient accumulation')

    def both_losses(params):
      model = self.merge(params, state.model_state)
      model.train()
      (d_loss, g_loss), metrics = self.losses(model, batch, key, train=True)
      _, _, rest = nnx.split(model, nnx.Param, ...)
      return (d_loss, g_loss), (metrics, nnx.to_pure_dict(rest))

    # One forward pass, two backward passes: the cotangent (1, 0) gives the gradient of the
    # discriminator's loss, (0, 1) the generator's; each player keeps only its own part (XLA
    # drops the computation of the parts thrown away).
    _, pullback, (metrics, model_state) = jax.vjp(both_losses, state.params, has_aux=True)
    one, zero = jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
    grads = {
      'discriminator': pullback((one, zero))[0]['discriminator'],
      'generator': pullback((zero, one))[0]['generator'],
    }
    params, opt_state = {}, {}
    for p in PLAYERS:
      updates, opt_state[p] = self.tx[p].update(grads[p], state.opt_state[p], state.params[p])
      params[p] = optax.apply_updates(state.params[p], updates)
      metrics[f'{p[0]}_grad_norm'] = optax.tree.norm(grads[p])
    return state.replace(
      step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
    ), metrics

  def eval_step(self, state: base.TrainState, batch: base.Batch) -> base.Metrics:
    model = self.merge(state.params, state.model_state)
    model.eval()
    _, metrics = self.losses(model, batch, jax.random.key(EVAL_KEY_SEED), train=False)
    count = jnp.asarray(batch['mask'].sum(), jnp.float32)
    return dict({k: v * count for k, v in metrics.items()}, count=count)
