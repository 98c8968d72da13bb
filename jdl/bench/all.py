"""`jdl bench NAME [--quick] [--profile DIR] [--json FILE]` and `jdl bench all --json FILE`: the
regression guard.

`all` runs every registered benchmark's quick mode, each in its own process (its own JAX state
and memory; a failure stops only that benchmark), shows their output as it comes, and writes one
JSON file: per benchmark its ratios against the peer, MFU where it measures it, the matmul peak
of its run, the printed tables and target lines, its wall time, and for the whole file the
machine, the versions, the date and the load average before and after. A benchmark built on
`common.print_comparison` is captured from the dict that records (`common.RESULTS`); one with a
table of its own is read from what it prints (the `jdl / PEER ...: R.RRx` line, else the last
`R.RRx` cell of its table). The JSON keeps measured numbers only; whether the machine was idle
is for the reader to judge from `load`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import time

from jdl.bench import common

MARKER = '@@jdl-bench-result '
PACKAGES = (
  'jax',
  'jaxlib',
  'flax',
  'optax',
  'numpy',
  'torch',
  'transformers',
  'keras',
  'gensim',
  'transformer-lens',
)


def versions() -> dict[str, str]:
  """Python's and every installed package of PACKAGES's version (without importing them)."""
  out = {'python': sys.version.split()[0]}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def parse_output(text: str) -> dict:
  """What a benchmark's printed report says: its Markdown table rows, target lines, ratio(s)
  and MFU percentages."""
  tables = [line for line in text.splitlines() if line.startswith('|')]
  targets = [line.strip() for line in text.splitlines() if 'target' in line]
  ratios = [float(r) for r in re.findall(r'^jdl / [^:\n]+: ([\d.]+)x', text, re.M)]
  if not ratios:  # a table whose last column is the ratio (mlp, cnn)
    cells = [re.search(r'\| ([\d.]+)x \|\s*$', line) for line in tables]
    ratios = [float(c[1]) for c in cells if c]
  mfu = [float(m) / 100 for m in re.findall(r'\(([\d.]+)% of peak\)', text)]
  return {'tables': tables, 'targets': targets, 'ratios': ratios, 'mfu': mfu}


def run_one(module: str, function: str, quick: bool = True, env: dict | None = None) -> dict:
  """Runs `module.function(quick=...)` in its own process, echoing its output; returns its
  result: the records of common.RESULTS, what its output says, exit status and seconds."""
  start = time.perf_counter()
  args = [sys.executable, '-m', 'jdl.bench.all', '--one', module, function]
  proc = subprocess.Popen(
    args + (['--quick'] if quick else []),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    env=dict(os.environ, **(env or {})),
  )
  lines, child = [], {}
  for line in proc.stdout:
    if line.startswith(MARKER):
      child = json.loads(line[len(MARKER) :])
      continue
    lines.append(line)
    sys.stdout.write(line)
    sys.stdout.flush()
  status = proc.wait()
  text = ''.join(lines)
  result = {
    'module': f'{module}.{function}',
    'status': status,
    'seconds': round(time.perf_counter() - start, 1),
    **parse_output(text),
    'records': child.get('records', []),
    'peak_flops': child.get('peak_flops'),
  }
  if result['records']:  # print_comparison's numbers over the parsed ones
    result['ratios'] = [r['ratio'] for r in result['records'] if 'ratio' in r] or result['ratios']
    result['mfu'] = [r['jdl_mfu'] for r in result['records'] if 'jdl_mfu' in r] or result['mfu']
  if status:
    result['error'] = text[-2000:]
  return result


def run_all(benchmarks: dict, path: str = '', quick: bool = True, env: dict | None = None) -> dict:
  """Every benchmark of `benchmarks` (name -> (module, function, help)) one after the other;
  writes the report to `path` (if given) and returns it."""
  report = {
    'date': common.today(),
    'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
    'machine': common.machine(),
    'versions': versions(),
    'quick': quick,
    'load_before': list(os.getloadavg()),
    'benchmarks': {},
  }
  for name, (module, function, *_) in benchmarks.items():
    print(f'\n=== jdl bench {name}{" --quick" if quick else ""}', flush=True)
    report['benchmarks'][name] = run_one(module, function, quick, env)
    if path:  # after every benchmark: a later failure leaves the earlier results
      write_json(path, report)
  report['load_after'] = list(os.getloadavg())
  if path:
    write_json(path, report)
  print(format_report(report))
  return report


def write_json(path: str, report: dict) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  partial = f'{path}.partial'
  with open(partial, 'w') as f:
    json.dump(report, f, indent=1)
    f.write('\n')
  os.replace(partial, path)


def format_report(report: dict) -> str:
  lines = [
    f'\n{report["date"]}; {report["machine"]}; load {report["load_before"]} -> '
    f'{report.get("load_after")}',
    '| benchmark | status | ratio(s) vs peer | jdl MFU | seconds |',
    '|---|---|---|---|---|',
  ]
  for name, r in report['benchmarks'].items():
    ratios = ', '.join(f'{x:.2f}x' for x in r['ratios']) or '-'
    mfu = ', '.join(f'{x:.1%}' for x in r['mfu']) or '-'
    status = 'ok' if r['status'] == 0 else f'FAILED ({r["status"]})'
    lines.append(f'| {name} | {status} | {ratios} | {mfu} | {r["seconds"]:.0f} |')
  return '\n'.join(lines)


def dispatch(benchmarks: dict, name: str, quick=False, profile='', json='') -> int:
  """`jdl bench NAME ...`: one benchmark in this process (with --profile: its profile too), or
  `all` of them."""
  from jdl.train.errors import UsageError

  if name == 'all':
    if profile:
      raise UsageError('--profile profiles one benchmark: jdl bench NAME --profile DIR')
    report = run_all(benchmarks, json, quick=True)
    return int(any(r['status'] for r in report['benchmarks'].values()))
  module, function, *_ = benchmarks[name]
  if profile:
    common.PROFILE_DIR = profile
  stdout = _Tee()
  old, sys.stdout = sys.stdout, stdout
  try:
    status = getattr(importlib.import_module(module), function)(quick=quick)
    status = status if isinstance(status, int) else 0  # a benchmark may return its ratio
  finally:
    sys.stdout = old
  if profile and not os.path.exists(os.path.join(profile, 'summary.json')):
    print(
      f'jdl bench {name}: no profile written: --profile needs a benchmark whose rounds run '
      'through jdl.bench.common.alternate (gpt, lstm, ioi)',
      file=sys.stderr,
    )
    status = status or 2
  if json:
    report = {
      'date': common.today(),
      'machine': common.machine(),
      'versions': versions(),
      'quick': quick,
      'benchmarks': {
        name: {
          'module': f'{module}.{function}',
          'status': status,
          **parse_output(stdout.getvalue()),
          'records': common.RESULTS,
          'peak_flops': max(common._peaks, default=None),
        }
      },
    }
    write_json(json, report)
  return status


class _Tee(io.StringIO):
  """sys.stdout that also keeps what was written."""

  def __init__(self):
    super().__init__()
    self.out = sys.stdout

  def write(self, text):
    self.out.write(text)
    return super().write(text)

  def flush(self):
    self.out.flush()


def _child(module: str, function: str, quick: bool) -> int:
  """The process of one benchmark of `run_all`: its output, then one marker line of records."""
  status = getattr(importlib.import_module(module), function)(quick=quick) or 0
  sys.stdout.flush()
  payload = {'records': common.RESULTS, 'peak_flops': max(common._peaks, default=None)}
  print(MARKER + json.dumps(payload, default=float), flush=True)
  return int(status) if isinstance(status, int) else 0


if __name__ == '__main__':
  if sys.argv[1:2] == ['--one']:
    sys.exit(_child(sys.argv[2], sys.argv[3], '--quick' in sys.argv[4:]))
