"""PPO with a KL penalty against the supervised policy (Ziegler et al. 2019; Stiennon et al. 2020)
on the review openings of the Pang & Lee training reviews: the policy (runs/rlhf/sft) continues
each 61-byte prompt by 48 bytes, the reward model (runs/rlhf/rm_mean) scores the continuation, the
per-byte KL penalty keeps the policy near the SFT policy, a value function (started from the
reward model) and GAE give the advantages, and each batch of 64 rollouts trains 2 epochs of
2 minibatches (jdl/tasks/rlhf/ppo.py says how a loop step holds them). The labeller's score of
the rollouts is logged beside the reward model's (labeller_p_positive).

Launch (after the SFT run, `jdl rlhf pairs` and the reward model):
  jdl train --config experiments/rlhf/ppo.py --workdir runs/rlhf/ppo
  jdl rlhf eval --workdir runs/rlhf/ppo
  jdl rlhf eval --workdir runs/rlhf/ppo --step S   # each checkpoint: the over-optimisation figure

`:smoke` is the tiny shape of sft.py:smoke on runs/rlhf/smoke/{sft,rm}.
"""

from jdl.tasks.rlhf.configs import stage_config


def get_config(arg: str | None = None):
  smoke = arg == 'smoke'
  if arg not in (None, 'smoke'):
    raise ValueError(f'ppo: unknown variant {arg!r} (smoke)')
  return ppo_config('ppo', smoke)


def ppo_config(task: str, smoke: bool):
  c = stage_config(task, smoke)
  c.data.train_prompts = 0  # 0: one opening per training review (1,000)
  c.data.eval_prompts = 64
  # The labeller's score of every rollout is logged (labeller_p_positive; never trained on):
  # the over-optimisation picture puts it beside the reward model's.
  c.labeller_run = ''  # runs/rlhf/labeller_bow is a bag of words, not a ScalarGPT: not in the model
  # (labeller_model: the labeller's shape, by default the policy's: experiments/rlhf/labeller.py
  # starts from the SFT trunk.)
  # 2 epochs of 2 minibatches: about 12 s per batch of 64 rollouts on the 2 shared cores (4 x 4
  # took 22 s: too slow for the 20-minute budget).
  c.ppo = dict(
    epochs=2,
    minibatches=2,
    clip_ratio=0.2,
    clip_value=0.2,
    gamma=1.0,
    lam=0.95,
    kl_coef=0.02,  # round 3; 0.05 held round 1's policy within 1 nat of the SFT
    kl_target=0.0,  # > 0: the adaptive coefficient toward this KL per continuation (nats)
    kl_horizon=10_000.0,
    value_init='rm',  # 'rm' (Ziegler et al.) or 'sft' (the SFT trunk, a fresh head)
    # What the reward model reads: 'full' (prompt + continuation, as it was trained) or
    # 'continuation' (alone: the labeller's own reading, to train on the gold score itself).
    reward_input='full' if smoke else 'continuation',  # as experiments/rlhf/reward_model.py
    reward_pooling='last' if smoke else 'mean',  # as experiments/rlhf/reward_model.py
  )
  c.batch_size = 64  # prompts per step, one rollout each
  c.eval_batch_size = 64
  c.num_train_steps = 120
  c.max_seconds = 30 * 60
  c.log_every_steps = 1
  c.eval_every_steps = 10
  c.checkpoint_every_steps = 10
  c.keep_checkpoints = 12  # every one is scored for the over-optimisation figure
  c.optimizer.learning_rate = 1e-4
  c.optimizer.schedule = 'constant'
  if smoke:
    c.data.train_prompts = 16
    c.data.eval_prompts = 4
    c.ppo.epochs = 2
    c.ppo.minibatches = 2
    c.batch_size = 4
    c.eval_batch_size = 4
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = -1
    c.checkpoint_every_steps = -1
  return c
