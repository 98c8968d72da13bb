"""What an architecture supplies to the training loop, and the default functional step.

The loop knows only this interface. A task builds its model (a `flax.nnx` module), loads its
data, and defines its loss; the default `train_step` differentiates that loss. A task whose step
is not "one loss, one optimizer" (a GAN's two players, RLHF's policy and value) overrides
`make_optimizer` and `train_step`, and the loop runs it all the same.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

import jdl.models  # noqa: F401  (turns off eager sharding: the loop decides shardings)
from jdl.config import ConfigError
from jdl.train import optim

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue: a pytree of arrays, checkpointed as a whole."""

  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any  # nested dict of the model's nnx.Param values
  model_state: Any  # nested dict of its other variables (batch statistics, ...)
  opt_state: Any
  rng: jax.Array  # uint32[2]; the key of step s is fold_in(rng, s)


@dataclasses.dataclass
class Splits:
  """A task's data. Each split is a dict of equally long numpy arrays (one row per example) or a
  source with `__len__` and `batch(indices, rng)` (see jdl.data.pipeline)."""

  train: Any
  evals: dict[str, Any]  # name ('validation', 'test') -> split


def masked_mean(values: jax.Array, batch: Batch) -> jax.Array:
  """Mean over the real rows of a batch; evaluation pads the last batch and marks it in 'mask'."""
  mask = batch.get('mask')
  if mask is None:
    return values.mean()
  mask = mask.astype(values.dtype)
  return (values * mask).sum() / jnp.maximum(mask.sum(), 1)


class Task:
  """Base class: subclasses implement `build_model` and `loss` (and `load_data` if the data is
  not a `jdl.data` module's `load`)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.compute_dtype = jnp.dtype(config.dtype)

  # ---- what an architecture implements ---------------------------------------------------------

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    raise NotImplementedError

  def load_data(self) -> Splits:
    """By default `jdl.data.<config.data.name>.load(**config.data.kwargs)`."""
    name = self.config.data.name
    try:
      module = importlib.import_module(f'jdl.data.{name}')
    except ModuleNotFoundError as e:
      if e.name != f'jdl.data.{name}':
        raise
      raise ConfigError(f"config.data.name: no data module 'jdl.data.{name}'") from None
    kwargs = self.config.data.get('kwargs')
    return module.load(**(kwargs.to_dict() if kwargs else {}))

  def loss(
    self, model: nnx.Module, batch: Batch, rngs: nnx.Rngs | None, train: bool
  ) -> tuple[jax.Array, Metrics]:
    """Scalar loss and per-example-mean metrics; must respect `batch['mask']` (masked_mean)."""
    raise NotImplementedError

  def report(self, history: list[dict], workdir, state: TrainState, data: Splits) -> None:
    """Called on process 0 after training: print a summary, write plots. Optional."""

  def params_report(self, params) -> str | None:
    """Extra lines for `jdl params` (a paper's table beside the exact count). Optional."""
    return None

  # ---- model and optimizer ---------------------------------------------------------------------

  def make_optimizer(self, total_steps: int) -> optax.GradientTransformation:
    return optim.make(self.config.optimizer, total_steps)

  def setup(self, total_steps: int) -> None:
    """Builds the model abstractly (nothing allocated) to learn its structure and axis names."""
    graphdefs = []

    def split():
      graphdef, params, rest = nnx.split(self.build_model(nnx.Rngs(0)), nnx.Param, ...)
      graphdefs.append(graphdef)  # static structure, captured while tracing
      return params, rest

    params, rest = jax.eval_shape(split)
    self.graphdef = graphdefs[0]
    self.param_axes = nnx.to_pure_dict(nnx.get_partition_spec(params))
    self.model_state_axes = nnx.to_pure_dict(nnx.get_partition_spec(rest))
    self.tx = self.make_optimizer(total_steps)

  def merge(self, params, model_state) -> nnx.Module:
    return nnx.merge(self.graphdef, params, model_state)

  def init_state(self, key: jax.Array) -> TrainState:
    """Pure: the loop runs it under `jax.jit` with the shardings of `state_axes`."""
    model = self.build_model(nnx.Rngs(params=key))
    _, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=rest,
      opt_state=self.tx.init(params),
      rng=jax.random.key_data(jax.random.fold_in(key, 1)),
    )

  def state_axes(self, abstract_state: TrainState) -> TrainState:
    """Logical axis names for every leaf of the state; optimizer moments follow their params."""
    is_spec = lambda x: isinstance(x, P)
    opt_axes = optax.tree_map_params(
      self.tx,
      lambda _, axes: axes,
      abstract_state.opt_state,
      self.param_axes,
      transform_non_params=lambda _: P(),
      is_leaf=is_spec,
    )
    return TrainState(
      step=P(),
      params=self.param_axes,
      model_state=self.model_state_axes,
      opt_state=opt_axes,
      rng=P(),
    )

  # ---- steps -----------------------------------------------------------------------------------

  def _grads(self, state: TrainState, batch: Batch, key: jax.Array):
    def loss_fn(params):
      model = self.merge(params, state.model_state)
      loss, metrics = self.loss(model, batch, nnx.Rngs(dropout=key), train=True)
      _, _, rest = nnx.split(model, nnx.Param, ...)
      return loss, (metrics, nnx.to_pure_dict(rest))

    (_, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return grads, metrics, model_state

  def train_step(
    self, state: TrainState, batch: Batch, key: jax.Array
  ) -> tuple[TrainState, Metrics]:
    """One optimizer step. With grad_accum_steps = k the batch is split into k microbatches
    whose gradients are averaged in a scan, so memory is that of one microbatch."""
    k = self.config.grad_accum_steps
    if k == 1:
      grads, metrics, model_state = self._grads(state, batch, key)
    else:
      # Microbatch i takes rows i, i+k, ...: the batch axis keeps its sharding over devices.
      micro = jax.tree.map(
        lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch
      )

      def body(carry, xs):
        grads_sum, metrics_sum, model_state = carry
        i, mb = xs
        g, m, model_state = self._grads(
          state.replace(model_state=model_state), mb, jax.random.fold_in(key, i)
        )
        return (optax.tree.add(grads_sum, g), optax.tree.add(metrics_sum, m), model_state), None

      zeros_m = jax.eval_shape(
        lambda: self._grads(state, jax.tree.map(lambda x: x[0], micro), key)[1]
      )
      init = (
        optax.tree.zeros_like(state.params),
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros_m),
        state.model_state,
      )
      (grads, metrics, model_state), _ = jax.lax.scan(body, init, (jnp.arange(k), micro))
      grads, metrics = optax.tree.scale(1 / k, grads), optax.tree.scale(1 / k, metrics)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
    return state.replace(
      step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
    ), metrics

  def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
    """Metric sums over the real rows of one batch (the loop divides by the count)."""
    model = self.merge(state.params, state.model_state)
    _, metrics = self.loss(model, batch, None, train=False)
    count = batch['mask'].sum() if 'mask' in batch else next(iter(batch.values())).shape[0]
    count = jnp.asarray(count, jnp.float32)
    return dict({k: v * count for k, v in metrics.items()}, count=count)
