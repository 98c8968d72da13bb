"""The task contract: what a system supplies to the training loop, and the default step.

The loop knows only this interface (docs/architecture.md draws it). A task builds its model (a
`flax.nnx` module), loads its data, and defines its objective in one of three forms:

  loss(model, batch, key, train) -> (loss, metrics)                  one network
  losses(model, batch, key, train) -> ({network: loss}, metrics)     several (NETWORKS)
  carried_loss(model, batch, carry, key, train) -> (loss, metrics, carry)
                                                   a recurrent state carried between batches

`setup` turns the config into an immutable `Plan` (the model's static structure, the logical
axes of every array, the optimizer); every other method receives the plan, so a task object
holds nothing but its config. The default `train_step` differentiates the objective: each
network's loss with respect to that network's parameters only, each network updated by its own
optimizer (`optax.partition`), frozen networks (FROZEN) carrying no optimizer state and left
bitwise unchanged. Tasks override a hook only where the mechanism is truly theirs.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

import jdl.models  # noqa: F401  (turns off eager sharding: the loop decides shardings)
from jdl.config import ConfigError
from jdl.data.splits import Splits
from jdl.train import optim

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
FROZEN_LABEL = 'frozen'
SINGLE = 'model'  # the network name of a task with one trained network
DATA_KEY = 0x5EED  # fold_in tag of the key that `prepare_batch` draws from


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue: a pytree of arrays, checkpointed as a whole."""

  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any  # nested dict of the model's nnx.Param values
  model_state: Any  # nested dict of its other variables (batch statistics, pools, ...)
  opt_state: Any
  rng: jax.Array  # uint32[2]; the key of step s is fold_in(rng, s)
  carry: Any = None  # the recurrent state carried between batches (None: none), rows = batch


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `Task.setup` returns: static structure and optimizer, immutable, built abstractly."""

  graphdef: Any
  param_axes: Any  # logical axis names (PartitionSpecs) of the parameters
  model_state_axes: Any
  tx: optax.GradientTransformation
  networks: tuple[str, ...]  # trained networks: top-level parameter names, or (SINGLE,)
  frozen: tuple[str, ...]  # top-level parameter names that never change

  def merge(self, params, model_state) -> nnx.Module:
    return nnx.merge(self.graphdef, params, model_state)

  def label(self, name: str) -> str:
    """The optimizer partition of a top-level parameter subtree."""
    if name in self.frozen:
      return FROZEN_LABEL
    return name if self.networks != (SINGLE,) else SINGLE


def masked_mean(values: jax.Array, batch: Batch) -> jax.Array:
  """Mean over the real rows of a batch; evaluation pads the last batch and marks it in 'mask'."""
  mask = batch.get('mask')
  if mask is None:
    return values.mean()
  mask = mask.astype(values.dtype)
  return (values * mask).sum() / jnp.maximum(mask.sum(), 1)


def get_task(config: ml_collections.ConfigDict) -> Task:
  """The task named by `config.task`: the class `Task` of module `jdl.tasks.<name>`, or of the
  module a dotted name gives (a research project's own task, outside jdl)."""
  name = config.task if '.' in config.task else f'jdl.tasks.{config.task}'
  try:
    module = importlib.import_module(name)
  except ModuleNotFoundError as e:
    if e.name != name:
      raise
    raise ConfigError(f"config.task: no task module '{name}'") from None
  if not isinstance(getattr(module, 'Task', None), type):
    raise ConfigError(f"config.task: module '{name}' defines no class Task")
  return module.Task(config)


class Task:
  """Base class. A subclass implements `build_model` and one objective (see the module doc)."""

  # Several networks, each with its own loss and optimizer: names of the model's attributes
  # (top-level parameter subtrees). Empty: one network, trained with `loss` or `carried_loss`.
  NETWORKS: ClassVar[tuple[str, ...]] = ()
  # Networks that are used but never trained (a reference policy, a reward model).
  FROZEN: ClassVar[tuple[str, ...]] = ()

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.compute_dtype = jnp.dtype(config.dtype)

  # ---- what a system implements ----------------------------------------------------------------

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
    self, model: nnx.Module, batch: Batch, key: jax.Array | None, train: bool
  ) -> tuple[jax.Array, Metrics]:
    """Scalar loss and per-example-mean metrics; must respect `batch['mask']` (masked_mean).
    `key` is a plain PRNG key for dropout and noise while training, None in evaluation."""
    raise NotImplementedError

  def losses(
    self, model: nnx.Module, batch: Batch, key: jax.Array | None, train: bool
  ) -> tuple[dict[str, jax.Array], Metrics]:
    """With NETWORKS: each network's own loss, evaluated at the same parameters."""
    raise NotImplementedError

  def carried_loss(
    self, model: nnx.Module, batch: Batch, carry: Any, key: jax.Array | None, train: bool
  ) -> tuple[jax.Array, Metrics, Any]:
    """With `initial_carry`: the loss of a batch that continues the previous batch's streams,
    starting from `carry` (already reset where `batch['reset']` starts a new document), and the
    carry to continue from. Gradients stop at the batch boundary (truncated BPTT)."""
    raise NotImplementedError

  def initial_carry(self, batch_size: int) -> Any:
    """The recurrent state at the start of a document, rows = batch; None: no carried state."""
    return None

  def prepare_batch(self, plan: Plan, state: TrainState, batch: Batch, key: jax.Array) -> Batch:
    """Turns the pipeline's batch into the batch trained on, inside the compiled step: training
    data produced from the current state (RLHF's rollouts from the current policy). Default:
    the batch as it is."""
    return batch

  # ---- optional hooks, used by the tools (`jdl sample`, `jdl params`, the loop's end) ------------

  def tokenizer(self):
    """The tokenizer of a text task (encode(str) -> ids, decode(ids) -> str), else None."""
    return None

  def sample(self, model: nnx.Module, n: int, seed: int = 0):
    """n samples of a generative model (images in [0, 1] as [n, H, W, C]): what its figures and
    scores draw on."""
    raise NotImplementedError(f'{type(self).__module__} has no samples to draw')

  def sample_text(self, model: nnx.Module, tokenizer, prompt: str, **options) -> str:
    """`jdl sample` for a model that does not generate through `jdl.models.sampling` (a
    recurrent network carries its state instead of a KV cache)."""
    from jdl.models import sampling

    return sampling.sample_text(model, tokenizer, prompt, **options)

  def eval_hooks(self) -> tuple:
    """Metrics the task adds at every evaluation beyond the eval splits' losses: callables
    `hook(trainer, step, state) -> {name: value}` (a translation task's validation BLEU).
    Optional; the loop runs them after the caller's own hooks."""
    return ()

  def report(self, plan: Plan, state: TrainState, history: list[dict], workdir, data: Splits):
    """Called on process 0 after training: print a summary, write plots. Optional."""

  def params_report(self, params) -> str | None:
    """Extra lines for `jdl params` (a paper's table beside the exact count). Optional."""
    return None

  # ---- the plan: structure and optimizer -------------------------------------------------------

  def make_optimizer(
    self, total_steps: int, networks: tuple[str, ...], labels
  ) -> optax.GradientTransformation:
    """The config's optimizer for one network; with several (or frozen parts), one optimizer per
    network from `config.optimizer` and its per-network section (`optimizer.<network>`), joined
    by `optax.partition`; frozen parts get `optax.set_to_zero` (no state)."""
    opt = self.config.optimizer
    if networks == (SINGLE,) and not self.FROZEN:
      return optim.make(opt, total_steps)
    transforms = {n: optim.make(optim.for_network(opt, n), total_steps) for n in networks}
    if self.FROZEN:
      transforms[FROZEN_LABEL] = optax.set_to_zero()
    return optax.partition(transforms, labels)

  def setup(self, total_steps: int) -> Plan:
    """Builds the model abstractly (nothing allocated) to learn its structure and axis names."""
    graphdefs = []

    def split():
      graphdef, params, rest = nnx.split(self.build_model(nnx.Rngs(0)), nnx.Param, ...)
      graphdefs.append(graphdef)  # static structure, captured while tracing
      return params, rest

    params, rest = jax.eval_shape(split)
    param_axes = nnx.to_pure_dict(nnx.get_partition_spec(params))
    networks = self._networks(param_axes)
    probe = Plan(graphdefs[0], param_axes, None, None, networks, tuple(self.FROZEN))

    is_spec = lambda x: isinstance(x, P)
    labels = {
      k: jax.tree.map(lambda _, k=k: probe.label(k), v, is_leaf=is_spec)
      for k, v in param_axes.items()
    }
    tx = self.make_optimizer(total_steps, networks, labels)
    return dataclasses.replace(
      probe, model_state_axes=nnx.to_pure_dict(nnx.get_partition_spec(rest)), tx=tx
    )

  def _networks(self, param_axes) -> tuple[str, ...]:
    names = set(param_axes)
    for field, wanted in (('NETWORKS', self.NETWORKS), ('FROZEN', self.FROZEN)):
      if missing := [n for n in wanted if n not in names]:
        raise ConfigError(
          f'{type(self).__module__}: {field} names {missing}, which the model does not have '
          f'(its parameters: {sorted(names)})'
        )
    if not self.NETWORKS:
      return (SINGLE,)
    if loose := sorted(names - set(self.NETWORKS) - set(self.FROZEN)):
      raise ConfigError(
        f'{type(self).__module__}: parameters {loose} belong to no network of NETWORKS '
        f'{self.NETWORKS} and are not FROZEN'
      )
    return tuple(self.NETWORKS)

  def init_state(self, plan: Plan, key: jax.Array) -> TrainState:
    """Pure: the loop runs it under `jax.jit` with the shardings of `state_axes`."""
    model = self.build_model(nnx.Rngs(params=key))
    _, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=rest,
      opt_state=plan.tx.init(params),
      rng=jax.random.key_data(jax.random.fold_in(key, 1)),
      carry=self.initial_carry(self.config.batch_size),
    )

  def state_axes(self, plan: Plan, abstract_state: TrainState) -> TrainState:
    """Logical axis names for every leaf of the state; optimizer moments follow their params,
    a carried state is split by rows like the batch."""
    opt_axes = _follow_params(abstract_state.opt_state, abstract_state.params, plan.param_axes)
    carry_axes = jax.tree.map(
      lambda x: P('batch', *[None] * (x.ndim - 1)) if x.ndim else P(), abstract_state.carry
    )
    return TrainState(
      step=P(),
      params=plan.param_axes,
      model_state=plan.model_state_axes,
      opt_state=opt_axes,
      rng=P(),
      carry=carry_axes,
    )

  # ---- steps -----------------------------------------------------------------------------------

  def _objective(self, model, batch, carry, key, train):
    """({network: loss}, metrics, carry) from whichever objective the task implements."""
    if self.NETWORKS:
      losses, metrics = self.losses(model, batch, key, train)
      return losses, metrics, carry
    if carry is not None:
      loss, metrics, carry = self.carried_loss(model, batch, carry, key, train)
      return {SINGLE: loss}, metrics, carry
    loss, metrics = self.loss(model, batch, key, train)
    return {SINGLE: loss}, metrics, carry

  def _grads(self, plan: Plan, state: TrainState, batch: Batch, carry, key: jax.Array):
    """Each network's gradient of its own loss (zeros for frozen parts), metrics, the model's
    updated variables and the next carry. One forward pass; one backward pass per network."""
    frozen = {k: v for k, v in state.params.items() if k in plan.frozen}
    trained = {k: v for k, v in state.params.items() if k not in plan.frozen}

    def objective(trained):
      model = plan.merge({**trained, **frozen}, state.model_state)
      losses, metrics, next_carry = self._objective(model, batch, carry, key, True)
      _, _, rest = nnx.split(model, nnx.Param, ...)
      return losses, (metrics, nnx.to_pure_dict(rest), next_carry)

    losses, pullback, (metrics, model_state, next_carry) = jax.vjp(objective, trained, has_aux=True)
    if plan.networks == (SINGLE,):
      grads = pullback({SINGLE: jnp.ones((), losses[SINGLE].dtype)})[0]
    else:
      grads = {}
      for name in plan.networks:
        # The cotangent that is 1 on this network's loss and 0 on the others: the gradient of
        # its own loss, of which it keeps its own part (XLA drops the parts thrown away).
        onehot = {n: jnp.asarray(n == name, losses[n].dtype) for n in losses}
        grads[name] = pullback(onehot)[0][name]
    grads = {**grads, **optax.tree.zeros_like(frozen)}
    return grads, metrics, model_state, next_carry

  def _reset_carry(self, carry, batch: Batch):
    """Rows whose batch starts a new document begin from the initial state."""
    if carry is None or 'reset' not in batch:
      return carry
    initial = self.initial_carry(batch['reset'].shape[0])
    reset = batch['reset'].astype(bool)
    return jax.tree.map(
      lambda c, i: jnp.where(reset.reshape(-1, *[1] * (c.ndim - 1)), i.astype(c.dtype), c),
      carry,
      initial,
    )

  def train_step(
    self, plan: Plan, state: TrainState, batch: Batch, key: jax.Array
  ) -> tuple[TrainState, Metrics]:
    """One optimizer step. With grad_accum_steps = k the batch is split into k microbatches
    whose gradients are averaged in a scan, so memory is that of one microbatch."""
    batch = self.prepare_batch(plan, state, batch, jax.random.fold_in(key, DATA_KEY))
    carry = self._reset_carry(state.carry, batch)
    k = self.config.grad_accum_steps
    if k == 1:
      grads, metrics, model_state, carry = self._grads(plan, state, batch, carry, key)
    else:
      if carry is not None:
        raise ConfigError('config.grad_accum_steps: a carried recurrent state needs 1')
      # Microbatch i takes rows i, i+k, ...: the batch axis keeps its sharding over devices.
      micro = jax.tree.map(
        lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch
      )

      def body(acc, xs):
        grads_sum, metrics_sum, model_state = acc
        i, mb = xs
        g, m, model_state, _ = self._grads(
          plan, state.replace(model_state=model_state), mb, None, jax.random.fold_in(key, i)
        )
        return (optax.tree.add(grads_sum, g), optax.tree.add(metrics_sum, m), model_state), None

      first = jax.tree.map(lambda x: x[0], micro)
      zeros_m = jax.eval_shape(lambda: self._grads(plan, state, first, None, key)[1])
      init = (
        optax.tree.zeros_like(state.params),
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros_m),
        state.model_state,
      )
      (grads, metrics, model_state), _ = jax.lax.scan(body, init, (jnp.arange(k), micro))
      grads, metrics = optax.tree.scale(1 / k, grads), optax.tree.scale(1 / k, metrics)
    updates, opt_state = plan.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # Frozen parts are the old arrays themselves (x + 0 would turn -0.0 into +0.0).
    params = {k: state.params[k] if k in plan.frozen else v for k, v in params.items()}
    metrics = dict(metrics)
    if plan.networks == (SINGLE,):
      metrics['grad_norm'] = optax.tree.norm(grads)
    else:
      for name in plan.networks:
        metrics[f'{name}_grad_norm'] = optax.tree.norm(grads[name])
    if carry is not None:
      carry = jax.lax.stop_gradient(carry)
    new_state = state.replace(
      step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state, carry=carry
    )
    return new_state, metrics

  def eval_step(self, plan: Plan, state: TrainState, batch: Batch) -> Metrics:
    """Metric sums over the real rows of one batch (the loop divides by the count). A carried
    state starts from its initial value in every evaluation batch."""
    model = plan.merge(state.params, state.model_state)
    rows = next(iter(batch.values())).shape[0]
    carry = self.initial_carry(rows) if state.carry is not None else None
    _, metrics, _ = self._objective(model, batch, carry, None, False)
    count = batch['mask'].sum() if 'mask' in batch else rows
    count = jnp.asarray(count, jnp.float32)
    return dict({k: v * count for k, v in metrics.items()}, count=count)

  # ---- cost without the data: `jdl compile` (a step compiled ahead of time), MFU ---------------

  def batch_spec(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """Shape and dtype of every field of a training batch of `batch_size` rows, without the
    data. Default: one row read from `load_data()` (so the data must be here); a task whose data
    is remote (ImageNet, WMT14 in a bucket) states the shapes its loader produces."""
    import numpy as np

    from jdl.data import pipeline

    row = pipeline.as_source(self.load_data().train).batch(np.arange(1), np.random.default_rng(0))
    return {
      k: jax.ShapeDtypeStruct((batch_size, *np.shape(v)[1:]), np.asarray(v).dtype)
      for k, v in row.items()
    }

  def flops_per_step(self, plan: Plan, batch: dict[str, jax.ShapeDtypeStruct]) -> float:
    """Model FLOPs of one training step on `batch` (all devices together): what MFU divides
    by. Default: three times the matmul and convolution FLOPs of the objective's forward pass
    in training mode, counted from its traced program (`jdl.train.cost.traced_flops`); the
    backward pass costs two forwards. Transformers state the 6ND-plus-attention count."""
    from jdl.train import cost

    abstract = jax.eval_shape(lambda key: self.init_state(plan, key), jax.random.key(0))
    rows = next(iter(batch.values())).shape[0]

    def forward(params, model_state, batch):
      model = plan.merge(params, model_state)
      carry = self.initial_carry(rows)
      return self._objective(model, batch, carry, jax.random.key(0), True)[0]

    return 3 * cost.traced_flops(forward, abstract.params, abstract.model_state, batch)

  def batch_units(self, batch: dict[str, jax.ShapeDtypeStruct]) -> tuple[str, int]:
    """What a batch holds, for throughput: (unit, count), e.g. ('tokens', rows * length)."""
    return 'examples', next(iter(batch.values())).shape[0]


def _follow_params(opt_state, params, param_axes):
  """The axes of every optimizer-state leaf: a leaf whose key path ends with a parameter's path
  and has its shape (Adam's moments, whatever chain, partition or mask holds them) takes that
  parameter's axes; anything else (counts, factored statistics) is replicated.

  (`optax.tree_map_params` cannot see through the masked states of `optax.partition`.)"""
  is_spec = lambda x: isinstance(x, P)
  by_path = {}
  for (path, leaf), (_, axes) in zip(
    jax.tree_util.tree_flatten_with_path(params)[0],
    jax.tree_util.tree_flatten_with_path(param_axes, is_leaf=is_spec)[0],
  ):
    by_path[tuple(path)] = (tuple(leaf.shape), axes)
  lengths = sorted({len(p) for p in by_path}, reverse=True)

  def axes_of(path, leaf):
    for n in lengths:
      hit = by_path.get(tuple(path[-n:])) if len(path) >= n else None
      if hit is not None and hit[0] == tuple(getattr(leaf, 'shape', ())):
        return hit[1]
    return P()

  return jax.tree_util.tree_map_with_path(axes_of, opt_state)
