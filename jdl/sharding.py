"""The device mesh ('data', 'fsdp', 'tensor') and the mapping of logical axis names onto it.

Models name the axes of their weights ('embed', 'mlp', 'heads', ...); the config's
`sharding_rules` say which mesh axes each name is split over. Data parallel, FSDP and tensor
parallel are therefore config choices: `mesh.fsdp=8` splits every 'embed' dimension over 8
devices, `mesh.tensor=8` every 'mlp' dimension, with no change to a model.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ('data', 'fsdp', 'tensor')
BATCH_AXES = ('data', 'fsdp')


def initialize_distributed(enabled: bool) -> None:
  """Joins a multi-process run (every worker of a TPU pod slice runs the same command).

  On Cloud TPU `jax.distributed.initialize()` finds its peers itself. Elsewhere the coordinator
  comes from JDL_COORDINATOR (host:port), JDL_NUM_PROCESSES and JDL_PROCESS_ID. A process that
  stops answering is declared dead after JDL_HEARTBEAT_SECONDS (JAX's default, 100 s, if unset).
  """
  if not (enabled or os.environ.get('JDL_DISTRIBUTED') == '1'):
    return
  kwargs = {}
  if 'JDL_COORDINATOR' in os.environ:
    kwargs = dict(
      coordinator_address=os.environ['JDL_COORDINATOR'],
      num_processes=int(os.environ['JDL_NUM_PROCESSES']),
      process_id=int(os.environ['JDL_PROCESS_ID']),
    )
  # Only the CPU backend reads this; it lets processes on CPUs run collectives over TCP.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if 'JDL_HEARTBEAT_SECONDS' in os.environ:
    kwargs['heartbeat_timeout_seconds'] = int(os.environ['JDL_HEARTBEAT_SECONDS'])
  jax.distributed.initialize(**kwargs)


def mesh_shape(sizes: dict[str, int], num_devices: int) -> tuple[int, ...]:
  """(data, fsdp, tensor) sizes; the one -1 takes the devices the others leave.

  Without a -1 the mesh may use fewer devices than there are (the first ones), which lets a
  small experiment run on one device of a larger machine.
  """
  shape = [int(sizes[a]) for a in MESH_AXES]
  described = dict(zip(MESH_AXES, shape))
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1:
    raise ValueError(f'mesh: at most one axis may be -1, got {described}')
  fixed = math.prod(s for s in shape if s != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(f'mesh: {described} does not divide the {num_devices} devices')
    shape[free[0]] = num_devices // fixed
  if math.prod(shape) > num_devices:
    raise ValueError(
      f'mesh: {described} needs {math.prod(shape)} devices, only {num_devices} are present'
    )
  return tuple(shape)


def make_mesh(sizes: dict[str, int], devices: list | None = None) -> jax.sharding.Mesh:
  """The (data, fsdp, tensor) mesh over `devices` (default: all of this run's devices; `jdl
  compile` passes a TPU slice's compile-only devices)."""
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(sizes, len(devices))
  # Auto axes: the compiler propagates shardings from the rules; Explicit axes would make every
  # op state its output sharding, which rule-based sharding does not do.
  return jax.make_mesh(
    shape,
    MESH_AXES,
    axis_types=(AxisType.Auto,) * len(MESH_AXES),
    devices=devices[: math.prod(shape)],
  )


def logical_to_spec(logical: tuple, shape: tuple[int, ...], rules, mesh) -> P:
  """PartitionSpec for one array: each logical name becomes the mesh axes its rule gives.

  A mesh axis is used at most once per array, and a dimension that the mesh axes do not divide
  stays whole (replicated) rather than failing, as in big_vision's FSDP.
  """
  table = {name: target for name, target in rules}
  used: set[str] = set()
  spec = []
  for name, size in zip(logical, shape):
    target = table.get(name) if name is not None else None
    axes = (target,) if isinstance(target, str) else tuple(target or ())
    axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
    if axes and size % math.prod(mesh.shape[a] for a in axes) == 0:
      used.update(axes)
      spec.append(axes[0] if len(axes) == 1 else axes)
    else:
      spec.append(None)
  return P(*spec)


def tree_shardings(abstract_tree, logical_tree, rules, mesh):
  """NamedShardings for a tree of ShapeDtypeStructs, given the matching tree of logical axes
  (PartitionSpecs of names; P() for a replicated leaf)."""

  def one(logical, x):
    return NamedSharding(mesh, logical_to_spec(tuple(logical), tuple(x.shape), rules, mesh))

  return jax.tree.map(one, logical_tree, abstract_tree, is_leaf=lambda v: isinstance(v, P))


def batch_sharding(mesh, stacked: bool = False) -> NamedSharding:
  """Batch dimension split over data and fsdp, the rest replicated. A stack of batches for
  several steps (`stacked`) has the step axis first."""
  return NamedSharding(mesh, P(None, BATCH_AXES) if stacked else P(BATCH_AXES))


def global_batch(local: dict[str, np.ndarray], mesh, stacked: bool = False) -> dict[str, jax.Array]:
  """This process's rows of a batch -> one global array per field, split over the batch axes."""
  sharding = batch_sharding(mesh, stacked)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
