"""jdl's RLOO against trl 1.16's RLOOTrainer at equal rollouts (`python -m jdl.rlhf.peer_trl rloo`).

Both sides start from the same exported SFT policy (jdl.models.hf_gpt2.save of the policy in
jdl's initial state), continue the same prompts in the same order k times each, score the
continuations with the same reward-model run and train for the same number of steps. trl runs
unmodified (`Trainer.train()`) in its own process (jdl.rlhf.peer_trl.peer_env); jdl runs its
RLOO task (jdl/tasks/rlhf/rloo.py, experiments/rlhf/rloo.py) through the loop's compiled step
(`Trainer.run_steps`, as `jdl train` runs it). Rollouts are random on both sides (torch's and
JAX's generators), so the curves are compared statistically over seeds.

Pinned (`RlooPinned`), to jdl's convention unless said:

  prompts       the last prompt_bytes - 3 bytes of review openings (jdl's rollout prompts, one
                KV-cache position per batch), only openings whose tail is whole UTF-8 (trl's
                prompts are text); step s continues prompts [s P, (s + 1) P), each k times in a
                row (trl: shuffle_dataset=False, its RepeatSampler; jdl: `jnp.repeat`).
  tokens        peer_trl's byte tokenizer (id = byte, pad byte 0) with its eos moved to an
                added token, id 256, outside the model's 256-byte vocabulary: trl's generation
                never stops and never masks, and both sides write exactly completion_bytes
                bytes (byte 0, which trl would treat as the end, is an ordinary byte in jdl).
  sampling      temperature 1, top_k 0, top_p 1, no repetition penalty, no min_p.
  reward        the reward-model run (a jdl ScalarGPT) scores the bytes it was trained to read
                (its data.reward_input: the continuation alone, or prompt + continuation), at
                the last byte; trl gets it as a reward function on `completion_ids` (the same
                JAX model, loaded from the run: `reward_function`), so both sides score the same
                bytes the same way.
  KL            both: R_i = score_i - beta sum_t (log pi - log pi_ref)(y_i,t), the first-order
                log-ratio summed over the continuation, against the frozen SFT policy; beta =
                jdl's ppo.kl_coef, fixed (kl_target 0).
  advantage     leave-one-out, not whitened (trl normalize_advantages=False, jdl rloo.whiten
                False); one update per batch (num_iterations 1 / ppo.epochs 1, 1 minibatch).
  loss          trl: -mean_i A_i exp(sum_t log pi - old) (per sequence); jdl: -mean_{i,t} A_i
                ratio_t (per token): at the update trl's gradient is completion_bytes x jdl's.
                Adam is invariant to that constant (up to eps); clipping is not, so trl's
                max_grad_norm = completion_bytes x jdl's grad_clip_norm (0: off on both).
  optimiser     AdamW, same lr, betas, eps, weight decay 0, constant rate, no warm-up.
  numerics      float32, no dropout, eager attention, no gradient checkpointing; seed.

Recorded per step on both sides: rm_score (mean score of the batch's continuations), kl (mean
summed log-ratio per continuation, nats), reward (rm_score - beta kl). trl logs its KL as a
per-token mean and averages its logs, so `_recording` reads its metrics as they are made.

  python -m jdl.rlhf.peer_trl rloo [--sft runs/rlhf/sft] [--rm runs/rlhf/rm] [--steps 30]
      [--prompts 16] [--k 4] [--lr 5e-5] [--beta 0.05] [--clip 0] [--seeds 0 1 2] [--last 10]
      [--out runs/rlhf/peer_trl/rloo.json]
  python -m jdl.rlhf.peer_trl rloo-trl JOBS.json OUT.json      (the trl side, its own process)
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import numpy as np

from jdl.rlhf import peer_trl

EOS_ID = 256  # trl's end token here: an added id outside the policy's 256-byte vocabulary
OUT = 'runs/rlhf/peer_trl/rloo.json'
COMMAND = (  # the measured comparison (docs/rlhf.md)
  'python -m jdl.rlhf.peer_trl rloo --steps 12 --prompts 8 --lr 2e-4 --seeds 0 1 2 --last 4 '
  '--threads 1 --out ' + OUT
)


@dataclasses.dataclass(frozen=True)
class RlooPinned:
  """The settings both sides train with (module docstring)."""

  steps: int = 30
  prompts: int = 16  # per step; x k continuations
  k: int = 4
  prompt_bytes: int = 64  # review openings; rollouts read their last prompt_bytes - 3
  completion_bytes: int = 48
  learning_rate: float = 5e-5
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  grad_clip_norm: float = 0.0  # jdl's; trl's is completion_bytes x this (0: off)
  beta: float = 0.05
  seed: int = 0

  @property
  def width(self) -> int:
    return self.prompt_bytes - 3  # jdl.tasks.rlhf.ppo.Task.prompt_width

  def trl_args(self, output_dir: str) -> dict:
    """The RLOOConfig fields."""
    return dict(
      output_dir=output_dir,
      max_steps=self.steps,
      per_device_train_batch_size=self.prompts * self.k,  # trl counts continuations
      gradient_accumulation_steps=1,
      num_generations=self.k,
      num_iterations=1,
      learning_rate=self.learning_rate,
      lr_scheduler_type='constant',
      warmup_steps=0,
      weight_decay=0.0,
      adam_beta1=self.b1,
      adam_beta2=self.b2,
      adam_epsilon=self.eps,
      max_grad_norm=self.completion_bytes * self.grad_clip_norm,
      optim='adamw_torch',
      shuffle_dataset=False,
      max_completion_length=self.completion_bytes,
      temperature=1.0,
      top_k=0,
      top_p=1.0,
      repetition_penalty=1.0,
      beta=self.beta,
      normalize_advantages=False,
      mask_truncated_completions=False,
      epsilon=0.2,
      **peer_trl.quiet_float32_args(self.seed),
    )


def rollout_prompts(n: int, prompt_bytes: int) -> list[str]:
  """n rollout prompts as text: the last prompt_bytes - 3 bytes of training-review openings
  (jdl's `prompt_rows`), keeping only openings whose tail is whole UTF-8."""
  from jdl.data import review_prompts

  width, out = prompt_bytes - 3, []
  for text in review_prompts.prompts('train', n=None, length=prompt_bytes):
    raw = text.encode()
    if len(raw) >= width:
      try:
        out.append(raw[-width:].decode('utf-8'))
      except UnicodeDecodeError:
        continue
    if len(out) == n:
      return out
  raise ValueError(f'{n} rollout prompts asked for, the training openings give {len(out)}')


def reward_input(rm_run: str) -> str:
  """What the reward-model run reads: 'full' (prompt + continuation) or 'continuation'."""
  from jdl.train.run import load_config

  return load_config(rm_run).data.get('reward_input', 'full')


def reward_pooling(rm_run: str) -> str:
  """How the reward-model run turns its head's scores into one: 'last' or 'mean'."""
  from jdl.train.run import load_config

  return load_config(rm_run).data.get('reward_pooling', 'last')


def score(reward_model, prompt_ids, completion_ids, reads: str, pooling='last') -> np.ndarray:
  """A ScalarGPT's score [B] of each continuation (lists of byte ids), reading prompt +
  continuation ('full') or the continuation alone and pooling as the run was trained, as
  jdl's rollouts do."""
  from jdl.tasks.rlhf import common

  rows = [list(p if reads == 'full' else []) + list(c) for p, c in zip(prompt_ids, completion_ids)]
  tokens = np.zeros((len(rows), max(map(len, rows))), np.int32)
  for i, row in enumerate(rows):
    tokens[i, : len(row)] = row
  lengths = np.asarray([len(r) for r in rows], np.int32)
  scores = common.sequence_scores(reward_model, tokens, lengths, pooling)
  return np.asarray(scores, np.float64)


def reward_function(rm_run: str):
  """trl's reward function: the run's reward model on the continuation's bytes
  (`completion_ids`, not the decoded text); each call's scores are kept in `.calls`."""
  from jdl.train.run import load_run

  model, reads, pooling = load_run(rm_run).model, reward_input(rm_run), reward_pooling(rm_run)

  def rm_score(prompts, completion_ids, **unused):
    scores = score(model, [p.encode() for p in prompts], completion_ids, reads, pooling)
    rm_score.calls.append(scores.tolist())
    return scores.tolist()

  rm_score.calls = []
  return rm_score


# ---- the trl side ------------------------------------------------------------------------------


def tokenizer():
  """peer_trl's byte tokenizer with eos an added id (256) the policy can never sample."""
  tok = peer_trl.byte_tokenizer()
  tok.add_special_tokens({'eos_token': '<|end|>'})
  assert tok.eos_token_id == EOS_ID and tok.pad_token_id == 0
  return tok


def _recording(trainer_class, keep: bool):
  """`trainer_class` that records each training batch's rm_score, kl (summed per continuation)
  and reward as made (trl logs a per-token KL, averaged over the logging window); with `keep`
  also the prompts, continuation ids, scores, per-sequence KL and advantages."""
  import torch

  class Recording(trainer_class):
    def _generate_and_score_completions(self, inputs):
      out = super()._generate_and_score_completions(inputs)
      if not self.model.training:
        return out
      metrics, rec = self._metrics['train'], self.record
      mask = out['completion_mask']
      rows = mask.shape[0]
      kl = metrics['kl'][-1] * float(mask.sum()) / rows  # per-token mean x tokens / rows
      rec['rm_score'].append(metrics['reward'][-1])
      rec['kl'].append(kl)
      rec['reward'].append(metrics['reward'][-1] - self.beta * kl)
      rec['lengths'].append(mask.sum(1).tolist())
      if keep:
        ids = torch.cat([out['prompt_ids'], out['completion_ids']], 1)
        attention = torch.cat([out['prompt_mask'], mask], 1)
        with torch.no_grad():  # trl's KL of each sequence, as trl computes it (not returned)
          old, ref = (
            self._get_per_token_logps_and_entropies(net, ids, attention, mask.shape[1], rows)[0]
            for net in (self.model, self.ref_model)
          )
        rec['prompts'].append([x['prompt'] for x in inputs])
        rec['completion_ids'].append(out['completion_ids'].tolist())
        rec['scores'].append(self.reward_funcs[0].calls[-1])
        rec['seq_kl'].append(((old - ref) * mask).sum(-1).tolist())
        rec['advantages'].append(out['advantages'].tolist())
      return out

  return Recording


def trl_train(job: dict) -> dict:
  """trl's RLOOTrainer on the job's exported policy ({folder, rm_run, prompts, pinned, keep}),
  in this process: the record of each step."""
  import torch
  import transformers
  import trl
  from trl import RLOOConfig, RLOOTrainer

  pinned = RlooPinned(**job['pinned'])
  peer_trl._torch_setup(pinned.seed, deterministic=True)
  model = transformers.GPT2LMHeadModel.from_pretrained(
    job['folder'], attn_implementation='eager', dtype=torch.float32
  )
  fields = ('rm_score', 'kl', 'reward', 'lengths', 'prompts', 'completion_ids', 'scores')
  record = {k: [] for k in (*fields, 'seq_kl', 'advantages')}
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as out:
    import datasets

    trainer = _recording(RLOOTrainer, job.get('keep', False))(
      model=model,
      reward_funcs=reward_function(job['rm_run']),
      args=RLOOConfig(**pinned.trl_args(out)),
      train_dataset=datasets.Dataset.from_dict({'prompt': job['prompts']}),
      processing_class=tokenizer(),
    )
    trainer.record = record
    trainer.train()
  record = {k: v for k, v in record.items() if v}
  return dict(record, trl=trl.__version__, seconds=time.perf_counter() - start, seed=pinned.seed)


def run_trl(jobs: list[dict], threads: int = 2) -> list[dict]:
  """`trl_train` of each job in one process of its own (peer_trl.peer_env, `threads` threads)."""
  from jdl.bench import common

  with tempfile.TemporaryDirectory() as tmp:
    spec = [dict(job, pinned=dataclasses.asdict(job['pinned'])) for job in jobs]
    with open(os.path.join(tmp, 'jobs.json'), 'w') as f:
      json.dump(spec, f)
    out = os.path.join(tmp, 'out.json')
    args = ['rloo-trl', os.path.join(tmp, 'jobs.json'), out]
    common.run_peer('jdl.rlhf.peer_trl', args, env=peer_trl.peer_env(threads), timeout=7200)
    with open(out) as f:
      return json.load(f)


# ---- the jdl side ------------------------------------------------------------------------------


def jdl_config(sft_run: str, rm_run: str, pinned: RlooPinned):
  """experiments/rlhf/rloo.py with the pinned settings, the SFT run's shape (dropout 0), the
  reward model's reading; one device, one step per call."""
  import ml_collections

  from jdl import config as config_lib
  from jdl.tasks.rlhf import common

  config = config_lib.load('experiments/rlhf/rloo.py')
  saved_model, _ = common.run_params(sft_run)
  with config.unlocked():
    config.model.update({k: saved_model[k] for k in common.SHAPE_FIELDS}, dropout=0.0)
    config.update(sft_run=sft_run, rm_run=rm_run, labeller_run='', dtype='float32')
    config.data.update(prompt_bytes=pinned.prompt_bytes, completion_bytes=pinned.completion_bytes)
    config.ppo.update(
      kl_coef=pinned.beta,
      kl_target=0.0,
      epochs=1,
      minibatches=1,
      reward_input=reward_input(rm_run),
      reward_pooling=reward_pooling(rm_run),
    )
    config.rloo.update(k=pinned.k, whiten=False)
    config.optimizer.update(
      name='adamw',
      learning_rate=pinned.learning_rate,
      warmup_steps=0,
      schedule='constant',
      grad_clip_norm=pinned.grad_clip_norm,
      weight_decay=0.0,
    )
    config.optimizer.kwargs = ml_collections.ConfigDict(
      dict(b1=pinned.b1, b2=pinned.b2, eps=pinned.eps, weight_decay=0.0)
    )
    config.update(batch_size=pinned.prompts, num_train_steps=pinned.steps, seed=pinned.seed)
    config.update(grad_accum_steps=1, steps_per_call=1, max_seconds=0.0)
    config.mesh.update(data=1, fsdp=1, tensor=1)
  return config


def jdl_train(sft_run: str, rm_run: str, prompts: list[str], pinned: RlooPinned):
  """(the record of each step of jdl's RLOO task, the task's model at step 0) with step s
  continuing prompts [s P, (s + 1) P)."""
  import jax

  from jdl.data.splits import Splits
  from jdl.tasks.rlhf import common
  from jdl.train.loop import Trainer

  config = jdl_config(sft_run, rm_run, pinned)
  rows = common.prompt_rows(prompts, pinned.width)
  trainer = Trainer(
    config, data=Splits({'prompt': rows}, {}, shuffle=False), total_steps=pinned.steps
  )
  trainer.task.check_runs()
  state = trainer.init_state()
  first = trainer.model(jax.device_get(state))
  record = {k: [] for k in ('rm_score', 'kl', 'reward')}
  start = time.perf_counter()
  n, b = len(prompts), pinned.prompts
  for s in range(pinned.steps):
    index = [(s * b + i) % n for i in range(b)]
    state, metrics = trainer.run_steps(state, trainer.global_batch({'prompt': rows[index]}))
    metrics = jax.device_get(metrics)
    for k in record:
      record[k].append(float(metrics[k][0]))
  return dict(record, seconds=time.perf_counter() - start, seed=pinned.seed), first


# ---- the comparison ----------------------------------------------------------------------------

METRICS = ('rm_score', 'kl', 'reward')


def compare(
  sft_run: str,
  rm_run: str,
  pinned: RlooPinned,
  seeds,
  folder: str,
  keep=False,
  threads=2,
  done=None,
):
  """Both sides at each seed, one seed after the other (`done(result)` after each):
  {'jdl': [records], 'trl': [records], 'first': jdl's model at step 0 (the first seed's; the
  exported policy), 'prompts': the prompts in order}."""
  from jdl.models import hf_gpt2

  prompts = rollout_prompts(pinned.steps * pinned.prompts, pinned.prompt_bytes)
  result = dict(jdl=[], trl=[], first=None, prompts=prompts)
  for seed in seeds:
    record, model = jdl_train(sft_run, rm_run, prompts, dataclasses.replace(pinned, seed=seed))
    if result['first'] is None:  # the same SFT weights at every seed
      result['first'] = model
      hf_gpt2.save(model.policy, os.path.join(folder, 'policy'))
    result['jdl'].append(record)
    job = dict(
      folder=os.path.join(folder, 'policy'),
      rm_run=os.path.abspath(rm_run),
      prompts=prompts,
      pinned=dataclasses.replace(pinned, seed=seed),
      keep=keep,
    )
    result['trl'] += run_trl([job], threads)
    print(f'seed {seed}: jdl {record["seconds"]:.0f} s, trl {result["trl"][-1]["seconds"]:.0f} s')
    if done is not None:
      done(result)
  return result


def summary(runs: list[dict], last: int) -> dict:
  """Per metric: the mean and standard deviation over seeds of each step, and of each seed's
  mean over the last `last` steps."""
  out = {}
  for k in METRICS:
    curves = np.asarray([r[k] for r in runs], np.float64)
    tail = curves[:, -last:].mean(1)
    out[k] = dict(
      mean=curves.mean(0).tolist(),
      std=curves.std(0, ddof=1).tolist() if len(runs) > 1 else [0.0] * curves.shape[1],
      last_mean=float(tail.mean()),
      last_std=float(tail.std(ddof=1)) if len(runs) > 1 else 0.0,
      last_per_seed=tail.tolist(),
    )
  return out


def agreement(jdl: dict, trl: dict, n_seeds: int) -> dict:
  """Per metric: trl - jdl of the last-steps means, its standard error from the seed spreads
  (sqrt(s_jdl^2 / n + s_trl^2 / n)) and whether |difference| <= 2 standard errors."""
  out = {}
  for k in METRICS:
    diff = trl[k]['last_mean'] - jdl[k]['last_mean']
    se = float(np.sqrt((jdl[k]['last_std'] ** 2 + trl[k]['last_std'] ** 2) / n_seeds))
    out[k] = dict(diff=diff, se=se, within_2se=bool(abs(diff) <= 2 * se))
  return out


def _main(argv: list[str]) -> None:
  import argparse

  parser = argparse.ArgumentParser(prog='python -m jdl.rlhf.peer_trl rloo')
  parser.add_argument('--sft', default='runs/rlhf/sft')
  parser.add_argument('--rm', default='runs/rlhf/rm')
  parser.add_argument('--steps', type=int, default=30)
  parser.add_argument('--prompts', type=int, default=16, help='prompts per step')
  parser.add_argument('--k', type=int, default=4, help='continuations per prompt')
  parser.add_argument('--lr', type=float, default=5e-5)  # experiments/rlhf/rloo.py
  parser.add_argument('--beta', type=float, default=0.05)  # experiments/rlhf/rloo.py's ppo.kl_coef
  parser.add_argument('--clip', type=float, default=0.0, help="jdl's; trl gets 48 x (0: off)")
  parser.add_argument('--seeds', type=int, nargs='+', default=[0])
  parser.add_argument('--last', type=int, default=10, help='steps averaged for the comparison')
  parser.add_argument('--threads', type=int, default=2, help="trl's torch threads")
  parser.add_argument('--out', default='', help='the JSON, rewritten after every seed')
  args = parser.parse_args(argv)
  for run, make in ((args.sft, 'sft.py'), (args.rm, 'reward_model.py')):
    if not os.path.isdir(os.path.join(run, 'checkpoints')):
      parser.error(
        f'{run} holds no trained run: `jdl train --config experiments/rlhf/{make} --workdir {run}`'
      )  # (exit 2, as every bad input)
  if args.k < 2 or args.steps < 1 or args.prompts < 1 or not 1 <= args.last <= args.steps:
    parser.error('--k >= 2, --steps >= 1, --prompts >= 1, 1 <= --last <= --steps')
  pinned = RlooPinned(
    steps=args.steps,
    prompts=args.prompts,
    k=args.k,
    learning_rate=args.lr,
    beta=args.beta,
    grad_clip_norm=args.clip,
  )
  with tempfile.TemporaryDirectory() as folder:
    done = lambda result: _write(report(result, pinned, args), args.out)
    result = compare(args.sft, args.rm, pinned, args.seeds, folder, threads=args.threads, done=done)
  out = report(result, pinned, args)
  jdl, trl, rollouts = out['jdl'], out['trl'], out['rollouts']
  print(f'RLOO, jdl against trl {out["trl_version"]}: {pinned}; seeds {args.seeds}')
  for k in METRICS:
    print(f'\n{k} (mean +- std over seeds)\n| step | rollouts | jdl | trl |\n|---|---|---|---|')
    for s in range(pinned.steps):
      a, b = (f'{x[k]["mean"][s]:.4f} +- {x[k]["std"][s]:.4f}' for x in (jdl, trl))
      print(f'| {s} | {rollouts[s]} | {a} | {b} |')
  print(f'\nmean of the last {args.last} steps (mean +- std over seeds):')
  for k in METRICS:
    g = out['agreement'][k]
    print(
      f'  {k}: jdl {jdl[k]["last_mean"]:.4f} +- {jdl[k]["last_std"]:.4f}, trl '
      f'{trl[k]["last_mean"]:.4f} +- {trl[k]["last_std"]:.4f}; trl - jdl {g["diff"]:+.4f} '
      f'(standard error {g["se"]:.4f}; within 2 se: {g["within_2se"]})'
    )
  seconds = lambda runs: np.mean([r['seconds'] for r in runs])
  print(f'seconds per run: jdl {seconds(result["jdl"]):.0f}, trl {seconds(result["trl"]):.0f}')


def report(result: dict, pinned: RlooPinned, args) -> dict:
  """The JSON of the comparison (the seeds run so far)."""
  seeds = [r['seed'] for r in result['trl']]
  jdl, trl = summary(result['jdl'][: len(seeds)], args.last), summary(result['trl'], args.last)
  return dict(
    pinned=dataclasses.asdict(pinned),
    sft=args.sft,
    rm=args.rm,
    reward_input=reward_input(args.rm),
    seeds=seeds,
    last=args.last,
    rollouts=[(s + 1) * pinned.prompts * pinned.k for s in range(pinned.steps)],
    trl_version=result['trl'][0]['trl'],
    jdl_runs=result['jdl'][: len(seeds)],
    trl_runs=[{k: r[k] for k in (*METRICS, 'seconds', 'seed')} for r in result['trl']],
    trl_completion_bytes=sorted({n for r in result['trl'] for step in r['lengths'] for n in step}),
    jdl=jdl,
    trl=trl,
    agreement=agreement(jdl, trl, len(seeds)),
  )


def _write(out: dict, path: str) -> None:
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(out, f, indent=1)


def main(argv: list[str]) -> None:
  """`rloo ...` (the comparison) or `rloo-trl JOBS.json OUT.json` (the trl side)."""
  if argv[:1] == ['rloo']:
    _main(argv[1:])
    return
  if argv[:1] != ['rloo-trl'] or len(argv) != 3:
    raise SystemExit('usage: python -m jdl.rlhf.peer_trl rloo [...] | rloo-trl JOBS.json OUT.json')
  import torch
  import transformers

  transformers.logging.set_verbosity_error()
  torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
  with open(argv[1]) as f:
    jobs = json.load(f)
  results = [trl_train(job) for job in jobs]
  with open(argv[2], 'w') as f:
    json.dump(results, f)
