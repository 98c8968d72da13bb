"""GAN: each player moves by its own loss only; a smoke run; a resumed run ends with the same
parameters, optimizer states and batch statistics as an uninterrupted one."""

import functools
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdl import config as config_lib
from jdl.data import pipeline
from jdl.tasks import gan
from jdl.train import loop
from tests.conftest import ROOT

CONFIG = str(ROOT / 'experiments/generative/gan_fmnist.py')


def squared_norm(module) -> jax.Array:
  return sum(jnp.sum(x**2) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def with_extra_loss(player: str, penalised: str):
  """The GAN task with 100 |params of `penalised`|^2 added to `player`'s loss."""

  class Task(gan.Task):
    def losses(self, model, batch, key, train):
      losses, metrics = super().losses(model, batch, key, train)
      extra = 100.0 * squared_norm(getattr(model, penalised))
      return dict(losses, **{player: losses[player] + extra}), metrics

  return Task


def one_step(task_cls, config, batch):
  task = task_cls(config)
  plan = task.setup(10)
  state = task.init_state(plan, jax.random.key(0))
  new_state, _ = jax.jit(functools.partial(task.train_step, plan))(state, batch, jax.random.key(1))
  return state, new_state


def test_each_network_is_updated_only_by_its_own_loss():
  config = config_lib.load(CONFIG + ':smoke')
  data = gan.Task(config).load_data()
  batch = pipeline.as_source(data.train).batch(np.arange(16))
  before, plain = one_step(gan.Task, config, batch)
  same = lambda a, b: all(
    np.allclose(x, y, rtol=0, atol=1e-9) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )
  for player in ('generator', 'discriminator'):  # the step moves both players
    assert not same(before.params[player], plain.params[player])

  # A discriminator loss that depends on G's parameters must not move G ...
  _, d_touches_g = one_step(with_extra_loss('discriminator', 'generator'), config, batch)
  assert same(d_touches_g.params['generator'], plain.params['generator'])
  # ... and a generator loss that depends on D's parameters must not move D,
  _, g_touches_d = one_step(with_extra_loss('generator', 'discriminator'), config, batch)
  assert same(g_touches_d.params['discriminator'], plain.params['discriminator'])
  # while the same term on a player's own loss does move it (the comparison can see it).
  _, g_touches_g = one_step(with_extra_loss('generator', 'generator'), config, batch)
  assert not same(g_touches_g.params['generator'], plain.params['generator'])
  assert same(g_touches_g.params['discriminator'], plain.params['discriminator'])


def test_one_state_holds_both_players_and_both_optimizers():
  task = gan.Task(config_lib.load(CONFIG + ':smoke'))
  plan = task.setup(10)
  state = jax.eval_shape(lambda key: task.init_state(plan, key), jax.random.key(0))
  assert set(state.params) == set(state.opt_state.inner_states) == {'generator', 'discriminator'}
  # Every Adam moment of a player follows that player's parameter axes.
  axes = task.state_axes(plan, state)
  is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)
  for player in ('generator', 'discriminator'):
    adam = state.opt_state.inner_states[player].inner_state[0]
    adam_axes = axes.opt_state.inner_states[player].inner_state[0]
    moment = jax.tree.leaves(adam.mu[player])
    assert moment and len(moment) == len(jax.tree.leaves(state.params[player]))
    assert jax.tree.leaves(adam_axes.mu[player], is_leaf=is_spec) == jax.tree.leaves(
      plan.param_axes[player], is_leaf=is_spec
    )


def test_smoke_run_and_resume_give_the_same_state(tmp_path):
  config = config_lib.load(CONFIG + ':smoke')
  straight = loop.train_and_evaluate(config, tmp_path / 'straight')
  final = straight['final']
  assert straight['step'] == 8 and np.isfinite(final['test_d_loss'])
  assert 0 < final['d_real'] < 1 and 0 < final['d_fake'] < 1
  assert (tmp_path / 'straight/samples.png').is_file()

  # An interrupted run: the same workdir as it was at step 4, then resumed to the end.
  shutil.copytree(tmp_path / 'straight', tmp_path / 'resumed')
  shutil.rmtree(tmp_path / 'resumed/checkpoints/8')
  resumed = loop.train_and_evaluate(config, tmp_path / 'resumed')
  assert resumed['step'] == 8 and len(resumed['history']) == 1  # only steps 5-8 ran
  a, b = straight['state'], resumed['state']
  for part in ('params', 'opt_state', 'model_state'):  # batch norm's statistics included
    leaves_a, leaves_b = jax.tree.leaves(getattr(a, part)), jax.tree.leaves(getattr(b, part))
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
      assert np.array_equal(np.asarray(x), np.asarray(y))  # bitwise
