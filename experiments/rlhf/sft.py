"""The supervised starting policy of learning from preferences (Ziegler et al. 2019, section 3):
a byte-level GPT-2-style language model (pre-LN, 4 layers, 4 heads, d 256, context 128) on the
1,000 training reviews of Pang & Lee's polarity data (jdl.data.reviews; the 200 validation and
300 test reviews are never trained on: their openings are the held-out prompts).

Every later stage starts from this run: the preference pairs are pairs of its continuations,
the reward model and PPO's value function start from its weights, and it is the frozen
reference of the KL penalty and of DPO. A prompt is 64 bytes and a continuation 48, so the
context of 128 holds both.

Launch:
  jdl train --config experiments/rlhf/sft.py --workdir runs/rlhf/sft
  jdl sample --workdir runs/rlhf/sft --prompt "this movie is " --temperature 1.0

`:smoke` trains a tiny model a few steps (the test).
"""

from jdl.gpt.configs import gpt_config


def get_config(arg: str | None = None):
  smoke = arg == 'smoke'
  if arg not in (None, 'smoke'):
    raise ValueError(f'sft: unknown variant {arg!r} (smoke)')
  c = gpt_config(n_layer=4, n_head=4, d_model=256, context=128, vocab_size=256)
  c.data.name = 'reviews'
  c.data.kwargs = {'corpora': ('reviews',), 'context': 128, 'eval_rows': 512}
  c.sample_prompts = ('this movie is ', 'the plot of the film ')
  c.batch_size = 64
  # About 3 passes over the 29,952 non-overlapping 129-byte windows of the training reviews:
  # 1.468 nats per byte on the test reviews (2.12 bits), 2,006 s on the idle machine (round 3).
  c.num_train_steps = 1_400
  c.steps_per_call = 10
  c.log_every_steps = 50
  c.eval_every_steps = 200
  c.checkpoint_every_steps = 200
  c.eval_batch_size = 128
  c.max_seconds = 40 * 60  # a run stopped so ends resumable
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 80
  c.optimizer.kwargs.weight_decay = 0.1
  c.model.dropout = 0.1  # 3.9 MB of text: passes over it overfit a 3M-parameter model without it
  if smoke:
    c.model.update(n_layer=2, n_head=2, d_model=32, context=32, dropout=0.0)
    c.data.kwargs = {'corpora': ('reviews',), 'context': 32, 'eval_rows': 16}
    c.batch_size = 8
    c.eval_batch_size = 16
    c.num_train_steps = 4
    c.steps_per_call = 1
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = -1
    c.max_seconds = 0.0
    c.progress_bar = 'never'
    c.sample_prompts = ('this movie is ',)
  return c
