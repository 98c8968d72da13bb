"""Where metrics go: `metrics.jsonl`, TensorBoard event files, and a progress bar or log lines.

Only process 0 writes; the others get a writer that does nothing. A resumed run first drops the
records written after the checkpoint it resumes from (they are about to be trained again), so
`metrics.jsonl` never holds a step twice; a store that cannot append (gs://) gets the whole file
rewritten at each record, and so does TensorBoard's event file there (tensorboardX writes gs://
through google-cloud-storage). A failed write stops the run with `WriteFailed` naming the file.
"""

from __future__ import annotations

import json
import math
import sys
import time

import tqdm
from etils import epath

from jdl import paths
from jdl.train.errors import WriteFailed, store_errors


class MetricWriter:
  def __init__(
    self,
    workdir: epath.PathLike,
    total_steps: int,
    start_step: int,
    progress_bar: str = 'auto',
    enabled: bool = True,
  ):
    self.enabled = enabled
    self.total_steps = total_steps
    if not enabled:
      return
    from tensorboardX import SummaryWriter  # TF-free event files that TensorBoard reads

    workdir = epath.Path(workdir)
    self.path = workdir / 'metrics.jsonl'
    self.appends = paths.is_local(workdir)
    earlier = read_metrics(workdir) if self.path.exists() else []
    self.records = [r for r in earlier if r.get('step', 0) <= start_step]
    if len(self.records) < len(earlier) or not self.appends:
      self._rewrite()
    self.jsonl = self.path.open('a') if self.appends else None
    self.tb = SummaryWriter(str(workdir / 'tensorboard'))
    use_bar = progress_bar == 'always' or (progress_bar == 'auto' and sys.stderr.isatty())
    self.bar = (
      tqdm.tqdm(total=total_steps, initial=start_step, unit='step', dynamic_ncols=True)
      if use_bar
      else None
    )
    self._last = (time.perf_counter(), start_step)

  def advance(self, step: int) -> None:
    if self.enabled and self.bar is not None:
      self.bar.update(step - self.bar.n)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    """One record: a JSON line, TensorBoard scalars, and a progress-bar postfix or log line."""
    if not self.enabled:
      return
    now = time.perf_counter()
    last_time, last_step = self._last
    if step > last_step:
      metrics = dict(metrics, steps_per_sec=(step - last_step) / max(now - last_time, 1e-9))
      self._last = (now, step)
    record = {'step': step, **{k: float(v) for k, v in metrics.items()}}
    self.records.append(record)
    try:
      if self.appends:
        self.jsonl.write(json.dumps(record) + '\n')
        self.jsonl.flush()
      else:
        self._rewrite()
      for key, value in metrics.items():
        self.tb.add_scalar(key, float(value), step)
      self.tb.flush()
    except WriteFailed:
      self._abandon_tensorboard()
      raise
    except store_errors() as e:
      self._abandon_tensorboard()
      raise WriteFailed(
        f'writing the metrics of step {step} to {self.path} or {self.path.parent}/tensorboard '
        f'failed: {type(e).__name__}: {e}'
      ) from e
    shown = {k: v for k, v in record.items() if k != 'step' and 'grad_norm' not in k}
    if self.bar is not None:
      self.bar.set_postfix({k: _fmt(v) for k, v in shown.items()}, refresh=False)
      self.advance(step)
    else:
      rate = record.get('steps_per_sec')
      eta = (
        f' eta {_duration((self.total_steps - step) / rate)}'
        if rate and step < self.total_steps
        else ''
      )
      body = ' '.join(f'{k} {_fmt(v)}' for k, v in shown.items())
      print(f'[step {step}/{self.total_steps}{eta}] {body}', flush=True)

  def _rewrite(self) -> None:
    text = ''.join(json.dumps(r) + '\n' for r in self.records)
    try:
      if self.appends:  # a whole new file, then a rename: never a half-written one
        partial = self.path.parent / f'{self.path.name}.partial'
        partial.write_text(text)
        partial.replace(self.path)
      else:
        self.path.write_text(text)
    except store_errors() as e:
      raise WriteFailed(f'writing {self.path} failed: {type(e).__name__}: {e}') from e

  def _abandon_tensorboard(self) -> None:
    """After a failed write, TensorBoard's writer is given up: closed if the store lets it, else
    marked closed (tensorboardX keeps no other switch), so that neither `close()` nor its exit
    hook retries the upload of a gs:// event file for minutes while the run ends."""
    self.failed = True
    try:
      self.tb.close()
    except Exception:
      for writer in (self.tb.all_writers or {}).values():
        events = writer.event_writer
        if events._worker is not None:
          events._worker.stop()  # its thread, which would read a closed queue at exit
        events._closed = True
        # tensorboardX's gs:// file uploads its whole buffer again when garbage-collected, with
        # two minutes of retries: the events that failed are given up instead.
        store = events._ev_writer._py_recordio_writer._writer
        if hasattr(store, 'blob'):
          store.flush = lambda: None

  def message(self, text: str) -> None:
    if not self.enabled:
      return
    (self.bar.write if self.bar is not None else print)(text)

  def close(self) -> None:
    if self.enabled:
      if self.bar is not None:
        self.bar.close()
      if self.jsonl is not None:
        self.jsonl.close()
      self.tb.close()


def _fmt(v: float) -> str:
  if not math.isfinite(v) or v == 0 or 1e-3 <= abs(v) < 1e5:
    return f'{v:.4g}'
  return f'{v:.3e}'


def _duration(seconds: float) -> str:
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


def read_metrics(workdir: epath.PathLike) -> list[dict]:
  """The records of a run's `metrics.jsonl`, in the order written (a resumed run appends; a
  line cut short by a crash is skipped)."""
  path = epath.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    raise FileNotFoundError(
      f'no metrics in {path}: train first with `jdl train --workdir {workdir}`'
    )
  records = []
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return records
