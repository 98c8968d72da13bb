"""Where a training step's time goes: `jdl bench NAME --profile DIR`.

A benchmark built on `common.alternate` (gpt, lstm, ioi) runs its rounds as usual, then a few
more steps of each side under a profiler:

  DIR/jax/plugins/profile/*/*.xplane.pb   jax.profiler's trace of jdl's steps (TensorBoard's or
                                          XProf's profile tab reads DIR/jax)
  DIR/jdl_step.hlo                        the compiled step's HLO, whose instruction names the
                                          trace's op events carry
  DIR/torch_trace.json                    torch.profiler's trace of the PyTorch peer's steps
                                          (chrome://tracing, Perfetto)
  DIR/torch_key_averages.txt              its per-op table
  DIR/summary.md, DIR/summary.json        both steps by op class, side by side

On CPU, XLA's thunk executor emits one trace event per executed HLO instruction (a fusion, a dot,
a copy) with the instruction's name; the instruction's contents in the compiled HLO say what it
computes, and its op_name metadata where in the program it sits. An op is classed, first match:
outside the gradient (its op_name has no jvp: the optimizer update and the metrics); a dot (with
batch dimensions: attention's batched products); inside a while loop of a model without
attention (an LSTM's gates, cell and per-step gradient sums); exp (softmax, cross-entropy; also
sigmoid's exp outside a loop); rsqrt (layer norm); tanh, erf or x^3 (GELU); elementwise on the
attention scores' shape (the causal mask, softmax's division); data movement (copies,
transposes, gathers); anything else. Time outside every op event (the thunk executor's dispatch,
a while loop's control, waits) is the step's wall time minus the union of the op events. The
PyTorch side classes the self CPU time of torch.profiler's events by operator name (an operator
inside `Optimizer.step` is the update); the step's wall time minus the sum of self times is
framework overhead (Python, autograd's engine).

`python -m jdl.bench.profile summarize DIR` prints the tables of DIR again (after a change to the
classes); `python -m jdl.bench.gemms DIR/jdl_step.hlo` times the step's products alone.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import json
import math
import os
import re
import sys
import time

CLASSES = (
  'large products (dense dot)',
  'attention batched products',
  'softmax / cross-entropy',
  'layer norm',
  'GELU',
  'LSTM: the scan body or the LSTM kernel (jdl) / oneDNN LSTM kernel (PyTorch)',
  'optimizer update (outside the gradient)',
  'copies / transposes / gathers',
  'other elementwise / reductions',
  'outside ops (loop control, dispatch, waits)',
)
OUTSIDE = CLASSES[-1]
MOVES = {
  'copy',
  'transpose',
  'bitcast',
  'broadcast',
  'slice',
  'dynamic-slice',
  'dynamic-update-slice',
  'concatenate',
  'pad',
  'reshape',
  'gather',
  'scatter',
  'parameter',
  'constant',
  'tuple',
  'get-tuple-element',
  'iota',
  'reverse',
  'copy-start',
  'copy-done',
}


# ---- the compiled step's HLO ---------------------------------------------------------------------


@dataclasses.dataclass
class Instr:
  name: str
  opcode: str
  shape: tuple[int, ...]
  operands: list[str]
  attrs: str
  computation: str

  @property
  def op_name(self) -> str:
    match = re.search(r'op_name="([^"]*)"', self.attrs)
    return match[1] if match else ''

  @property
  def frame(self) -> int | None:
    match = re.search(r'stack_frame_id=(\d+)', self.attrs)
    return int(match[1]) if match else None


_INSTR = re.compile(
  r'^\s*(?:ROOT\s+)?%(?P<name>[\w.\-]+) = (?P<type>\(.*?\)|[\w]+\[[^\]]*\](?:\{[^}]*\})?|\w+\[\]) '
  r'(?P<op>[\w\-]+)\((?P<args>[^)]*)\)(?P<rest>.*)$'
)
_COMPUTATION = re.compile(r'^(?:ENTRY\s+)?%(?P<name>[\w.\-]+) .*\{$')


def _dims(text: str) -> tuple[int, ...]:
  match = re.match(r'\w+\[([^\]]*)\]', text)
  if not match or not match[1]:
    return ()
  return tuple(int(d) for d in match[1].split(','))


class Hlo:
  """The instructions of a compiled HLO module by name, and each computation's instructions."""

  def __init__(self, text: str):
    self.instrs: dict[str, Instr] = {}
    self.computations: dict[str, list[str]] = collections.defaultdict(list)
    current = ''
    for line in text.splitlines():
      if match := _COMPUTATION.match(line):
        current = match['name']
        continue
      if match := _INSTR.match(line):
        operands = re.findall(r'%([\w.\-]+)', match['args'])
        instr = Instr(
          match['name'], match['op'], _dims(match['type']), operands, match['rest'], current
        )
        self.instrs[instr.name] = instr
        self.computations[current].append(instr.name)

  def contents(self, name: str) -> list[Instr]:
    """The instruction and, for a fusion or call, every instruction of what it calls."""
    out, todo, seen = [], [name], set()
    while todo:
      instr = self.instrs.get(todo.pop())
      if instr is None or instr.name in seen:
        continue
      seen.add(instr.name)
      out.append(instr)
      for called in re.findall(r'calls=%([\w.\-]+)', instr.attrs):
        todo += self.computations.get(called, [])
    return out

  def gemm(self, instr: Instr) -> tuple[int, int, int, int] | None:
    """(batch, m, k, n) of a dot."""
    if instr.opcode != 'dot' or len(instr.operands) < 2:
      return None
    lhs, rhs = (self.instrs.get(o) for o in instr.operands[:2])
    if lhs is None or rhs is None:
      return None
    dims = lambda key: (
      [int(d) for d in re.search(rf'{key}=\{{([\d,]*)\}}', instr.attrs)[1].split(',') if d]
      if re.search(rf'{key}=\{{', instr.attrs)
      else []
    )
    lb, lc, rb, rc = (
      dims(k)
      for k in ('lhs_batch_dims', 'lhs_contracting_dims', 'rhs_batch_dims', 'rhs_contracting_dims')
    )
    batch = math.prod(lhs.shape[d] for d in lb)
    k = math.prod(lhs.shape[d] for d in lc)
    m = math.prod(s for d, s in enumerate(lhs.shape) if d not in lb + lc)
    n = math.prod(s for d, s in enumerate(rhs.shape) if d not in rb + rc)
    return batch, m, k, n

  def classify(self, name: str) -> tuple[str, float]:
    """(op class, matmul FLOPs) of the instruction `name` (a trace event's hlo_op)."""
    instrs = self.contents(name)
    if not instrs:
      return _class_by_name(name), 0.0
    top = instrs[0]
    gemms = [g for g in (self.gemm(i) for i in instrs) if g]
    flops = sum(2.0 * b * m * k * n for b, m, k, n in gemms)
    opcodes = {i.opcode for i in instrs}
    op_name = top.op_name
    if top.opcode == 'custom-call' and 'custom_call_target="jdl_lstm' in top.attrs:
      return CLASSES[5], self.lstm_flops(top)  # jdl.models.lstm_ffi's kernels: one call a pass
    if op_name and 'jvp(' not in op_name and not gemms:
      return 'optimizer update (outside the gradient)', flops
    if gemms or 'convolution' in opcodes:
      batched = any(b > 1 for b, *_ in gemms)
      return (CLASSES[1] if batched else CLASSES[0]), flops
    primitives = {i.op_name.rsplit('/', 1)[-1] for i in instrs}
    if 'exponential' in opcodes:
      return CLASSES[2], 0.0
    if 'rsqrt' in opcodes:
      return CLASSES[3], 0.0
    if '/while/' in op_name and not self.has_attention:
      return CLASSES[5], 0.0  # a recurrence's body: gates, cell, gradient sums over time
    if 'logistic' in opcodes:
      return CLASSES[5], 0.0
    if opcodes & {'tanh', 'erf'} or 'integer_pow' in primitives:  # tanh GELU's x^3
      return CLASSES[4], 0.0
    if 'rsqrt' in primitives:
      return CLASSES[3], 0.0
    if top.shape in self.score_shapes:  # the causal mask, the softmax's normalisation
      return CLASSES[2], 0.0
    # the rest of an expression whose marker XLA fused elsewhere: the same source line (stack
    # frame) as a tanh (GELU's 0.5 x (1 + tanh)) or an rsqrt (layer norm's scaling)
    frame = top.frame
    if frame is not None and frame in self.frames('tanh', 'erf'):
      return CLASSES[4], 0.0
    if frame is not None and frame in self.frames('rsqrt'):
      return CLASSES[3], 0.0
    if opcodes <= MOVES | {'fusion'} or opcodes & {'transpose', 'copy'}:
      return CLASSES[7], 0.0
    return CLASSES[8], 0.0

  def lstm_flops(self, instr: Instr) -> float:
    """The matrix products inside a call of jdl.models.lstm_ffi.onednn: x_t W and h_{t-1} U at
    every step forward, twice that backward (the gradients of the inputs and of the weights);
    0 for the fused kernel of jdl.models.lstm_ffi, which this does not count."""
    target = re.search(r'custom_call_target="(\w+)"', instr.attrs)[1]
    operands = [self.instrs.get(o) for o in instr.operands[:3]]
    if not target.startswith('jdl_lstm_onednn') or len(operands) < 3 or None in operands:
      return 0.0
    (T, B, F), H = operands[0].shape, operands[2].shape[0]  # x [T, B, F], U [H, 4, H]
    forward = 2.0 * T * B * (F + H) * 4 * H
    return forward if target.endswith('_fwd') else 2 * forward

  def frames(self, *opcodes: str) -> set[int]:
    """The stack frames (source lines) of every instruction with one of these opcodes."""
    return {i.frame for i in self.instrs.values() if i.opcode in opcodes and i.frame is not None}

  @property
  def has_attention(self) -> bool:
    """Whether the module makes attention scores (a scan over layers is then no recurrence)."""
    return bool(self.score_shapes)

  @property
  def score_shapes(self) -> set[tuple[int, ...]]:
    """Output shapes of the batched products that make square (query x key) score matrices."""
    if not hasattr(self, '_scores'):
      self._scores = {
        i.shape
        for i in self.instrs.values()
        if i.opcode == 'dot'
        and 'lhs_batch_dims' in i.attrs
        and len(i.shape) >= 3
        and i.shape[-1] == i.shape[-2]
      }
    return self._scores

  def gemm_shapes(self) -> collections.Counter:
    """Every dot of the module as (batch, m, k, n) -> how many times a step computes it (a dot
    in a loop's body once per iteration)."""
    times = self.executions()
    out = collections.Counter()
    for i in self.instrs.values():
      if i.opcode == 'dot' and (g := self.gemm(i)):
        out[g] += times.get(i.computation, 1)
    return out

  def executions(self) -> dict[str, int]:
    """How many times each computation runs in one call: a while loop's body its known trip
    count times its caller's, a fusion's or call's computation as often as its caller."""
    times: dict[str, int] = {}
    for _ in range(8):  # nesting depth; each pass settles one more level
      for i in self.instrs.values():
        outer = times.get(i.computation, 1)
        if i.opcode == 'while' and (body := re.search(r'body=%([\w.\-]+)', i.attrs)):
          trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', i.attrs)
          times[body[1]] = outer * (int(trips[1]) if trips else 1)
        for called in re.findall(r'calls=%([\w.\-]+)', i.attrs):
          times[called] = outer
    return times


def _class_by_name(name: str) -> str:
  """An op event whose instruction is not in the HLO (no module given): its name says what."""
  if name.startswith(('dot', 'ynn_fusion', 'convolution')):
    return CLASSES[0]
  if name.startswith(('copy', 'transpose', 'gather', 'scatter', 'concatenate', 'slice')):
    return CLASSES[7]
  return CLASSES[8]


# ---- jdl's side: the xplane trace ----------------------------------------------------------------


def xplane_file(trace_dir: str) -> str:
  files = sorted(glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True), key=os.path.getmtime)
  if not files:
    raise FileNotFoundError(f'no .xplane.pb under {trace_dir}')
  return files[-1]


def op_events(xplane: str) -> list[tuple[str, int, int]]:
  """(hlo_op, start ns, duration ns) of every executed HLO instruction in a jax.profiler trace."""
  from jax.profiler import ProfileData

  events = []
  for plane in ProfileData.from_file(xplane).planes:
    for line in plane.lines:
      for event in line.events:
        stats = dict(event.stats)
        if 'hlo_op' in stats:
          events.append((str(stats['hlo_op']), int(event.start_ns), int(event.duration_ns)))
  return events


def _union_ns(intervals: list[tuple[int, int]]) -> int:
  busy, end = 0, -1
  for start, stop in sorted(intervals):
    if stop > end:
      busy += stop - max(start, end)
      end = stop
  return busy


def jax_breakdown(events, hlo: Hlo | None, steps: int, wall_seconds: float) -> dict:
  """Milliseconds per step of each op class (summed over the executor's threads), their share
  of the step (op time scaled to the busy part of the wall time; the rest is OUTSIDE) and the
  matmul FLOP rate inside the products."""
  ms, flops = collections.Counter(), collections.Counter()
  classes = {}
  for name, _, duration in events:
    if name not in classes:
      classes[name] = hlo.classify(name) if hlo else (_class_by_name(name), 0.0)
    cls, f = classes[name]
    ms[cls] += duration / 1e6 / steps
    flops[cls] += f / steps if f else 0.0
  wall_ms = 1e3 * wall_seconds / steps
  busy_ms = _union_ns([(s, s + d) for _, s, d in events]) / 1e6 / steps
  total = sum(ms.values()) or 1.0
  rows = {}
  for cls in CLASSES[:-1]:
    if ms[cls]:
      share = ms[cls] / total * min(busy_ms, wall_ms) / wall_ms
      rows[cls] = {'ms': ms[cls], 'share': share, 'gflop': flops[cls] / 1e9}
  outside = max(wall_ms - busy_ms, 0.0)
  rows[OUTSIDE] = {'ms': outside, 'share': outside / wall_ms, 'gflop': 0.0}
  return {'step_ms': wall_ms, 'op_ms': total, 'busy_ms': busy_ms, 'rows': rows}


# ---- the PyTorch peer's side -------------------------------------------------------------------

_TORCH_CLASSES = (
  (CLASSES[1], ('bmm', 'baddbmm', 'scaled_dot_product', 'flash_attention')),
  (CLASSES[0], ('aten::mm', 'aten::addmm', 'aten::matmul', 'aten::linear', 'aten::_addmm')),
  (CLASSES[5], ('rnn', 'lstm', 'aten::sigmoid', 'sigmoid_backward')),
  (CLASSES[2], ('softmax', 'nll_loss', 'cross_entropy')),
  (CLASSES[3], ('layer_norm',)),
  (CLASSES[4], ('gelu', 'aten::tanh', 'tanh_backward', 'aten::pow')),
  (CLASSES[6], ('_foreach', 'Optimizer', 'aten::_fused_adam')),
  (
    CLASSES[7],
    (
      'copy',
      'clone',
      'contiguous',
      'transpose',
      'permute',
      'aten::t',
      'view',
      'reshape',
      'expand',
      'as_strided',
      'aten::cat',
      'index',
      'embedding',
      'aten::to',
      'aten::_to_copy',
      'split',
      'select',
      'slice',
      'unsqueeze',
      'squeeze',
      'narrow',
      'aten::empty',
      'aten::zeros',
      'aten::detach',
      'aten::alias',
      'stack',
      'unbind',
    ),
  ),
)


def _torch_class(name: str) -> str:
  if 'Backward' in name or name.startswith(('autograd::', 'torch::autograd')):
    return OUTSIDE  # autograd's nodes: their self time is the engine's bookkeeping
  for cls, keys in _TORCH_CLASSES:
    if any(k in name for k in keys):
      return cls
  return CLASSES[8]


def torch_breakdown(ops: list[dict], steps: int, wall_seconds: float) -> dict:
  """The same table from torch.profiler's key_averages (self CPU time of each operator)."""
  ms = collections.Counter()
  for op in ops:
    ms[_torch_class(op['name'])] += op['self_cpu_us'] / 1e3 / steps
  wall_ms = 1e3 * wall_seconds / steps
  ms[OUTSIDE] += max(wall_ms - sum(ms.values()), 0.0)
  total = max(sum(ms.values()), wall_ms)
  rows = {c: {'ms': ms[c], 'share': ms[c] / total} for c in CLASSES if ms[c]}
  return {'step_ms': wall_ms, 'rows': rows}


def torch_profile(step, prepare, steps: int, outdir: str) -> dict:
  """Runs `steps` calls of `step(prepare())` under torch.profiler (CPU), writes its trace and
  table into `outdir`; returns the step seconds and the per-operator self times."""
  import torch.profiler

  os.makedirs(outdir, exist_ok=True)
  times = []
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      inputs = prepare()
      t = time.perf_counter()
      step(inputs)
      times.append(time.perf_counter() - t)
  prof.export_chrome_trace(os.path.join(outdir, 'torch_trace.json'))
  averages = prof.key_averages()
  with open(os.path.join(outdir, 'torch_key_averages.txt'), 'w') as f:
    f.write(averages.table(sort_by='self_cpu_time_total', row_limit=60))
  # An operator inside the optimizer's step or zero_grad is the update, whatever its name
  # (AdamW's foreach kernels show as aten::add_, lerp_, sqrt, ...).
  self_us = collections.Counter()
  for event in prof.events():
    parent, name = event.cpu_parent, event.name
    while parent is not None:
      if parent.name.startswith('Optimizer.'):
        name = f'Optimizer: {name}'
        break
      parent = parent.cpu_parent
    self_us[name] += float(event.self_cpu_time_total)
  ops = [{'name': name, 'self_cpu_us': us} for name, us in self_us.items()]
  return {'step_seconds': times, 'ops': ops}


# ---- both sides: what `jdl bench NAME --profile DIR` does after the rounds -----------------------


def capture(jdl_steps, peer, outdir: str, steps: int = 3, jdl=None) -> dict:
  """Profiles `steps` of jdl's steps (`jdl_steps(k)` -> seconds of each) and of the peer, writes
  the traces and the summary into `outdir`; returns the summary. `jdl` (a common.JdlSteps) gives
  the compiled step's HLO, which names what each op event computes."""
  import jax

  os.makedirs(outdir, exist_ok=True)
  hlo = None
  if jdl is not None:
    batch = jdl.trainer.global_batch(jdl.make_batch(jdl.rng))
    text = jdl.trainer.run_steps.lower(jdl.state, batch).compile().as_text()
    with open(os.path.join(outdir, 'jdl_step.hlo'), 'w') as f:
      f.write(text)
    hlo = Hlo(text)
  from jdl.bench import common

  peak_before = common.matmul_peak_flops(repeats=5)
  trace_dir = os.path.join(outdir, 'jax')
  with jax.profiler.trace(trace_dir):
    seconds = jdl_steps(steps)
  events = op_events(xplane_file(trace_dir))
  summary = {
    'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
    'load': os.getloadavg(),
    'steps': steps,
    'jdl_seconds': seconds,
    'jdl': jax_breakdown(events, hlo, steps, sum(seconds)),
  }
  if peer is not None:
    out = peer.profile(outdir, steps)
    if 'ops' in out:
      summary['peer'] = torch_breakdown(out['ops'], steps, sum(out['step_seconds']))
      summary['peer_seconds'], summary['peer_ops'] = out['step_seconds'], out['ops']
  peak_after = common.matmul_peak_flops(repeats=5)
  summary['matmul_peak_gflops'] = max(peak_before, peak_after) / 1e9  # before and after
  if hlo is not None:
    summary['gemms'] = [
      {'batch': b, 'm': m, 'k': k, 'n': n, 'count': c}
      for (b, m, k, n), c in hlo.gemm_shapes().most_common()
    ]
  with open(os.path.join(outdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  text = format_summary(summary)
  with open(os.path.join(outdir, 'summary.md'), 'w') as f:
    f.write(text + '\n')
  print(f'\nprofile ({outdir}):\n{text}', flush=True)
  return summary


def format_summary(summary: dict) -> str:
  jdl, peer = summary['jdl'], summary.get('peer')
  peak = summary.get('matmul_peak_gflops')
  head = '| op class | jdl ms/step | jdl share |' + (' peer ms/step | peer share |' if peer else '')
  lines = [head, '|---|---|---|' + ('---|---|' if peer else '')]
  for cls in CLASSES:
    a = jdl['rows'].get(cls)
    b = (peer or {}).get('rows', {}).get(cls)
    if not a and not b:
      continue
    cell = lambda r: f' {r["ms"]:.1f} | {r["share"]:.0%} |' if r else ' - | - |'
    extra = ''
    if a and a.get('gflop') and peak:
      rate = a['gflop'] / (a['ms'] / 1e3)
      extra = f' ({a["gflop"]:.1f} GFLOP at {rate:.0f} GFLOP/s = {rate / peak:.0%} of peak)'
    lines.append(f'| {cls}{extra} |' + cell(a) + (cell(b) if peer else ''))
  lines.append(
    f'| **step (wall)** | **{jdl["step_ms"]:.0f}** | 100% |'
    + (f' **{peer["step_ms"]:.0f}** | 100% |' if peer else '')
  )
  load = ', '.join(f'{x:.2f}' for x in summary['load'])
  lines.append(
    f'\n{summary["date"]}; load average {load}; float32 matmul peak (2048^3, JAX, best of '
    'before and after) '
    f'{peak:.1f} GFLOP/s; jdl op time summed over threads {jdl["op_ms"]:.0f} ms/step, busy '
    f'(union of op events) {jdl["busy_ms"]:.0f} ms/step'
  )
  return '\n'.join(lines)


def summarize(outdir: str) -> dict:
  """The summary of a profile directory again, from its trace, HLO and the peer's operators
  (after a change to the classes)."""
  with open(os.path.join(outdir, 'summary.json')) as f:
    summary = json.load(f)
  hlo_file = os.path.join(outdir, 'jdl_step.hlo')
  hlo = Hlo(open(hlo_file).read()) if os.path.exists(hlo_file) else None
  events = op_events(xplane_file(os.path.join(outdir, 'jax')))
  steps = summary['steps']
  summary['jdl'] = jax_breakdown(events, hlo, steps, sum(summary['jdl_seconds']))
  if 'peer_ops' in summary:
    summary['peer'] = torch_breakdown(summary['peer_ops'], steps, sum(summary['peer_seconds']))
  return summary


if __name__ == '__main__':
  if sys.argv[1:2] == ['summarize']:
    print(format_summary(summarize(sys.argv[2])))
