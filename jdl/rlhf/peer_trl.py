"""trl 1.16's RewardTrainer and DPOTrainer on a jdl model exported to Hugging Face GPT-2: the peer
that jdl's reward-model and DPO losses are checked against, step by step, and the peer of
`jdl bench dpo`.

The weights travel as a GPT-2 folder (jdl.models.hf_gpt2.save). trl runs unmodified, in its own
process (`python -m jdl.rlhf.peer_trl ...`, torch on the CPU), on the same pairs in the same
order, with every setting that changes the numbers pinned to jdl's (`Pinned`):

  tokens        a byte-level tokenizer built in memory (`byte_tokenizer`): a ByteLevel BPE with
                no merges whose id of each byte is the byte, as jdl.data.reviews.ByteTokenizer;
                prompt + completion tokenise to their UTF-8 bytes, the prompt/completion split
                (trl's common prefix) falls at len(prompt.encode()). pad = eos = byte 0 (NUL,
                which no review contains).
  end token     trl appends eos to every chosen and rejected string; jdl has no end token.
                Reward model: eos = pad, and GPT2ForSequenceClassification scores the last
                non-pad token, so the appended 0 is never read: trl scores the last byte of the
                completion, as jdl's `at_last`. DPO: the appended 0 is a completion token whose
                log-probability enters the sum, so jdl is given the same pairs with a NUL byte at
                the end of each completion (`with_end_byte`): both sum 1 + len(completion) terms.
  truncation    none (max_length=None): trl's RewardTrainer would drop a longer pair, its
                DPOTrainer would cut it; jdl refuses a sequence longer than the context.
  head          GPT2ForSequenceClassification's `score` (no bias) takes jdl's initial head
                kernel (ScalarGPT starts at zero). jdl's head bias gets a zero gradient under the
                Bradley-Terry loss (it cancels in r_chosen - r_rejected) and never changes a loss.
  losses        RM: mean over pairs of -log sigmoid(r_c - r_r). DPO (loss_type 'sigmoid'): mean
                over pairs of -log sigmoid(beta (log-ratio_c - log-ratio_r)), each log-prob the
                SUM over completion tokens; reference: a second copy of the exported model,
                evaluated in every step (precompute_ref_log_probs=False).
  optimiser     AdamW (torch, 'adamw_torch'; optax.adamw in jdl) with the same lr, betas, eps;
                weight decay 0 on both sides (HF's Trainer exempts biases and LayerNorms from
                decay, optax decays every array); global-norm clipping (torch adds 1e-6 to the
                norm, optax does not); linear warm-up from 0 then linear decay to 0 at the last
                step (`get_linear_schedule_with_warmup` and jdl's 'linear' schedule are the same
                function of the step), or constant after the warm-up.
  order         `train_sampling_strategy='sequential'`; jdl gets the same batches in the same
                order; one optimiser step per batch (no gradient accumulation).
  numerics      float32 (bf16=False: trl's configs default to bf16), no dropout
                (disable_dropout=True, jdl's dropout 0), no gradient checkpointing.

  python -m jdl.rlhf.peer_trl compare [--sft runs/rlhf/sft] [--pairs runs/rlhf/prefs.jsonl]
      [--steps 20] [--batch 16] [--out FILE]     both sides on a trained run: the curves, the diffs
  python -m jdl.rlhf.peer_trl train JOBS.json OUT.json     (the trl side of `compare`, `run`)
  python -m jdl.rlhf.peer_trl bench FOLDER PAIRS.json PINNED.json   (jdl.bench.common.Peer)
  python -m jdl.rlhf.peer_trl rloo ...    RLOO against RLOOTrainer (jdl/rlhf/peer_trl_rloo.py)
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile

END_BYTE = '\x00'  # trl's eos here: byte 0, appended to every completion by DPOTrainer


@dataclasses.dataclass(frozen=True)
class Pinned:
  """The settings both sides train with (module docstring)."""

  steps: int = 12
  batch_size: int = 4  # pairs per step
  learning_rate: float = 1e-3
  warmup_steps: int = 2
  schedule: str = 'linear'  # or 'constant' (after the warm-up)
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  grad_clip_norm: float = 1.0
  beta: float = 0.1  # DPO
  seed: int = 0

  def __post_init__(self):
    if self.schedule not in ('linear', 'constant'):
      raise ValueError(f"schedule: 'linear' or 'constant', not {self.schedule!r}")

  def jdl_optimizer(self) -> dict:
    """The fields of jdl's `config.optimizer` (jdl.train.optim) that these settings fix."""
    return dict(
      name='adamw',
      learning_rate=self.learning_rate,
      warmup_steps=self.warmup_steps,
      schedule=self.schedule,
      grad_clip_norm=self.grad_clip_norm,
      weight_decay=0.0,
      kwargs=dict(b1=self.b1, b2=self.b2, eps=self.eps, weight_decay=0.0),
    )

  def trl_args(self, output_dir: str) -> dict:
    """The transformers TrainingArguments fields (shared by RewardConfig and DPOConfig)."""
    return dict(
      output_dir=output_dir,
      max_steps=self.steps,
      per_device_train_batch_size=self.batch_size,
      gradient_accumulation_steps=1,
      learning_rate=self.learning_rate,
      lr_scheduler_type='linear' if self.schedule == 'linear' else 'constant_with_warmup',
      warmup_steps=self.warmup_steps,
      weight_decay=0.0,
      adam_beta1=self.b1,
      adam_beta2=self.b2,
      adam_epsilon=self.eps,
      max_grad_norm=self.grad_clip_norm,
      optim='adamw_torch',
      train_sampling_strategy='sequential',
      max_length=None,
      **quiet_float32_args(self.seed),
    )


def quiet_float32_args(seed: int) -> dict:
  """The TrainingArguments every peer run here pins: float32 on the CPU, no checkpointing, no
  dropout, the seed, a log record every step, and nothing saved, reported or printed."""
  return dict(
    seed=seed,
    data_seed=seed,
    bf16=False,
    fp16=False,
    activation_checkpointing=False,  # trl's default gradient_checkpointing=True, renamed
    disable_dropout=True,
    logging_steps=1,
    save_strategy='no',
    report_to='none',
    use_cpu=True,
    dataloader_num_workers=0,
    disable_tqdm=True,
  )


def with_end_byte(pairs: list[dict]) -> list[dict]:
  """The pairs as DPOTrainer trains on them: each completion followed by its eos (byte 0)."""
  return [dict(p, chosen=p['chosen'] + END_BYTE, rejected=p['rejected'] + END_BYTE) for p in pairs]


def as_dict(pair) -> dict:
  """A jdl.data.preferences.Pair as the {prompt, chosen, rejected} both sides train on."""
  return {'prompt': pair.prompt, 'chosen': pair.chosen, 'rejected': pair.rejected}


def review_pairs(n: int, prompt_bytes: int, completion_bytes: int) -> list[dict]:
  """n pairs of real review text of exactly these byte lengths, for runs that need pairs before
  the labelled ones exist: an opening of a training review (jdl.data.review_prompts), chosen =
  the next review's continuation, rejected = the one after (the step time and the agreement of
  two implementations do not depend on which continuation a labeller would prefer)."""
  from jdl.data import review_prompts

  width = prompt_bytes + completion_bytes
  texts = [
    t for t in review_prompts.prompts('train', 3 * n, length=width) if len(t.encode()) == width
  ]
  heads = [review_prompts.cut(t, prompt_bytes) for t in texts]
  tails = [t.encode()[len(h.encode()) :].decode('utf-8', 'ignore') for t, h in zip(texts, heads)]
  k = len(texts)
  return [
    dict(prompt=heads[i], chosen=tails[(i + 1) % k], rejected=tails[(i + 2) % k]) for i in range(n)
  ]


def _bytes_to_unicode() -> dict[int, str]:
  """GPT-2's printable stand-in character for each byte (what a ByteLevel pre-tokenizer emits)."""
  printable = [*range(ord('!'), ord('~') + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
  chars, extra = dict(zip(printable, map(chr, printable))), 0
  for b in range(256):
    if b not in chars:
      chars[b] = chr(256 + extra)
      extra += 1
  return chars


def byte_tokenizer():
  """A transformers tokenizer whose ids are the UTF-8 bytes (jdl's ByteTokenizer), pad and eos
  byte 0. A ByteLevel BPE with the 256 single-byte symbols and no merges: every text encodes to
  its bytes, one id each."""
  import tokenizers
  import transformers
  from tokenizers import decoders, models, pre_tokenizers

  stand_in = _bytes_to_unicode()
  vocab = {stand_in[b]: b for b in range(256)}
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[]))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
  tok.decoder = decoders.ByteLevel()
  return transformers.PreTrainedTokenizerFast(
    tokenizer_object=tok, pad_token=stand_in[0], eos_token=stand_in[0]
  )


def _recording(trainer_class):
  """`trainer_class` that keeps the loss of every training step at full float32 precision (the
  logged 'loss' is averaged and rounded)."""

  class Recording(trainer_class):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
      out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
      if model.training:
        self.step_losses.append(float((out[0] if return_outputs else out).detach()))
      return out

  return Recording


def _dataset(pairs: list[dict]):
  import datasets

  return datasets.Dataset.from_dict(
    {k: [p[k] for p in pairs] for k in ('prompt', 'chosen', 'rejected')}
  )


def _torch_setup(seed: int, deterministic: bool) -> None:
  import torch

  torch.manual_seed(seed)
  torch.use_deterministic_algorithms(deterministic)


def reward_trainer(folder, pairs: list[dict], pinned: Pinned, output_dir: str, head=None):
  """trl's RewardTrainer on GPT2ForSequenceClassification from `folder`, its score head set to
  `head` ([D, 1], jdl's initial head kernel; None: zeros, as ScalarGPT starts)."""
  import torch
  import transformers
  from trl import RewardConfig, RewardTrainer

  _torch_setup(pinned.seed, deterministic=True)
  model = transformers.GPT2ForSequenceClassification.from_pretrained(
    folder, num_labels=1, attn_implementation='eager', dtype=torch.float32
  )
  with torch.no_grad():
    if head is None:
      model.score.weight.zero_()
    else:
      model.score.weight.copy_(torch.as_tensor(head, dtype=torch.float32).reshape(1, -1))
  args = RewardConfig(**pinned.trl_args(output_dir))
  trainer = _recording(RewardTrainer)(
    model=model, args=args, train_dataset=_dataset(pairs), processing_class=byte_tokenizer()
  )
  trainer.step_losses = []
  return trainer


def dpo_trainer(folder, pairs: list[dict], pinned: Pinned, output_dir: str, speed: bool = False):
  """trl's DPOTrainer (sigmoid loss) on GPT2LMHeadModel from `folder`, the reference a second
  copy of the same folder. `speed` (the benchmark): trl's default fused AdamW, SDPA attention,
  the fused tanh-GELU, no deterministic algorithms; the comparison uses the plain ones."""
  import torch
  import transformers
  from trl import DPOConfig, DPOTrainer

  _torch_setup(pinned.seed, deterministic=not speed)
  # For speed: PyTorch's fused attention and its tanh-GELU kernel (the same function as the
  # exported 'gelu_new', which transformers computes op by op).
  fast = dict(attn_implementation='sdpa', activation_function='gelu_pytorch_tanh')
  load = lambda: transformers.GPT2LMHeadModel.from_pretrained(
    folder, dtype=torch.float32, **(fast if speed else dict(attn_implementation='eager'))
  )
  args = DPOConfig(
    **dict(pinned.trl_args(output_dir), optim='adamw_torch_fused' if speed else 'adamw_torch'),
    beta=pinned.beta,
    loss_type=['sigmoid'],
    label_smoothing=0.0,
    precompute_ref_log_probs=False,
  )
  trainer = _recording(DPOTrainer)(
    model=load(),
    ref_model=load(),
    args=args,
    train_dataset=_dataset(pairs),
    processing_class=byte_tokenizer(),
  )
  trainer.step_losses = []
  return trainer


def train(kind: str, folder, pairs: list[dict], pinned: Pinned, head=None) -> list[float]:
  """The loss of each of `pinned.steps` trl steps ('reward' or 'dpo'), in this process."""
  with tempfile.TemporaryDirectory() as out:
    if kind == 'reward':
      trainer = reward_trainer(folder, pairs, pinned, out, head)
    else:
      trainer = dpo_trainer(folder, pairs, pinned, out)
    trainer.train()
  return trainer.step_losses


def run(jobs: list[dict]) -> list[dict]:
  """`train` for each job ({kind, folder, pairs, pinned: Pinned, head: [D, 1] or None}) in one
  process of its own (torch beside JAX, the benchmark's malloc settings, 2 threads, offline);
  each result is {'loss': [...], 'trl': version, 'seconds': wall}."""
  from jdl.bench import common

  with tempfile.TemporaryDirectory() as tmp:
    spec = [
      dict(
        job,
        folder=str(job['folder']),
        pinned=dataclasses.asdict(job['pinned']),
        head=None if job.get('head') is None else [float(x) for x in _flat(job['head'])],
      )
      for job in jobs
    ]
    with open(os.path.join(tmp, 'jobs.json'), 'w') as f:
      json.dump(spec, f)
    out = os.path.join(tmp, 'out.json')
    common.run_peer(
      'jdl.rlhf.peer_trl', ['train', os.path.join(tmp, 'jobs.json'), out], env=peer_env()
    )
    with open(out) as f:
      return json.load(f)


def _flat(x):
  import numpy as np

  return np.asarray(x, np.float32).reshape(-1)


def peer_env(threads: int = 2) -> dict[str, str]:
  """The peer's environment: glibc malloc settings (jdl.bench.common.TORCH_ENV), `threads`
  threads, and no network (everything is read from local files)."""
  from jdl.bench import common

  return {
    **common.TORCH_ENV,
    'OMP_NUM_THREADS': str(threads),
    'HF_HUB_OFFLINE': '1',
    'TRANSFORMERS_OFFLINE': '1',
    'HF_DATASETS_OFFLINE': '1',
    'TOKENIZERS_PARALLELISM': 'false',
    'HF_DATASETS_DISABLE_PROGRESS_BARS': '1',
  }


def _bench(folder, pairs: list[dict], pinned: Pinned) -> None:
  """The peer of `jdl bench dpo`: trl's own DPO training step (`DPOTrainer.training_step`:
  collated batch, policy and reference forwards, loss, backward) then clipping, AdamW and the
  schedule, as `Trainer.train` runs them, on the batches of `pairs` in order."""
  import torch
  import transformers
  import trl

  from jdl.bench import common

  torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
  out = tempfile.mkdtemp()
  trainer = dpo_trainer(folder, pairs, pinned, out, speed=True)
  trainer.create_optimizer_and_scheduler(num_training_steps=pinned.steps)
  trainer.current_gradient_accumulation_steps = 1  # what `Trainer.train` sets before its steps
  model = trainer.model.train()
  collate = trainer.data_collator
  rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
  b = pinned.batch_size
  batches = [collate(rows[i : i + b]) for i in range(0, len(rows) - b + 1, b)]
  position = [0]
  print(
    json.dumps(
      {
        'torch': torch.__version__,
        'transformers': transformers.__version__,
        'trl': trl.__version__,
        'threads': torch.get_num_threads(),
        'attention': model.config._attn_implementation,
      }
    ),
    flush=True,
  )

  def prepare():
    batch = batches[position[0] % len(batches)]
    position[0] += 1
    return batch

  def step(batch) -> float:
    loss = trainer.training_step(model, batch)
    torch.nn.utils.clip_grad_norm_(model.parameters(), pinned.grad_clip_norm)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    model.zero_grad(set_to_none=True)
    return float(loss)

  common.serve(step, prepare)


# ---- the comparison: jdl's own training step on the same model, pairs and settings -------------

TASKS = {'reward': 'reward_model', 'dpo': 'dpo'}


def jdl_config(kind: str, sft_run: str, pairs: list[dict], pinned: Pinned):
  """The config of jdl's task ('reward' or 'dpo', jdl.tasks.rlhf) started from `sft_run`, with
  the pinned settings, the SFT run's shape (dropout 0) and byte lengths that hold `pairs` whole
  (encode_pairs would cut a longer completion); one device, one step per call."""
  import ml_collections

  from jdl.tasks.rlhf import common, configs

  config = configs.stage_config(TASKS[kind], smoke=False)
  saved_model, _ = common.run_params(sft_run)
  config.model.update({k: saved_model[k] for k in common.SHAPE_FIELDS}, dropout=0.0)
  config.sft_run = sft_run
  config.data.prompt_bytes = max(len(p['prompt'].encode()) for p in pairs)
  config.data.completion_bytes = max(
    len(p[k].encode()) for p in pairs for k in ('chosen', 'rejected')
  )
  opt = pinned.jdl_optimizer()
  config.optimizer.update({k: v for k, v in opt.items() if k != 'kwargs'})
  config.optimizer.kwargs = ml_collections.ConfigDict(opt['kwargs'])
  config.batch_size = pinned.batch_size
  config.num_train_steps = pinned.steps
  config.grad_accum_steps = 1
  config.steps_per_call = 1
  config.seed = pinned.seed
  config.mesh.update(data=1, fsdp=1, tensor=1)
  if kind == 'dpo':
    config.beta = pinned.beta
  return config


def encode(pairs: list[dict], config) -> dict:
  """The pairs as jdl's preference tasks batch them (jdl.tasks.rlhf.common.encode_pairs)."""
  from jdl.data import preferences
  from jdl.tasks.rlhf import common

  return common.encode_pairs(
    [preferences.Pair(p['prompt'], p['chosen'], p['rejected'], 'peer_trl', None) for p in pairs],
    config.data.prompt_bytes,
    config.data.completion_bytes,
  )


def jdl_policy(sft_run: str):
  """The SFT run's GPT (what both trainers start from)."""
  from jdl.train.run import load_run

  return load_run(sft_run).model


def jdl_train(kind: str, sft_run: str, pairs: list[dict], pinned: Pinned):
  """(the loss of each of `pinned.steps` steps of jdl's task, the model at step 0) with batch s
  = pairs [s B, (s + 1) B) taken in order (wrapping around), through the loop's compiled step
  (jdl.train.loop.Trainer.run_steps, as `jdl train` runs it)."""
  import jax

  from jdl.data.splits import Splits
  from jdl.train.loop import Trainer

  if len(pairs) % pinned.batch_size:
    # trl's loader ends an epoch with a short batch; these batches would wrap around instead
    raise ValueError(f'{len(pairs)} pairs: a multiple of the batch size {pinned.batch_size} needed')
  config = jdl_config(kind, sft_run, pairs, pinned)
  rows = encode(pairs, config)
  trainer = Trainer(config, data=Splits(rows, {}, shuffle=False), total_steps=pinned.steps)
  trainer.task.check_runs()  # reads the SFT run before the init's host callback wants it
  state = trainer.init_state()
  first = trainer.model(jax.device_get(state))
  n, b = len(pairs), pinned.batch_size
  losses = []
  for s in range(pinned.steps):
    index = [(s * b + i) % n for i in range(b)]
    batch = trainer.global_batch({k: v[index] for k, v in rows.items()})
    state, metrics = trainer.run_steps(state, batch)
    losses.append(float(metrics['loss'][0]))
  return losses, first


def compare(sft_run: str, pairs: list[dict], rm: Pinned, dpo: Pinned, folder: str) -> dict:
  """jdl's and trl's loss of every step, reward model (settings `rm`) and DPO (`dpo`), from the
  SFT run exported to `folder` (jdl.models.hf_gpt2.save). The reward model's trunk and head are
  exported from jdl's initial state (trunk: the SFT weights; head: ScalarGPT's init), so both
  sides start equal."""
  import numpy as np

  from jdl.models import hf_gpt2

  rm_losses, rm_first = jdl_train('reward', sft_run, pairs, rm)
  dpo_losses, dpo_first = jdl_train('dpo', sft_run, with_end_byte(pairs), dpo)
  hf_gpt2.save(rm_first.trunk, os.path.join(folder, 'rm_trunk'))
  hf_gpt2.save(dpo_first.policy, os.path.join(folder, 'policy'))
  head = np.asarray(rm_first.head_kernel[...])
  trl_rm, trl_dpo = run(
    [
      dict(
        kind='reward', folder=os.path.join(folder, 'rm_trunk'), pairs=pairs, pinned=rm, head=head
      ),
      dict(kind='dpo', folder=os.path.join(folder, 'policy'), pairs=pairs, pinned=dpo),
    ]
  )
  out = {}
  for kind, jdl_curve, trl_result, pinned in (
    ('reward', rm_losses, trl_rm, rm),
    ('dpo', dpo_losses, trl_dpo, dpo),
  ):
    diff = np.abs(np.asarray(jdl_curve) - np.asarray(trl_result['loss']))
    out[kind] = dict(
      jdl=jdl_curve,
      trl=trl_result['loss'],
      max_abs_diff=float(diff.max()),
      trl_version=trl_result['trl'],
      trl_seconds=trl_result['seconds'],
      pinned=dataclasses.asdict(pinned),
    )
  return out


def _compare_main(argv: list[str]) -> None:
  """`python -m jdl.rlhf.peer_trl compare [--sft RUN] [--pairs FILE] [--steps N] [--batch B]
  [--out FILE]`: the comparison on a trained SFT run and its preference pairs (the first
  steps x batch pairs with a preference, in the file's order), a table of both curves."""
  import argparse

  from jdl.data import preferences
  from jdl.data.errors import DataError

  parser = argparse.ArgumentParser(prog='python -m jdl.rlhf.peer_trl compare')
  parser.add_argument('--sft', default='runs/rlhf/sft')
  parser.add_argument(
    '--pairs', default='runs/rlhf/prefs.jsonl', help="'reviews': review text (review_pairs)"
  )
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--rm-lr', type=float, default=1e-4)  # experiments/rlhf/reward_model.py
  parser.add_argument('--dpo-lr', type=float, default=5e-5)  # experiments/rlhf/dpo.py
  parser.add_argument('--beta', type=float, default=0.1)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)
  n = args.steps * args.batch
  if args.pairs == 'reviews':
    pairs, ties = review_pairs(n, 64, 48), 0
  else:
    try:
      decided, ties = preferences.split_ties(preferences.read(args.pairs))
    except DataError as e:
      raise SystemExit(str(e)) from None
    pairs = [as_dict(p) for p in decided[:n]]
    pairs = pairs[: len(pairs) // args.batch * args.batch]  # whole batches (epochs repeat them)
    if not pairs:
      raise SystemExit(f'{args.pairs}: fewer than {args.batch} pairs with a preference')
  shared = dict(steps=args.steps, batch_size=args.batch, warmup_steps=args.warmup)
  rm = Pinned(**shared, learning_rate=args.rm_lr)
  dpo = Pinned(**shared, learning_rate=args.dpo_lr, beta=args.beta)
  with tempfile.TemporaryDirectory() as folder:
    out = compare(args.sft, pairs, rm, dpo, folder)
  out.update(sft=args.sft, pairs=args.pairs, n_pairs=len(pairs), ties_dropped=ties)
  print(f'{len(pairs)} pairs of {args.pairs} ({ties} ties dropped), SFT {args.sft}')
  for kind in ('reward', 'dpo'):
    r = out[kind]
    print(f'\n{kind}: {r["pinned"]}')
    print(f'| step | jdl | trl {r["trl_version"]} | abs diff |\n|---|---|---|---|')
    for s, (a, b) in enumerate(zip(r['jdl'], r['trl'])):
      print(f'| {s} | {a:.7f} | {b:.7f} | {abs(a - b):.1e} |')
    print(f'max |jdl - trl| over {len(r["jdl"])} steps: {r["max_abs_diff"]:.2e}')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(out, f, indent=1)


def main(argv: list[str]) -> None:
  if argv[:1] in (['rloo'], ['rloo-trl']):  # RLOO against RLOOTrainer: jdl/rlhf/peer_trl_rloo.py
    from jdl.rlhf import peer_trl_rloo

    peer_trl_rloo.main(argv)
    return
  if argv[:1] == ['compare']:
    _compare_main(argv[1:])
    return
  import transformers

  transformers.logging.set_verbosity_error()
  if argv[:1] == ['bench']:
    folder, pairs_path, pinned_path = argv[1:4]
    with open(pairs_path) as f, open(pinned_path) as g:
      _bench(folder, json.load(f), Pinned(**json.load(g)))
    return
  if argv[:1] != ['train'] or len(argv) != 3:
    raise SystemExit('usage: python -m jdl.rlhf.peer_trl train JOBS.json OUT.json | bench ...')
  import time

  import torch
  import trl

  torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
  with open(argv[1]) as f:
    jobs = json.load(f)
  results = []
  for job in jobs:
    start = time.perf_counter()
    head = None if job['head'] is None else _flat(job['head']).reshape(-1, 1)
    losses = train(job['kind'], job['folder'], job['pairs'], Pinned(**job['pinned']), head)
    results.append({'loss': losses, 'trl': trl.__version__, 'seconds': time.perf_counter() - start})
  with open(argv[2], 'w') as f:
    json.dump(results, f)


if __name__ == '__main__':
  main(sys.argv[1:])
