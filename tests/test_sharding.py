"""Data parallel, FSDP and tensor parallel on 8 CPU devices give the 1-device losses."""

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jdl import config as config_lib
from jdl import sharding
from jdl.train import loop


def small_mlp(mesh: dict) -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.task = 'regression'
  c.data.name = 'synthetic'
  c.data.kwargs = ml_collections.ConfigDict(dict(rows=512, features=16, outputs=8))
  c.model.name = 'mlp'
  c.model.in_features = 16
  c.model.features = (64, 64, 8)
  c.batch_size = 32
  c.num_train_steps = 6
  c.log_every_steps = 1
  c.eval_every_steps = -1
  c.checkpoint_every_steps = -1
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-2
  c.mesh.update(mesh)
  return c


MESHES = {
  'one device': dict(data=1, fsdp=1, tensor=1),
  'data parallel': dict(data=8, fsdp=1, tensor=1),
  'fsdp': dict(data=1, fsdp=8, tensor=1),
  'tensor parallel': dict(data=1, fsdp=1, tensor=8),
  'all three': dict(data=2, fsdp=2, tensor=2),
}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  out = {}
  for name, mesh in MESHES.items():
    workdir = tmp_path_factory.mktemp(name.replace(' ', '_'))
    out[name] = loop.train_and_evaluate(small_mlp(mesh), workdir)
  return out


@pytest.mark.parametrize('name', [n for n in MESHES if n != 'one device'])
def test_losses_equal_one_device(runs, name):
  reference = [h['loss'] for h in runs['one device']['history']]
  losses = [h['loss'] for h in runs[name]['history']]
  assert len(losses) == 6
  np.testing.assert_allclose(losses, reference, rtol=1e-5)
  assert losses[-1] < losses[0]  # it trains


def _kernel_specs(result):
  params = result['state'].params
  return [params['layers'][i]['kernel'].sharding.spec for i in range(3)]


def test_parameter_shardings_differ(runs):
  assert _kernel_specs(runs['one device']) == [P(None, None)] * 3
  assert _kernel_specs(runs['data parallel']) == [P(None, None)] * 3  # replicated weights
  # FSDP splits each kernel's 'embed' side; the 8-wide output layer is split too.
  assert _kernel_specs(runs['fsdp']) == [P('fsdp', None), P(None, 'fsdp'), P('fsdp', None)]
  # Tensor parallel splits the 'mlp' side: column-split, then row-split, then column-split.
  assert _kernel_specs(runs['tensor parallel']) == [
    P(None, 'tensor'),
    P('tensor', None),
    P(None, 'tensor'),
  ]
  assert _kernel_specs(runs['all three']) == [
    P('fsdp', 'tensor'),
    P('tensor', 'fsdp'),
    P('fsdp', 'tensor'),
  ]
  # Optimizer moments are created with their parameters' shardings.
  mu = runs['fsdp']['state'].opt_state[0].mu
  assert mu['layers'][0]['kernel'].sharding.spec == P('fsdp', None)
  shard = runs['fsdp']['state'].params['layers'][0]['kernel'].addressable_shards[0]
  assert shard.data.shape == (2, 64)  # 16 rows over 8 devices


def test_indivisible_dimension_is_replicated():
  mesh = jax.sharding.AbstractMesh((1, 8, 1), sharding.MESH_AXES)
  rules = config_lib.base_config().sharding_rules
  assert sharding.logical_to_spec(('embed', 'mlp'), (10, 64), rules, mesh) == P(None, None)
  assert sharding.logical_to_spec(('embed', 'mlp'), (16, 64), rules, mesh) == P('fsdp', None)


def test_mesh_shape_fills_and_checks():
  assert sharding.mesh_shape({'data': -1, 'fsdp': 2, 'tensor': 1}, 8) == (4, 2, 1)
  assert sharding.mesh_shape({'data': 1, 'fsdp': 1, 'tensor': 1}, 8) == (1, 1, 1)
  with pytest.raises(ValueError, match='needs 16 devices'):
    sharding.mesh_shape({'data': 16, 'fsdp': 1, 'tensor': 1}, 8)
  with pytest.raises(ValueError, match='at most one axis'):
    sharding.mesh_shape({'data': -1, 'fsdp': -1, 'tensor': 1}, 8)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
  full = loop.train_and_evaluate(small_mlp(MESHES['data parallel']), tmp_path / 'full')
  config = small_mlp(MESHES['data parallel'])
  config.grad_accum_steps = 4
  accum = loop.train_and_evaluate(config, tmp_path / 'accum')
  np.testing.assert_allclose(
    [h['loss'] for h in accum['history']], [h['loss'] for h in full['history']], rtol=1e-5
  )


def test_several_steps_per_call_match_one_per_call(tmp_path):
  one = loop.train_and_evaluate(small_mlp(MESHES['fsdp']), tmp_path / 'one')
  config = small_mlp(MESHES['fsdp'])
  config.steps_per_call = 3
  config.log_every_steps = 3
  three = loop.train_and_evaluate(config, tmp_path / 'three')
  for a, b in zip(jax.tree.leaves(one['state'].params), jax.tree.leaves(three['state'].params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
