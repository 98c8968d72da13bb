"""orbax checkpoints of the train state and the data iterator's position.

A checkpoint that fails to restore (a partial write, a corrupt file) is reported, moved aside to
`checkpoints.corrupt/` (never deleted), and the previous one is restored. A readable checkpoint
whose arrays do not fit the config (a run of another model size, say) is not corrupt: restoring
it stops with `CheckpointError`, naming the arrays that differ, and moves nothing.
"""

from __future__ import annotations

import jax
import orbax.checkpoint as ocp
from etils import epath


class CheckpointError(RuntimeError):
  pass


class Checkpointer:
  def __init__(self, workdir: epath.PathLike, keep: int | None, async_save: bool = True):
    workdir = epath.Path(workdir)
    self.directory = (
      workdir / 'checkpoints'
      if workdir.is_absolute()
      else (epath.Path.cwd() / workdir / 'checkpoints')
    )
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=async_save, create=True
      ),
      item_handlers={'state': ocp.StandardCheckpointHandler(), 'data': ocp.JsonCheckpointHandler()},
    )

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state, data_state: dict, force: bool = True) -> None:
    self.manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
      ),
      force=force,
    )

  def restore(self, abstract_state, step: int | None = None, log=print):
    """Newest readable checkpoint as (step, state, data_state), or None if there is none; with
    `step`, that checkpoint (a FileNotFoundError names the steps there are).

    `abstract_state` is a tree of jax.ShapeDtypeStruct with the target shardings, so each array
    is read straight into its shards.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if step is not None:
      if step not in steps:
        raise FileNotFoundError(
          f'no checkpoint at step {step} in {self.directory} (there are: {sorted(steps)})'
        )
      steps = [step]
    for step in steps:
      try:
        stored = self.manager.item_metadata(step).state
        if stored is None:
          raise CheckpointError('its state metadata is missing')
      except Exception as e:  # orbax raises many kinds for unreadable files
        self._quarantine(step, e, log)
        continue
      if mismatch := _mismatch(stored, abstract_state):
        raise CheckpointError(
          f'the checkpoint at step {step} in {self.directory} does not fit this config '
          f'({mismatch}); it was written by another config (see config.json beside it). '
          'Nothing was moved or deleted.'
        )
      try:
        restored = self.manager.restore(
          step,
          args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
          ),
        )
        return step, restored.state, restored.data
      except Exception as e:  # orbax raises many kinds for unreadable files
        self._quarantine(step, e, log)
    return None

  def _quarantine(self, step: int, error: Exception, log) -> None:
    """Moves an unreadable checkpoint out of the manager's way, keeping its files."""
    reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    log(
      f'checkpoint at step {step} is corrupt or partial ({type(error).__name__}: {reason}); '
      f'trying the previous one'
    )
    if jax.process_index() == 0:
      corrupt = self.directory.parent / 'checkpoints.corrupt'
      corrupt.mkdir(exist_ok=True)
      target = corrupt / str(step)
      if target.exists():
        target.rmtree()
      (self.directory / str(step)).rename(target)
      log(f'moved it to {target}')
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _leaf_shapes(tree) -> dict[str, tuple]:
  """'params/blocks/0/kernel' -> shape, for every array of a state or of its stored metadata."""

  def name(key) -> str:
    for attr in ('key', 'name', 'idx'):
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)

  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))
  return {
    '/'.join(name(k) for k in path): tuple(leaf.shape)
    for path, leaf in flat
    if hasattr(leaf, 'shape')
  }


def _mismatch(stored, abstract) -> str:
  """'' if the stored arrays fit `abstract`, else a short account of the first differences."""
  have, want = _leaf_shapes(stored), _leaf_shapes(abstract)
  if not set(have) & set(want):  # the two trees name their paths differently: compare shapes
    if sorted(have.values()) == sorted(want.values()):
      return ''
    return f'{len(have)} stored arrays, {len(want)} in the config, of different shapes'
  problems = [
    f'{k} is {have[k]} in the checkpoint, {want[k]} in the config'
    for k in sorted(set(have) & set(want), key=lambda k: (not k.startswith('params'), k))
    if have[k] != want[k]
  ]
  problems += [f'{k} is missing from the checkpoint' for k in sorted(set(want) - set(have))]
  problems += [f'{k} is not in the config' for k in sorted(set(have) - set(want))]
  more = f'; and {len(problems) - 3} more' if len(problems) > 3 else ''
  return '; '.join(problems[:3]) + more
