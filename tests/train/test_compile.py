"""`jdl compile`: the training step compiled ahead of time for a TPU slice on this CPU (libtpu,
compile-only devices), its memory per chip and FLOPs; the slice names; the task hooks it reads.

Compiling for a slice loads libtpu into the process, so the compilations run in their own
process (`run_jdl`) and the 8 CPU devices of this one are left as they are."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import pytest

from jdl import cli, sharding
from jdl import config as config_lib
from jdl.config import ConfigError
from jdl.train import compile as compile_lib
from jdl.train import cost, params
from jdl.train.task import Task, get_task
from tests.conftest import ROOT, run_jdl

SMOKE_GPT = str(ROOT / 'experiments/gpt/char_bible.py') + ':smoke'
SMOKE_GAN = str(ROOT / 'experiments/generative/gan_fmnist.py') + ':smoke'


def compile_json(*args) -> dict:
  proc = run_jdl('compile', *args, '--json', check=True)
  return json.loads(proc.stdout)


def tiled_bytes(shape) -> int:
  """An array's bytes in TPU tiles of 8 x 128 32-bit words: the most a TPU layout takes for any
  dtype (bfloat16 tiles are 16 x 128, int8 tiles 32 x 128: the same bytes or fewer)."""
  *lead, rows, cols = (1, 1, *shape)
  return math.prod(lead) * -(-rows // 8) * 8 * -(-cols // 128) * 128 * 4


def padded_argument_bound(task, mesh_sizes: dict, batch: dict) -> int:
  """The state's and the batch's per-device arrays, each padded to whole tiles."""
  shape = tuple(mesh_sizes[a] for a in sharding.MESH_AXES)
  mesh = jax.sharding.AbstractMesh(shape, sharding.MESH_AXES)
  plan = task.setup(total_steps=1)
  state = jax.eval_shape(lambda key: task.init_state(plan, key), jax.random.key(0))
  shardings = sharding.tree_shardings(
    state, task.state_axes(plan, state), task.config.sharding_rules, mesh
  )
  state_bytes = sum(
    tiled_bytes(s.shard_shape(x.shape))
    for x, s in zip(jax.tree.leaves(state), jax.tree.leaves(shardings))
  )
  rows = mesh_sizes['data'] * mesh_sizes['fsdp']
  batch_bytes = sum(tiled_bytes((x.shape[0] // rows, *x.shape[1:])) for x in batch.values())
  return state_bytes + batch_bytes


def test_smoke_step_compiles_for_v5e_2x2_with_memory_and_flops():
  spec = SMOKE_GPT
  report = compile_json('--config', spec, '--topology', 'v5e:2x2')
  assert (report['topology'], report['gcloud'], report['chips']) == ('v5e:2x2', 'v5litepod-4', 4)
  assert report['mesh'] == {'data': 4, 'fsdp': 1, 'tensor': 1}  # the config's data=-1
  m = report['memory']
  for key in ('arguments', 'outputs', 'aliased', 'temporaries', 'code', 'needed', 'margin'):
    assert m[key] > 0, key
  assert m['aliased'] >= m['params'] + m['opt_state']  # the donated state is updated in place
  assert m['needed'] == m['arguments'] + m['outputs'] - m['aliased'] + m['temporaries'] + m['code']
  assert m['usable'] == pytest.approx(0.95 * 16 * 2**30) and report['fits']

  # The state's bytes per chip are those `jdl params --mesh` computes for the same mesh; the
  # compiler's arguments hold them, the batch and the step's counters, in whole TPU tiles.
  task = get_task(config_lib.load(spec))
  exact = params.per_device_bytes(task, report['mesh'])
  assert (m['params'], m['opt_state']) == (exact['params'], exact['opt_state'])
  assert m['arguments'] >= exact['params'] + exact['opt_state']
  batch = task.batch_spec(task.config.batch_size)
  assert m['arguments'] <= padded_argument_bound(task, report['mesh'], batch)

  f = report['flops']
  assert f['per_step'] == pytest.approx(task.flops_per_step(task.setup(1), batch))
  assert f['xla_per_call'] > 0 and f['flagged'] == (abs(f['xla_ratio'] - 1) > 0.1)
  t = report['time']
  assert t['step_seconds_at_peak'] == pytest.approx(f['per_step'] / (4 * 197e12))
  assert t['step_seconds'] == pytest.approx(t['step_seconds_at_peak'] / 0.4)
  assert report['compile_seconds'] > 0
  text = compile_lib.format_report(report)
  assert 'fits: margin' in text and 'temporaries' in text and 'at MFU 40%' in text


def test_gpt3_175b_on_v5e_2x2_does_not_fit_and_says_by_how_much():
  # The recipe's tensor groups of 8 chips (v5p-2048) do not fit in 4: pure FSDP here.
  report = compile_json(
    '--config', 'experiments/gpt/gpt3_175b.py', '--topology', 'v5e:2x2', '--config.mesh.tensor=1'
  )
  assert report['mesh'] == {'data': 1, 'fsdp': 4, 'tensor': 1}
  assert not report['fits']
  m = report['memory']
  task = get_task(config_lib.load(str(ROOT / 'experiments/gpt/gpt3_175b.py')))
  exact = params.per_device_bytes(task, report['mesh'])
  assert (m['params'], m['opt_state']) == (exact['params'], exact['opt_state'])
  assert m['params'] > 160 * 2**30  # a quarter of 175B float32 parameters on each chip
  assert 'RESOURCE_EXHAUSTED' in m['compiler_message']
  assert m['needed_at_least'] > m['params'] + m['opt_state'] > m['usable']
  assert m['margin'] == pytest.approx(m['usable'] - m['needed_at_least'])
  cfg = task.gpt_config
  rows = task.config.batch_size  # GPT-3's 1,536 sequences of 2048
  assert report['flops']['per_step'] == 3 * cost.forward_flops_per_token(cfg) * rows * 2048
  text = compile_lib.format_report(report)
  assert 'DOES NOT FIT' in text and 'needed at least' in text


def test_sweep_of_a_two_network_task_compiles_each_choice_and_names_the_best():
  """The GAN (generator and discriminator, each with its own optimizer) has no remat: the
  sweep varies gradient accumulation."""
  result = compile_json('--config', SMOKE_GAN, '--topology', 'v5e:1x1', '--sweep')
  rows = {r['option']['value']: r for r in result['rows']}
  assert set(rows) == {1, 2} and all(r['fits'] for r in rows.values())
  assert [rows[k]['grad_accum_steps'] for k in (1, 2)] == [1, 2]
  for row in rows.values():
    assert row['memory']['temporaries'] > 0 and row['flops']['xla_per_call'] > 0
  assert rows[1]['flops']['per_step'] == rows[2]['flops']['per_step']
  assert result['best'] == {'mesh': [1, 1, 1], 'knob': 'grad_accum_steps', 'value': 1}
  text = compile_lib.format_sweep(result)
  assert 'best that fits: mesh data x fsdp x tensor = 1 x 1 x 1, grad_accum_steps=1' in text


def test_sweep_ranks_by_predicted_time_then_communication():
  option = lambda mesh, value: compile_lib.Option(mesh, 'model.remat', value)
  report = {'time': {'step_seconds': 3.0}}
  assert compile_lib.predicted_seconds(report, option((4, 1, 1), False)) == 3.0
  assert compile_lib.predicted_seconds(report, option((4, 1, 1), True)) == pytest.approx(4.0)

  def row(mesh, value, seconds, fits=True):
    o = dataclasses.asdict(option(mesh, value))
    return {'option': o, 'predicted_step_seconds': seconds, 'fits': fits}

  rows = [
    row((4, 1, 1), False, 1.0, fits=False),
    row((1, 2, 2), False, 1.0),
    row((1, 4, 1), False, 1.0),
    row((1, 4, 1), True, 1.33),
  ]
  assert compile_lib.best_option(rows)['mesh'] == (1, 4, 1)  # the fewest tensor-parallel ways
  assert compile_lib.best_option(rows[:1]) is None


def test_sweep_options_vary_the_mesh_and_remat_or_microbatches():
  gpt = config_lib.load(SMOKE_GPT)
  options = compile_lib.sweep_options(gpt, 4)
  assert {o.mesh for o in options} == {(4, 1, 1), (1, 4, 1), (1, 2, 2), (1, 1, 4)}
  assert {(o.knob, o.value) for o in options} == {('model.remat', False), ('model.remat', True)}
  googlenet = config_lib.load(str(ROOT / 'experiments/cnn/googlenet_imagenet.py:smoke'))
  googlenet.batch_size = 8
  options = compile_lib.sweep_options(googlenet, 8)
  # 4 rows per microbatch do not split over 8 devices of the batch axes
  assert [(o.mesh, o.value) for o in options if o.mesh[2] == 1] == [
    ((8, 1, 1), 1),
    ((1, 8, 1), 1),
  ]
  assert ((1, 4, 2), 2) in [(o.mesh, o.value) for o in options]


def test_topologies_by_gcloud_and_jax_names():
  # gcloud counts TensorCores on v4 and v5p (two per chip), chips on v5e and v6e.
  assert cost.topology('v4-32') == cost.topology('v4:2x2x4')
  assert cost.topology('v4-32').chips == 16
  assert cost.topology('v5litepod-16') == cost.topology('v5e:4x4')
  assert cost.topology('v5litepod-16').chips == 16
  assert cost.topology('v6e-16').jax_name == 'v6e:4x4'
  assert cost.topology('v5p-8').chips == 4 and cost.topology('v5p-8').megacore
  assert cost.topology('v5e:2x2').chip.hbm_bytes == 16 * 2**30
  for t in cost.known_topologies():
    assert cost.topology(t.gcloud_name) == cost.topology(t.jax_name) == t
  with pytest.raises(ConfigError, match=r'(?s)v5e:3x3.*v4-32 = v4:2x2x4'):
    cost.topology('v5e:3x3')


def test_unknown_topology_is_a_usage_error(capsys):
  code = cli.main(['compile', '--config', SMOKE_GPT, '--topology', 'v5e-16'])
  assert code == 2
  err = capsys.readouterr().err
  assert "unknown TPU topology 'v5e-16'" in err and 'v5litepod-16 = v5e:4x4' in err


def test_chips_of_device_kinds():
  assert cost.chip_for_device_kind('TPU v5 lite') == 'tpu-v5e'
  assert cost.chip_for_device_kind('TPU v5') == 'tpu-v5p'
  assert cost.chip_for_device_kind('TPU v4') == 'tpu-v4'
  assert cost.chip_for_device_kind('TPU v6 lite') == 'tpu-v6e'
  assert cost.chip_for_device_kind('NVIDIA H100 80GB HBM3') == 'h100'
  assert cost.chip_for_device_kind('cpu') is None


def test_traced_flops_count_loops_by_their_length_and_convolutions():
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)

  def scanned(w, x):
    return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=5)[0]

  assert cost.traced_flops(scanned, f32(16, 16), f32(4, 16)) == 5 * 2 * 4 * 16 * 16

  def conv(x, k):
    return jax.lax.conv_general_dilated(
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )

  assert cost.traced_flops(conv, f32(2, 8, 8, 3), f32(3, 3, 3, 4)) == 2 * (2 * 8 * 8 * 4) * 27

  def branches(p, x):
    return jax.lax.cond(p, lambda x: x @ x @ x, lambda x: x @ x, x)

  assert cost.traced_flops(branches, True, f32(8, 8)) == 2 * 2 * 8**3  # the costlier branch


@pytest.mark.parametrize(
  ('name', 'examples'),
  [
    ('cnn/googlenet_imagenet.py', 8),
    ('transformer/wmt14_base.py', 48),
    ('generative/cyclegan_horse2zebra.py', 8),
  ],
)
def test_remote_data_batch_spec_is_what_the_loader_makes(name, examples):
  """The shapes a task states for its remote data equal the default's, read from tfds's mock
  of the same data set through the task's own loader."""
  import tensorflow_datasets as tfds

  task = get_task(config_lib.load(str(ROOT / 'experiments' / name) + ':smoke'))
  with tfds.testing.mock_data(num_examples=examples):
    assert task.batch_spec(6) == Task.batch_spec(task, 6)


def test_lm_flops_are_6nd_with_attention():
  task = get_task(config_lib.load(str(ROOT / 'experiments/gpt/gpt2_small.py')))
  batch = task.batch_spec(4)
  assert batch == {'tokens': jax.ShapeDtypeStruct((4, 1025), jnp.int32)}
  flops = task.flops_per_step(None, batch)
  tokens = 4 * 1024
  n = cost.param_count(task.gpt_config)
  assert flops == 3 * cost.forward_flops_per_token(task.gpt_config, 1024) * tokens
  assert 1.0 < flops / (6 * n * tokens) < 1.4  # attention over 1024 positions and the logits
  assert task.batch_units(batch) == ('tokens', tokens)
