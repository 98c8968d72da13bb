"""Throughput and MFU in every run's metrics (jdl.train.cost.Meter in the loop), and the CPU's
matmul rate measured once per machine."""

import json

import jax
import pytest

from jdl import paths
from jdl.train import cost, loop
from jdl.train.run import read_metrics


def test_a_smoke_run_logs_throughput_and_mfu_against_the_cpu_peak(
  mlp_config, tmp_path, monkeypatch, capsys
):
  peak = 2e10
  monkeypatch.setattr(cost, 'cpu_matmul_flops', lambda: peak)
  mlp_config.num_epochs = 3
  trainer = loop.Trainer(mlp_config)
  trainer.fit(tmp_path / 'run')
  records = [r for r in read_metrics(tmp_path / 'run') if 'loss' in r]
  assert [r['step'] for r in records] == [8, 16, 24]
  devices = jax.device_count()  # the tests' fake CPU devices share the machine's peak
  batch = next(iter(trainer.train_batches()))
  spec = {k: v for k, v in trainer.global_batch(batch).items()}
  flops = trainer.task.flops_per_step(trainer.plan, spec)
  # Dense 10-10-2-1 (diabetes: 10 features) on 32 rows: 3 x 2 x 32 x (10*10 + 10*2 + 2*1)
  assert flops == 3 * 2 * 32 * (10 * 10 + 10 * 2 + 2 * 1)
  for r in records:  # from the first record on: compilation is not in the timed interval
    rate, mfu = r['examples_per_sec_per_device'], r['mfu']
    assert 0 < mfu < 1 and rate * devices > 32  # faster than a step a second
    # both from the same interval: MFU / rate per device = FLOPs per example / device peak
    assert mfu / rate == pytest.approx(flops / 32 / (peak / devices), rel=1e-9)
  out = capsys.readouterr().out
  assert 'examples/s per device; MFU' in out
  assert f'measured fp32 matmul {peak / devices / 1e9:.0f} GFLOP/s' in out


def test_the_cpu_matmul_rate_is_measured_once_and_again_only_on_a_quieter_machine(
  tmp_path, monkeypatch
):
  monkeypatch.setattr(paths, 'CACHE', tmp_path)
  first = cost.cpu_matmul_flops(n=64, repeats=2)
  assert first > 1e6
  (entry,) = json.loads((tmp_path / 'matmul_peak.json').read_text()).values()
  assert entry['flops'] == first and entry['n'] == 64
  assert cost.cpu_matmul_flops(n=64, repeats=2) == first  # read back, not measured
  key = next(iter(json.loads((tmp_path / 'matmul_peak.json').read_text())))

  def cache(flops, load):
    (tmp_path / 'matmul_peak.json').write_text(json.dumps({key: {'flops': flops, 'load': load}}))

  cache(1.0, 1000.0)  # measured under a load this machine is surely below now: measured again
  assert cost.cpu_matmul_flops(n=64, repeats=2) > 1e6
  cache(1e30, 1000.0)  # measured again, but the better rate stays
  assert cost.cpu_matmul_flops(n=64, repeats=2) == 1e30
  cache(5.0, 0.0)  # measured on an idle machine: kept
  assert cost.cpu_matmul_flops(n=64, repeats=2) == 5.0


def test_the_meter_times_the_interval_since_its_mark(monkeypatch):
  class Task:
    def batch_units(self, batch):
      return 'tokens', 100

    def flops_per_step(self, plan, batch):
      return 1e9

  clock = iter([10.0, 12.0, 20.0, 21.0])
  monkeypatch.setattr(cost.time, 'perf_counter', lambda: next(clock))
  meter = cost.Meter(Task(), None, {}, devices=2, peak=(1e9, 'test'), step=4)  # marked at 10 s
  fields = meter.lap(8)  # 4 steps in 2 s on 2 devices
  assert fields == {'tokens_per_sec_per_device': 100.0, 'mfu': 1.0}
  meter.mark(8)  # at 20 s
  assert meter.lap(8) == {}  # no step since the mark
  assert 'MFU' in meter.summary() and '4 steps' in meter.summary()


def test_the_cached_rate_is_kept_per_thread_count(tmp_path, monkeypatch):
  monkeypatch.setattr(paths, 'CACHE', tmp_path)
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false')
  assert cost.cpu_threads() == 1
  cost.cpu_matmul_flops(n=64, repeats=2)
  monkeypatch.setenv('XLA_FLAGS', '')
  cost.cpu_matmul_flops(n=64, repeats=2)
  keys = sorted(json.loads((tmp_path / 'matmul_peak.json').read_text()))
  threads = cost.cpu_threads()
  if threads == 1:  # a one-core machine: both processes have one thread, one entry
    assert len(keys) == 1 and '|1 thread(s) of' in keys[0]
  else:
    assert len(keys) == 2 and {k.split('|')[1].split(' ')[0] for k in keys} == {'1', str(threads)}


def test_an_mfu_above_one_measures_the_cpu_rate_again(monkeypatch):
  class Task:
    def batch_units(self, batch):
      return 'tokens', 100

    def flops_per_step(self, plan, batch):
      return 1e9

  calls = []

  def measure(device=None, remeasure=False):
    calls.append(remeasure)
    return 4e9, 'measured fp32 matmul 4 GFLOP/s'

  monkeypatch.setattr(cost, 'device_peak_flops', measure)
  clock = iter([10.0, 11.0, 20.0, 21.0])
  monkeypatch.setattr(cost.time, 'perf_counter', lambda: next(clock))
  said = []
  stale = (1e9, 'measured fp32 matmul 1 GFLOP/s')  # cached under load: below this run's rate
  meter = cost.Meter(Task(), None, {}, devices=1, peak=stale, step=0, log=said.append)
  assert meter.lap(2) == {'tokens_per_sec_per_device': 200.0, 'mfu': 0.5}  # 2 GFLOP/s of 4
  assert calls == [True] and 'measured again, now measured fp32 matmul 4 GFLOP/s' in said[0]
  meter.mark(2)
  assert meter.lap(10)['mfu'] == 2.0  # over 100% again (8 GFLOP/s of 4): measured only once
  assert calls == [True]
