"""Configs for the small tasks that exercise the task contract's mechanisms
(tests/train/actor_critic_task.py, tests/train/self_targets_task.py): `config.task` names them
by their dotted module path, as a research project's own tasks outside jdl would be named."""

from jdl.config import base_config


def task_config(module: str, steps: int = 6):
  c = base_config()
  c.task = f'tests.train.{module}'
  c.data.name = 'synthetic'
  c.data.kwargs = {'rows': 64, 'features': 4, 'eval_rows': 32}
  c.batch_size = 16
  c.eval_batch_size = 32
  c.num_train_steps = steps
  c.log_every_steps = 1
  c.eval_every_steps = -1
  c.checkpoint_every_steps = 3
  c.progress_bar = 'never'
  c.async_checkpointing = False
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 0.05
  return c
