"""The task contract's mechanisms on small tasks: several networks with their own optimizers and a
frozen one; training data made from the current state; a recurrent state carried between
batches (on the real KJV text); the wall-clock budget, evaluation hooks and the run API."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from jdl import config as config_lib
from jdl.config import ConfigError
from jdl.train import loop, optim
from jdl.train import task as base
from jdl.train.run import checkpoint_steps, load_run, read_metrics
from tests.conftest import ROOT
from tests.train.toy_tasks import task_config

ONE_DEVICE = {'data': 1, 'fsdp': 1, 'tensor': 1}


def bits(tree) -> list[bytes]:
  return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def steps(trainer: loop.Trainer, n: int):
  """(initial state, state after n steps, per-step metrics) through the trainer's compiled step."""
  state = trainer.init_state()
  start = jax.tree.map(np.asarray, state)
  batches, metrics = trainer.train_batches(), []
  for _ in range(n):
    state, m = trainer.run_steps(state, trainer.global_batch(next(batches)))
    metrics.append(jax.device_get(m))
  return start, state, metrics


def actor_critic(**optimizer):
  config = task_config('actor_critic_task')
  config.mesh.update(ONE_DEVICE)
  with config.optimizer.unlocked():
    for key, value in optimizer.items():
      config.optimizer[key] = value
  return loop.Trainer(config)


def test_frozen_network_has_no_optimizer_state_and_stays_bitwise_unchanged():
  trainer = actor_critic()
  start, end, _ = steps(trainer, 4)
  assert bits(end.params['reference']) == bits(start.params['reference'])
  assert np.signbit(np.asarray(end.params['reference']['bias'])).all()  # still -0.0
  frozen_state = end.opt_state.inner_states[base.FROZEN_LABEL]
  assert jax.tree.leaves(frozen_state) == []
  for network in ('actor', 'critic'):
    assert bits(end.params[network]) != bits(start.params[network])
    assert len(jax.tree.leaves(end.opt_state.inner_states[network])) > 1  # Adam's count, mu, nu


def test_each_network_moves_only_by_its_own_loss():
  """The actor's loss reads the critic's output and the reverse. A term of the critic's loss
  must move the critic only, even when it depends on the actor's parameters."""

  def one_step(extra_on_critic_loss=None):
    trainer = actor_critic(name='sgd', learning_rate=0.1)
    if extra_on_critic_loss is not None:
      original = trainer.task.losses

      def losses(model, batch, key, train):
        out, metrics = original(model, batch, key, train)
        return dict(out, critic=out['critic'] + extra_on_critic_loss(model)), metrics

      trainer.task.losses = losses  # before the first call, which traces the step
    return steps(trainer, 1)[1].params

  plain = one_step()
  actor_term = one_step(lambda model: 100.0 * jnp.sum(model.actor.kernel.get_value() ** 2))
  assert bits(actor_term) == bits(plain)  # the actor ignores the critic's loss
  critic_term = one_step(lambda model: 100.0 * jnp.sum(model.critic.kernel.get_value() ** 2))
  assert bits(critic_term['critic']) != bits(plain['critic'])  # the comparison can see a change
  assert bits(critic_term['actor']) == bits(plain['actor'])


def test_per_network_optimizer_overrides_the_shared_fields():
  trainer = actor_critic(critic=ml_collections.ConfigDict({'learning_rate': 0.0}))
  start, end, _ = steps(trainer, 3)
  assert bits(end.params['critic']) == bits(start.params['critic'])
  assert bits(end.params['actor']) != bits(start.params['actor'])
  with pytest.raises(ConfigError, match=r"optimizer.critic: unknown optimizer field\(s\) \['lr'\]"):
    actor_critic(critic=ml_collections.ConfigDict({'lr': 0.0}))


def test_warmup_and_clipping_apply_to_every_network():
  # Warm-up from 0: the first step moves nothing, the second moves both networks.
  trainer = actor_critic(warmup_steps=4)
  start, end, _ = steps(trainer, 1)
  assert bits(end.params) == bits(start.params)
  _, end, _ = steps(trainer, 2)
  for network in ('actor', 'critic'):
    assert bits(end.params[network]) != bits(start.params[network])
  # Clipping: SGD with rate 1 moves each network by at most its clipped gradient norm.
  trainer = actor_critic(name='sgd', learning_rate=1.0, grad_clip_norm=1e-3)
  start, end, metrics = steps(trainer, 1)
  for network in ('actor', 'critic'):
    moved = jax.tree.map(
      lambda a, b: np.asarray(a) - np.asarray(b), end.params[network], start.params[network]
    )
    step_norm = float(np.sqrt(sum(np.sum(d**2) for d in jax.tree.leaves(moved))))
    assert step_norm == pytest.approx(1e-3, rel=1e-3)  # exactly the clip norm, up to rounding
    assert metrics[0][f'{network}_grad_norm'][0] > 1e-3  # the clip was needed


def test_decay_fraction_holds_the_rate_then_decays():
  opt = config_lib.base_config().optimizer
  opt.update(learning_rate=2.0, schedule='linear', decay_fraction=0.5)
  rate = optim.schedule(opt, 100)
  assert [float(rate(s)) for s in (0, 49, 50, 75, 100)] == [2.0, 2.0, 2.0, 1.0, 0.0]
  opt.update(warmup_steps=10)
  rate = optim.schedule(opt, 110)
  assert [float(rate(s)) for s in (0, 5, 10, 59, 60, 110)] == [0.0, 1.0, 2.0, 2.0, 2.0, 0.0]


def test_networks_that_the_model_lacks_are_named():
  config = task_config('actor_critic_task')
  task_cls = type(base.get_task(config))

  class MoreNetworks(task_cls):
    NETWORKS = ('actor', 'critic', 'value')

  class FewerNetworks(task_cls):
    NETWORKS = ('actor',)

  with pytest.raises(ConfigError, match=r"NETWORKS names \['value'\]"):
    MoreNetworks(config).setup(1)
  with pytest.raises(ConfigError, match=r"parameters \['critic'\] belong to no network"):
    FewerNetworks(config).setup(1)


def test_batches_made_from_the_current_state_inside_the_step(tmp_path):
  config = task_config('self_targets_task')
  config.mesh.update(ONE_DEVICE)
  trainer = loop.Trainer(config)
  start, _, metrics = steps(trainer, 1)
  # The first step's targets, recomputed on the host from the initial state and the step's key.
  batch = next(trainer.train_batches())
  step_key = jax.random.fold_in(jax.random.wrap_key_data(start.rng), 0)
  data_key = jax.random.fold_in(step_key, base.DATA_KEY)
  model = trainer.plan.merge(start.params, start.model_state)
  targets = 0.5 * model(batch['x']) + jax.random.normal(data_key, batch['y'].shape)
  np.testing.assert_allclose(metrics[0]['target_mean'][0], targets.mean(), rtol=1e-5)

  # Checkpointed and resumed like any other run: 3 + 3 steps end where 6 straight steps do.
  straight = loop.train_and_evaluate(config, tmp_path / 'straight')
  config.num_train_steps = 3
  loop.train_and_evaluate(config, tmp_path / 'resumed')
  config.num_train_steps = 6
  resumed = loop.train_and_evaluate(config, tmp_path / 'resumed')
  assert len(resumed['history']) == 3
  assert bits(resumed['state']) == bits(straight['state'])


# ---- a recurrent state carried between batches (truncated BPTT over the KJV's books) ----------

CHAR = str(ROOT / 'experiments/rnn/char_bible.py')


def carried_config():
  config = config_lib.load(CHAR + ':smoke,carry')
  config.mesh.update(ONE_DEVICE)
  config.steps_per_call = 1
  config.optimizer.learning_rate = 0.0  # the parameters stay put: carries can be recomputed
  return config


def test_carried_state_continues_each_stream_and_restarts_at_a_book():
  config = carried_config()
  data = loop.Trainer(config).data
  assert not data.shuffle and {'tokens', 'reset', 'mask'} <= set(data.train)
  assert data.train['reset'][:16].all()  # every stream starts with a book
  # Mark rows 0-7 of the second batch as the start of a new document.
  train = dict(data.train, reset=data.train['reset'].copy())
  train['reset'][16:24] = 1.0
  trainer = loop.Trainer(config, data=dataclasses.replace(data, train=train))
  _, state, _ = steps(trainer, 2)
  first, second = train['tokens'][:16, :-1], train['tokens'][16:32, :-1]
  model = trainer.plan.merge(state.params, state.model_state)
  _, whole = model(np.concatenate([first, second], axis=1))  # one pass from the zero state
  _, alone = model(second)  # the second window from the zero state
  reset = train['reset'][16:32].astype(bool)
  assert reset.any() and not reset.all()
  for got, w, a in zip(
    jax.tree.leaves(state.carry), jax.tree.leaves(whole), jax.tree.leaves(alone)
  ):
    expected = np.where(reset[:, None], np.asarray(a), np.asarray(w))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=2e-6)


def test_carried_state_is_checkpointed_and_resumes_bitwise(tmp_path):
  config = config_lib.load(CHAR + ':smoke,carry')
  config.update(num_train_steps=4, steps_per_call=2, log_every_steps=2, checkpoint_every_steps=2)
  straight = loop.train_and_evaluate(config, tmp_path / 'straight')
  config.num_train_steps = 2
  loop.train_and_evaluate(config, tmp_path / 'resumed')
  config.num_train_steps = 4
  resumed = loop.train_and_evaluate(config, tmp_path / 'resumed')
  assert straight['state'].carry is not None
  assert bits(resumed['state']) == bits(straight['state'])


# ---- wall-clock budget, evaluation hooks, the run API --------------------------------------------


def test_max_seconds_stops_evaluates_and_saves_then_the_run_continues(tmp_path):
  config = task_config('self_targets_task', steps=12)
  config.max_seconds = 1e-6  # spent by the first call, compilation included
  calls = []

  def hook(trainer, step, state):
    calls.append(step)
    return {'hook_step': float(step)}

  first = loop.Trainer(config).fit(tmp_path, eval_hooks=[hook])
  assert first['stopped'] == 'max_seconds' and first['step'] == 1
  record = read_metrics(tmp_path)[-1]
  assert record['step'] == 1 and record['hook_step'] == 1.0 and calls == [1]
  assert 'validation_loss' in record and record['seconds'] > 0
  assert load_run(tmp_path).step == 1  # saved where it stopped

  config.max_seconds = 0.0
  rest = loop.Trainer(config).fit(tmp_path, eval_hooks=[hook])
  assert rest['stopped'] == 'done' and rest['step'] == 12 and calls == [1, 12]


def test_a_task_adds_its_own_evaluation_hooks_after_the_callers(tmp_path, monkeypatch):
  config = task_config('self_targets_task', steps=4)
  order = []

  def caller_hook(trainer, step, state):
    order.append('caller')
    return {'caller_step': float(step)}

  def task_hook(trainer, step, state):
    order.append('task')
    model = trainer.model(state)
    return {'task_params': float(sum(x.size for x in jax.tree.leaves(nnx.state(model))))}

  monkeypatch.setattr(base.Task, 'eval_hooks', lambda self: (task_hook,))
  trainer = loop.Trainer(config)
  trainer.fit(tmp_path, eval_hooks=[caller_hook])
  record = read_metrics(tmp_path)[-1]
  params = sum(x.size for x in jax.tree.leaves(nnx.state(trainer.model(trainer.init_state()))))
  assert record['caller_step'] == 4.0 and record['task_params'] == params
  assert order[:2] == ['caller', 'task'] and len(order) % 2 == 0


def test_load_run_gives_the_trained_model_at_any_saved_step(tmp_path):
  config = task_config('self_targets_task')
  result = loop.train_and_evaluate(config, tmp_path)
  run = load_run(tmp_path)
  assert run.step == 6 and run.config.task == config.task
  assert bits(run.state) == bits(result['state'])
  kernel = np.asarray(result['state'].params['kernel'])
  x = np.ones((2, 4), np.float32)
  expected = kernel.sum() + np.asarray(run.state.params['bias'])[0]
  np.testing.assert_allclose(np.asarray(run.model(x))[:, 0], [expected] * 2, rtol=1e-6)
  assert load_run(tmp_path, step=3).step == 3 and checkpoint_steps(tmp_path) == [3, 6]
  with pytest.raises(FileNotFoundError, match=r'no checkpoint at step 4 .*there are: \[3, 6\]'):
    load_run(tmp_path, step=4)
  with pytest.raises(FileNotFoundError, match='not a run folder'):
    load_run(tmp_path / 'nothing')
  assert [r['step'] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]
