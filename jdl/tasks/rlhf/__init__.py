"""Learning from preferences (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022;
Rafailov et al. 2023; Ahmadian et al. 2024): the tasks and their pure objectives.

  losses.py        Bradley-Terry, DPO, the KL penalty, GAE, PPO's clipped losses, RLOO
  reward_model.py  task 'jdl.tasks.rlhf.reward_model': a ScalarGPT on preference pairs
  dpo.py           task 'jdl.tasks.rlhf.dpo': the policy against a frozen reference
  ppo.py           task 'jdl.tasks.rlhf.ppo': rollouts in the step, GAE, epochs of minibatches
  rloo.py          task 'jdl.tasks.rlhf.rloo': k samples per prompt, leave-one-out baseline
  common.py        pairs as byte batches, the starting runs' weights, the refusal of a missing run
  configs.py       the config fields every stage shares (experiments/rlhf/*.py)
"""
