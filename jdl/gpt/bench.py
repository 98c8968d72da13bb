"""`jdl bench gpt`: training tokens/s and MFU of jdl's GPT against Hugging Face transformers'
GPT-2 in PyTorch, on this machine's CPU, in the same run.

Shape (nanoGPT's character-level Shakespeare model): 6 layers, 6 heads, d_model 384, context
256, batch 8, vocabulary 65, float32, AdamW. jdl runs its own training step (the Task's
`train_step` compiled by the loop's `Trainer`, as `jdl train` runs it) on random tokens, with
`model.attention = 'blocked'` (jdl.models.fused_attention), as PyTorch's SDPA skips the masked
half of causal attention; the MFU still counts the full [T, T] products, as for the peer.

MFU = model FLOPs per second / peak, where model FLOPs are jdl.gpt.compute's exact per-layer
count (3 x forward matmuls, attention included) and the peak is this machine's float32 matmul
throughput measured here: the best of several 2048^3 matmuls timed with JAX.
"""

from __future__ import annotations

import numpy as np

from jdl.bench import common

SHAPE = dict(n_layer=6, n_head=6, d_model=384, context=256, batch=8, vocab=65)


def jdl_config():
  """The GPT of the benchmark in a jdl config, with the PyTorch peer's optimizer."""
  import ml_collections

  from jdl.gpt.configs import gpt_config

  s = SHAPE
  c = gpt_config(
    n_layer=s['n_layer'],
    n_head=s['n_head'],
    d_model=s['d_model'],
    context=s['context'],
    vocab_size=s['vocab'],
  )
  c.optimizer.kwargs = ml_collections.ConfigDict(dict(weight_decay=0.01))
  c.optimizer.learning_rate = 1e-3
  c.optimizer.grad_clip_norm = 0.0  # as the PyTorch peer (no clipping)
  c.optimizer.schedule = 'constant'
  c.batch_size = s['batch']
  c.num_train_steps = 1000  # only shapes the optimizer's (constant) rate
  # Data parallel over every device: one on a plain CPU run. Under
  # XLA_FLAGS=--xla_force_host_platform_device_count=2 each of two CPU devices runs half the
  # batch, one program per core (an experiment for the idle machine: docs/benchmarks.md).
  c.mesh.update(data=-1, fsdp=1, tensor=1)
  # The CPU's fast causal attention: only the lower-triangular blocks of the scores (same losses
  # as the reference 'einsum' within float32 rounding; tests/models/test_attention_paths.py).
  c.model.attention = 'blocked'
  return c


def random_tokens(rng: np.random.Generator) -> dict[str, np.ndarray]:
  s = SHAPE
  return {'tokens': rng.integers(0, s['vocab'], (s['batch'], s['context'] + 1), np.int32)}


def main(quick: bool = False) -> int:
  from jdl.models.gpt import GPTConfig
  from jdl.train import cost

  # Rounds alternate jdl and PyTorch, so that both see the same load on a shared machine.
  rounds, per_round = (2, 3) if quick else (6, 4)
  s = SHAPE
  config = jdl_config()
  cfg = GPTConfig.from_config(config.model, config.dtype)
  tokens = s['batch'] * s['context']
  flops_per_step = 3 * cost.forward_flops_per_token(cfg) * tokens
  print(
    f'GPT {s["n_layer"]}L/{s["n_head"]}H/d{s["d_model"]}, context {s["context"]}, batch '
    f'{s["batch"]}, vocab {s["vocab"]}, float32, AdamW, attention {cfg.attention!r}: '
    f'{cost.param_count(cfg):,} '
    f'parameters, {flops_per_step / 1e9:.1f} GFLOP per step; {common.machine()}; '
    f'{common.today()}',
    flush=True,
  )
  args = [str(s[k]) for k in ('n_layer', 'n_head', 'd_model', 'context', 'batch', 'vocab')]
  peer = common.Peer('jdl.gpt.peer_torch', args, env=common.TORCH_ENV)
  info = peer.info
  jdl = common.JdlSteps(config, random_tokens)
  jdl_first = jdl.steps(2)[1]  # compilation and first touches, not timed
  torch_first = peer.steps(2)
  jdl_times, torch_times, peak = common.alternate(
    lambda k: jdl.steps(k)[0], peer, rounds, per_round
  )
  peer.close()
  print(
    f'torch {info["torch"]} / transformers {info["transformers"]} ({info["threads"]} '
    f'threads, {info["attention"]} attention); float32 matmul peak (2048^3 with JAX, best '
    f'of the run): {peak / 1e9:.1f} GFLOP/s; first losses jdl {jdl_first[0]:.3f}, '
    f'torch {torch_first["loss"][0]:.3f} (ln {s["vocab"]} = {np.log(s["vocab"]):.3f})'
  )
  common.print_comparison(
    'HF GPT-2 (PyTorch)',
    jdl_times,
    torch_times,
    units_per_step=tokens,
    unit='tokens',
    flops_per_step=flops_per_step,
    peak=peak,
    flops_label='MFU (vs measured fp32 peak)',
    stretch=1.3,
  )
  return 0
