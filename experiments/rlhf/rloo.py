"""RLOO (REINFORCE with the leave-one-out baseline; Ahmadian et al. 2024) on PPO's rollout
machinery: 16 prompts per step, each continued k = 4 times by the current policy (64 rollouts,
as PPO's batch), reward = the reward model's score - kl_coef x the continuation's summed
log pi - log pi_ref, advantage = reward - the mean of the prompt's other 3 rewards; one
REINFORCE update per batch (jdl/tasks/rlhf/rloo.py). No value function.

Launch (after the SFT run, `jdl rlhf pairs` and the reward model):
  nice -n 5 jdl train --config experiments/rlhf/rloo.py --workdir runs/rlhf/rloo
  jdl rlhf eval --workdir runs/rlhf/rloo

`:smoke` is the tiny shape of sft.py:smoke on runs/rlhf/smoke/{sft,rm}.
"""

import importlib.util
import pathlib


def _ppo():
  """experiments/rlhf/ppo.py, the config this one varies."""
  path = pathlib.Path(__file__).with_name('ppo.py')
  spec = importlib.util.spec_from_file_location('jdl_config_rlhf_ppo', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(arg: str | None = None):
  smoke = arg == 'smoke'
  if arg not in (None, 'smoke'):
    raise ValueError(f'rloo: unknown variant {arg!r} (smoke)')
  c = _ppo().ppo_config('rloo', smoke)
  c.rloo = dict(k=4, whiten=False)
  c.ppo.kl_coef = 0.05  # as RLOO ran in round 1 (PPO's is 0.02 since round 3: docs/rlhf.md)
  c.ppo.epochs = 1  # on-policy: REINFORCE, the ratio is 1 at the update
  c.ppo.minibatches = 1
  c.batch_size = 16  # prompts; x k = 64 rollouts per step
  c.eval_batch_size = 16
  c.optimizer.learning_rate = 5e-5
  c.num_train_steps = 3 if smoke else 150  # about 6 s per step
  c.max_seconds = 0.0 if smoke else 16 * 60
  if smoke:
    c.rloo.k = 2
    c.batch_size = 2
    c.eval_batch_size = 2
  return c
