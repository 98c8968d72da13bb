"""orbax checkpoints of the train state and the data iterator's position.

A checkpoint that fails to restore (a partial write, a corrupt file) is reported in one line,
moved aside to `checkpoints.corrupt/` (never deleted), and the previous one is restored; when
none can be restored the run stops rather than silently starting over. A readable checkpoint
whose arrays do not fit the config (a run of another model size, say) is not corrupt: restoring
it stops with `CheckpointError`, naming the arrays that differ, and moves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sys
import threading

import jax
import orbax.checkpoint as ocp
from etils import epath

from jdl import paths
from jdl.train.errors import WriteFailed


class CheckpointError(RuntimeError):
  pass


class Checkpointer:
  def __init__(self, workdir: epath.PathLike, keep: int | None, async_save: bool = True):
    self.directory = paths.workdir(workdir) / 'checkpoints'
    with _quiet_absl():  # it reads every step's metadata, and logs each unreadable one at length
      self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, enable_async_checkpointing=async_save, create=True
        ),
        item_handlers={
          'state': ocp.StandardCheckpointHandler(),
          'data': ocp.JsonCheckpointHandler(),
        },
      )
    self._last_started: int | None = None
    _QUIET.install()

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state, data_state: dict, force: bool = True) -> None:
    """Starts writing a checkpoint (in the background when asynchronous); a write that fails
    raises `WriteFailed` here or at the next `check`/`wait`, naming the folder."""
    self._last_started = step
    self._check_space(step, state)
    with self._writing(step):
      self.manager.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
        ),
        force=force,
      )

  def _check_space(self, step: int, state) -> None:
    """A local disk without room for the checkpoint stops the run before the write starts, so
    that nothing is left half-written (the writer threads of a write that fails midway are
    tensorstore's, and outlive the failure)."""
    if not paths.is_local(self.directory):  # a bucket has no free space to ask about
      return
    needed = sum(x.nbytes for x in jax.tree.leaves(state)) // jax.process_count() + (1 << 20)
    free = shutil.disk_usage(self.directory).free
    if free < needed:
      with self._writing(step):
        raise OSError(
          errno.ENOSPC, f'{os.strerror(errno.ENOSPC)}: about {needed:,} bytes needed, {free:,} free'
        )

  def check(self) -> None:
    """Raises `WriteFailed` if a background write has failed."""
    with self._writing(self._last_started):
      self.manager.check_for_errors()

  @contextlib.contextmanager
  def _writing(self, step: int | None):
    try:
      yield
    except Exception as e:  # tensorstore reports a full disk as ValueError('RESOURCE_EXHAUSTED')
      if not _is_write_error(e):
        raise
      kept = [s for s in self.manager.all_steps() if s != step]
      earlier = f'the checkpoint of step {max(kept)} is intact' if kept else 'no earlier checkpoint'
      _QUIET.failed = True
      raise WriteFailed(
        f'writing the checkpoint of step {step} to {self.directory / str(step)} failed '
        f'({_reason(e)}); {earlier}'
      ) from e

  def restore(self, abstract_state, step: int | None = None, log=print, fresh: bool = False):
    """Newest readable checkpoint as (step, state, data_state), or None if there is none.

    Unreadable checkpoints newer than the one restored are moved to `checkpoints.corrupt/`. When
    checkpoints exist but none can be read, nothing is moved and `CheckpointError` lists them,
    unless `fresh` (they are then moved aside and None is returned: the run starts at step 0).
    With `step`, exactly that checkpoint (a missing or unreadable one is an error; nothing
    moves). `abstract_state` is a tree of jax.ShapeDtypeStruct with the target shardings, so
    each array is read straight into its shards.
    """
    with _quiet_absl():
      steps = sorted(self.manager.all_steps(), reverse=True)
    if step is not None and step not in steps:
      raise FileNotFoundError(
        f'no checkpoint at step {step} in {self.directory} (there are: {sorted(steps)})'
      )
    failed: list[tuple[int, str]] = []
    for candidate in [step] if step is not None else steps:
      result = self._read(candidate, abstract_state)
      if isinstance(result, str):
        failed.append((candidate, result))
        log(f'checkpoint at step {candidate} is unreadable ({result})')
        continue
      if step is None:
        for bad, _ in failed:
          self._quarantine(bad, log)
      return result
    if not failed:
      return None
    listing = '; '.join(f'step {s}: {why}' for s, why in failed)
    if step is not None:
      raise CheckpointError(
        f'the checkpoint at step {step} in {self.directory} is unreadable: {listing}'
      )
    if not fresh:
      raise CheckpointError(
        f'none of the {len(failed)} checkpoints in {self.directory} can be restored ({listing}). '
        'Nothing was moved or deleted. To start again from step 0, moving them to '
        'checkpoints.corrupt/, run the same command with --fresh.'
      )
    for bad, _ in failed:
      self._quarantine(bad, log)
    return None

  def _read(self, step: int, abstract_state):
    """(step, state, data_state), or a one-line reason why the checkpoint cannot be read. A
    readable checkpoint of another config raises CheckpointError: it is not corrupt."""
    with _quiet_absl():
      try:
        stored = self.manager.item_metadata(step).state
      except Exception as e:  # orbax raises many kinds for unreadable files
        return _reason(e)
      if stored is None:
        return 'its state metadata is missing'
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
      except Exception as e:  # orbax raises many kinds for unreadable files
        return _reason(e)
      return step, restored.state, restored.data

  def _quarantine(self, step: int, log) -> None:
    """Moves an unreadable checkpoint out of the manager's way, keeping its files (a second
    unreadable copy of the same step gets its own name: nothing is ever deleted)."""
    if jax.process_index() == 0:
      corrupt = self.directory.parent / 'checkpoints.corrupt'
      corrupt.mkdir(exist_ok=True)
      target, copy = corrupt / str(step), 0
      while target.exists():
        copy += 1
        target = corrupt / f'{step}.{copy}'
      (self.directory / str(step)).rename(target)
      log(f'moved the checkpoint at step {step} to {target}')
    self.manager.reload()

  def wait(self) -> None:
    with self._writing(self._last_started):
      self.manager.wait_until_finished()

  def close(self) -> None:
    try:
      self.wait()
    finally:
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


def _reason(error: Exception) -> str:
  text = str(error).splitlines()[0][:300] if str(error) else ''
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


_STORAGE_FAILURES = (
  'RESOURCE_EXHAUSTED',
  'No space left',
  'Disk quota',
  'PERMISSION_DENIED',
  'Read-only file system',
  'DATA_LOSS',
  'UNAVAILABLE',
)


def _is_write_error(error: BaseException) -> bool:
  while error is not None:
    if isinstance(error, OSError) or any(m in str(error) for m in _STORAGE_FAILURES):
      return True
    error = error.__cause__ or error.__context__
  return False


class _DropStorageFailures(logging.Filter):
  """orbax logs a failed write with its whole traceback before raising it, and its writer
  threads log again as their store and event loops go away; the run reports the failure in one
  line that names the folder (WriteFailed), so those records are dropped. Installed on the
  handlers (records of every logger reach them), once."""

  def __init__(self):
    super().__init__()
    self.failed = False
    self._installed = False

  def install(self) -> None:
    if not self._installed:
      for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None:
          handler.addFilter(self)
      logging.getLogger('absl').addFilter(self)
      # tensorstore reports exceptions of its Python callbacks through sys.excepthook, from its
      # own threads: a write whose event loop has already ended on the failure (orbax's write
      # coroutines end as soon as one write fails) reports "Event loop is closed" there.
      previous = sys.excepthook

      def excepthook(kind, value, tb):
        if _is_write_error(value):
          self.failed = True
        elif not (
          (self.failed or threading.current_thread() is not threading.main_thread())
          and _aftermath(repr(value))
        ):
          previous(kind, value, tb)

      sys.excepthook = excepthook
      self._installed = True

  def filter(self, record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and _is_write_error(error):
      self.failed = True  # what follows from it is dropped too
      return False
    text = record.getMessage() + (repr(error) if error is not None else '')
    return not (self.failed and _aftermath(text))


def _aftermath(text: str) -> bool:
  return any(m in text for m in ('after shutdown', 'Event loop is closed'))


_QUIET = _DropStorageFailures()


@contextlib.contextmanager
def _quiet_absl():
  """orbax logs each unreadable checkpoint at length; the run reports it in one line."""
  absl = logging.getLogger('absl')
  level = absl.level
  absl.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    absl.setLevel(level)
