"""A gs:// store that refuses writes in the middle of a run (403, as after a revoked permission)
stops the run with WriteFailed naming the file, as a local full disk does, whichever client met
the refusal first: gcsfs (metrics.jsonl) or google-cloud-storage (TensorBoard's event file)."""

import pytest

from jdl import config as config_lib
from jdl.train import errors, logs, loop
from tests import gcs_emulator

CONFIG = 'experiments/mlp/keras_regression.py:smoke'


@pytest.mark.parametrize('client', ['gcsfs', 'tensorboard'])
def test_a_store_failure_mid_run_stops_it_with_write_failed(gcs, client, monkeypatch, capsys):
  name = f'failing-{client}'
  workdir = f'gs://{gcs_emulator.BUCKET}/{name}'
  rewrites = []
  rewrite = logs.MetricWriter._rewrite

  def rewrite_then_refuse(self):  # gs:// metrics are rewritten whole at each record
    rewrites.append(1)
    if client == 'gcsfs' and len(rewrites) == 2:
      gcs_emulator.FORBIDDEN.add(f'{name}/')  # before metrics.jsonl is written again
    rewrite(self)
    if client == 'tensorboard' and len(rewrites) == 2:
      gcs_emulator.FORBIDDEN.add(f'{name}/')  # after metrics.jsonl, before the event file

  monkeypatch.setattr(logs.MetricWriter, '_rewrite', rewrite_then_refuse)
  try:
    with pytest.raises(errors.WriteFailed) as failure:
      loop.Trainer(config_lib.load(CONFIG)).fit(workdir)
  finally:
    gcs_emulator.FORBIDDEN.clear()
  path = f'{workdir}/metrics.jsonl' if client == 'gcsfs' else f'{workdir}/tensorboard'
  assert path in str(failure.value) and 'Forbidden' in str(failure.value), failure.value
  # The lock could not be deleted either: said, and the run's own error is the one raised.
  assert f'could not release the lock of {workdir}' in capsys.readouterr().out
