"""`jdl bench dpo`: DPO training steps per second of jdl against trl 1.16's DPOTrainer (PyTorch,
CPU), on the same model, the same pairs and the same shapes, in one run.

The model is the supervised policy (runs/rlhf/sft: 4 layers, 4 heads, d_model 256, context
128, bytes), exported to a Hugging Face GPT-2 folder for trl (jdl.models.hf_gpt2.save). The
pairs are runs/rlhf/prefs.jsonl (`jdl rlhf pairs`), or, before it exists, 64-byte openings of
training reviews with two 48-byte continuations taken from other reviews (real text: the step
time does not depend on which pair is preferred). Each completion carries trl's end token (byte
0, jdl.rlhf.peer_trl.with_end_byte), so both sides score 64 + 49 bytes per sequence. A step is
BATCH pairs: policy forward and backward and reference forward on 2 x BATCH sequences, then
global-norm clipping and AdamW.

jdl runs its own DPO step (jdl.tasks.rlhf.dpo through the loop's compiled `Trainer.run_steps`,
as `jdl train` runs it); trl runs `DPOTrainer.training_step` plus clipping, AdamW and the
schedule (jdl.rlhf.peer_trl, in its own process, with the glibc malloc settings of
jdl.bench.common.TORCH_ENV and 2 threads, as this machine has 2 cores). Rounds alternate jdl
and trl so both see the same load; the load average (`uptime`) is printed before and after.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile

from jdl.bench import common

SFT_RUN, PAIRS = 'runs/rlhf/sft', 'runs/rlhf/prefs.jsonl'
BATCH = 8  # pairs per step
PROMPT_BYTES, COMPLETION_BYTES = 64, 48


def bench_pairs(n: int) -> tuple[list[dict], str]:
  """(n pairs, where they come from): the first n decided pairs of PAIRS, or, before it exists,
  pairs of review text (jdl.rlhf.peer_trl.review_pairs)."""
  from jdl.data import preferences
  from jdl.rlhf import peer_trl

  if os.path.isfile(PAIRS):
    decided, _ = preferences.split_ties(preferences.read(PAIRS))
    if len(decided) >= n:
      return [peer_trl.as_dict(p) for p in decided[:n]], PAIRS
  pairs = peer_trl.review_pairs(n, PROMPT_BYTES, COMPLETION_BYTES)
  return pairs, 'review openings with continuations of other reviews (no prefs.jsonl yet)'


def uptime() -> str:
  return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()


def one_step_sft(workdir: str) -> str:
  """An SFT run of the real shape after one training step: the speed of a DPO step does not
  depend on the weights, so `--quick` on a fresh checkout measures on it (about a minute)."""
  from jdl import config as config_lib
  from jdl.train import loop

  config = config_lib.load('experiments/rlhf/sft.py')
  config.update(num_train_steps=1, steps_per_call=1, eval_every_steps=-1, progress_bar='never')
  config.checkpoint_every_steps = 1
  config.data.kwargs.eval_rows = 8
  loop.train_and_evaluate(config, workdir)
  return workdir


def main(quick: bool = False) -> int:
  from jdl.train.errors import UsageError

  if os.path.isdir(os.path.join(SFT_RUN, 'checkpoints')):
    return measure(SFT_RUN, *bench_pairs(BATCH * 4), quick=quick)
  if not quick:
    raise UsageError(
      f'no SFT run at {SFT_RUN} (the model DPO starts from); make it with '
      f'`jdl train --config experiments/rlhf/sft.py --workdir {SFT_RUN}` '
      '(--quick measures on a one-step SFT run of the same shape instead)'
    )
  with tempfile.TemporaryDirectory() as tmp:
    print(f'no SFT run at {SFT_RUN}: --quick measures on a one-step SFT run of the same shape')
    sft_run = one_step_sft(os.path.join(tmp, 'sft'))
    return measure(sft_run, *bench_pairs(BATCH * 4), quick=quick)


def measure(sft_run: str, pairs: list[dict], source: str, quick: bool = False) -> int:
  """The alternating rounds on `pairs` (BATCH per step, in order) from `sft_run`."""
  from jdl.models import hf_gpt2
  from jdl.models.gpt import GPTConfig
  from jdl.rlhf import peer_trl
  from jdl.tasks.rlhf import common as rlhf_common
  from jdl.train import cost

  rounds, per_round = (2, 2) if quick else (6, 4)
  print(f'load before: {uptime()}', flush=True)
  jdl_pairs = peer_trl.with_end_byte(pairs)  # trl appends this end byte itself (peer_trl)
  # steps only shape the learning-rate schedule (the same on both sides)
  pinned = peer_trl.Pinned(steps=1000, batch_size=BATCH, learning_rate=5e-5, warmup_steps=10)
  config = peer_trl.jdl_config('dpo', sft_run, jdl_pairs, pinned)
  cfg = GPTConfig.from_config(config.model, config.dtype)
  width = config.data.prompt_bytes + config.data.completion_bytes
  tokens = 2 * BATCH * (width - 1)  # sequences of the step x positions the model reads
  # policy forward + backward (3 forward passes' worth) and the reference's forward
  flops_per_step = 4 * cost.forward_flops_per_token(cfg, width - 1) * tokens
  print(
    f'DPO on the SFT policy ({cfg.n_layer}L/{cfg.n_head}H/d{cfg.d_model}, context '
    f'{cfg.context}, bytes; {cost.param_count(cfg):,} parameters, a frozen copy as reference): '
    f'{BATCH} pairs per step = {2 * BATCH} sequences of {width} bytes; pairs: {source}; '
    f'float32, AdamW, clip 1.0; {flops_per_step / 1e9:.1f} GFLOP per step; {common.machine()}; '
    f'{common.today()}',
    flush=True,
  )
  rlhf_common.run_params(sft_run)  # read before the init's host callback wants it
  with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, 'policy')
    hf_gpt2.save(peer_trl.jdl_policy(sft_run), folder)
    with open(os.path.join(tmp, 'pairs.json'), 'w') as f:
      json.dump(pairs, f)
    with open(os.path.join(tmp, 'pinned.json'), 'w') as f:
      json.dump(dataclasses.asdict(pinned), f)
    peer = common.Peer(
      'jdl.rlhf.peer_trl',
      ['bench', folder, os.path.join(tmp, 'pairs.json'), os.path.join(tmp, 'pinned.json')],
      env=peer_trl.peer_env(threads=2),
    )
    rows = peer_trl.encode(jdl_pairs, config)
    position = [0]

    def make_batch(_rng):
      index = [(position[0] * BATCH + i) % len(pairs) for i in range(BATCH)]
      position[0] += 1
      return {k: v[index] for k, v in rows.items()}

    jdl = common.JdlSteps(config, make_batch)
    jdl_first = jdl.steps(2)[1]  # compilation and first touches, not timed
    trl_first = peer.steps(2)
    jdl_times, trl_times, peak = common.alternate(
      lambda k: jdl.steps(k)[0], peer, rounds, per_round
    )
    peer.close()
  info = peer.info
  print(
    f'trl {info["trl"]}, torch {info["torch"]}, transformers {info["transformers"]} '
    f'({info["threads"]} threads, {info["attention"]} attention); float32 matmul peak (2048^3 '
    f'with JAX, best of the run): {peak / 1e9:.1f} GFLOP/s; first losses jdl '
    f'{jdl_first[0]:.5f}, trl {trl_first["loss"][0]:.5f} (ln 2 = 0.69315)'
  )
  common.print_comparison(
    'trl DPOTrainer (PyTorch)',
    jdl_times,
    trl_times,
    units_per_step=BATCH,
    unit='pairs',
    flops_per_step=flops_per_step,
    peak=peak,
    flops_label='MFU (vs measured fp32 peak)',
    stretch=1.3,
  )
  print(f'load after: {uptime()}')
  return 0
