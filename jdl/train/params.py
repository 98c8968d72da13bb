"""Parameter tables from `jax.eval_shape`: nothing is allocated, so a 175B config prints at once."""

from __future__ import annotations

import math
from collections import OrderedDict

import jax
import numpy as np
from flax import nnx

from jdl import sharding
from jdl.train.errors import UsageError


def _path_name(path) -> list[str]:
  return [str(getattr(k, 'key', getattr(k, 'idx', k))) for k in path]


def module_counts(params, depth: int = 1) -> OrderedDict[str, int]:
  """Parameter counts grouped by the first `depth` components of each parameter's path."""
  counts: OrderedDict[str, int] = OrderedDict()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = '.'.join(_path_name(path)[:depth])
    counts[name] = counts.get(name, 0) + math.prod(leaf.shape)
  return counts


def abstract_params(task):
  return nnx.to_pure_dict(
    jax.eval_shape(lambda: nnx.state(task.build_model(nnx.Rngs(0)), nnx.Param))
  )


def parse_mesh(text: str) -> dict[str, int]:
  """'data=2,tensor=4' -> {'data': 2, 'fsdp': 1, 'tensor': 4}: a positive size per named axis of
  the mesh (an abstract mesh has no devices for -1 to fill)."""
  sizes = dict.fromkeys(sharding.MESH_AXES, 1)
  seen = set()
  for item in text.split(','):
    axis, equals, value = (part.strip() for part in item.partition('='))
    if axis not in sizes:
      raise UsageError(f"--mesh {text}: '{axis}' is not an axis (data, fsdp, tensor)")
    if axis in seen:
      raise UsageError(f'--mesh {text}: {axis} is given twice')
    if not (equals and value.isdigit() and int(value) > 0):
      raise UsageError(f"--mesh {text}: {axis} must be a positive whole number, got '{value}'")
    sizes[axis] = int(value)
    seen.add(axis)
  return sizes


def per_device_bytes(task, mesh_sizes: dict[str, int]) -> dict[str, int]:
  """Bytes of parameters and optimizer state held by one device of a (data, fsdp, tensor) mesh,
  computed from the config's sharding rules on an abstract mesh (no devices needed)."""
  plan = task.setup(total_steps=1)
  shape = sharding.mesh_shape(mesh_sizes, math.prod(mesh_sizes.values()))
  mesh = jax.sharding.AbstractMesh(shape, sharding.MESH_AXES)
  abstract = jax.eval_shape(lambda key: task.init_state(plan, key), jax.random.key(0))
  axes = task.state_axes(plan, abstract)
  is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)

  def tree_bytes(tree, tree_axes):
    total = 0
    for leaf, logical in zip(jax.tree.leaves(tree), jax.tree.leaves(tree_axes, is_leaf=is_spec)):
      spec = sharding.logical_to_spec(tuple(logical), leaf.shape, task.config.sharding_rules, mesh)
      shard = list(leaf.shape)
      for dim, axes_ in enumerate(spec):
        for axis in (axes_,) if isinstance(axes_, str) else (axes_ or ()):
          shard[dim] //= mesh.shape[axis]
      total += math.prod(shard) * np.dtype(leaf.dtype).itemsize
    return total

  return {
    'params': tree_bytes(abstract.params, axes.params),
    'opt_state': tree_bytes(abstract.opt_state, axes.opt_state),
  }


def format_table(counts: dict[str, int], total: int) -> str:
  width = max([len(k) for k in counts] + [6])
  lines = [f'{"module":{width}s} {"parameters":>16s} {"share":>7s}']
  for name, n in counts.items():
    lines.append(f'{name:{width}s} {n:16,d} {100 * n / max(total, 1):6.2f}%')
  lines.append(f'{"total":{width}s} {total:16,d}')
  return '\n'.join(lines)


def human_bytes(n: float) -> str:
  for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
    if n < 1024 or unit == 'TiB':
      return f'{n:.2f} {unit}' if unit != 'B' else f'{int(n)} B'
    n /= 1024
