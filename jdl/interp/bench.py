"""`jdl bench ioi`: the time of the whole per-head activation-patching sweep (noising every
head's z, every layer, on IOI prompts) in jdl and in TransformerLens 4.x, in one run.

The model is the trained IOI run (runs/interp/ioi_gpt, 4 layers, 4 heads, d_model 128, a
9,903-id subset of GPT-2's BPE) when it has a checkpoint, else a randomly initialised GPT of that
shape (the output says which): the time of a sweep depends on the shape, not on the weights.
Both sides get the same weights (jdl's model, exported as a GPT-2 folder by
jdl.models.hf_gpt2 for TransformerLens' bridge) and the same prompts (64 clean IOI prompts over
all templates, right-padded, and their ABC corruptions).

A sweep is everything `jdl.interp.patching.patch_heads` does: the corrupted run with its cache,
the clean and corrupted logit differences, and one patched run per layer and head; in
TransformerLens the same with `run_with_cache` and `patching.get_act_patch_attn_head_out_all_pos`
(jdl.interp.peer_transformer_lens, in its own process, as every peer of jdl.bench). jdl's sweep
is one compiled program: its first call (tracing and XLA compilation, then one run) is reported
apart and not timed. Rounds alternate jdl and TransformerLens so that both see the same load on
a shared machine; the result is the medians and their ratio (target: jdl at least as fast).
Before the timing, the effects and the per-head direct logit attributions (on the clean prompts)
of both are compared with the firm tolerance of the parity test.

Each does its library's usual thing: TransformerLens' patched runs return logits (the metric
reads two of them), so each computes the unembedding, [B*T, D] x [D, V], the largest matmul of
this small model; jdl's compiled sweep reads the final LayerNorm's output at `end` and XLA
drops the unembedding (jdl.interp.patching). PyTorch runs with 1 thread or all cores, whichever
its process measures faster at start-up.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from jdl.bench import common

WORKDIR = 'runs/interp/ioi_gpt'
# The trained run's shape (experiments/interp/ioi_gpt.py), for the random stand-in.
SHAPE = dict(vocab_size=9903, context=48, n_layer=4, n_head=4, d_model=128)
TOKENIZER = 'gpt2:kjv+ioi'
N_PROMPTS = 64


def model_and_tokenizer():
  """(model, tokenizer, what): the trained run if it has a checkpoint, else a random GPT of its
  shape; `what` says which."""
  from flax import nnx

  from jdl import paths
  from jdl.data import text
  from jdl.models.gpt import GPT, GPTConfig
  from jdl.train import run as run_lib

  workdir = paths.ROOT / WORKDIR
  if (workdir / 'config.json').exists() and run_lib.checkpoint_steps(workdir):
    run = run_lib.load_run(workdir)
    return run.model, run.task.tokenizer(), f'the trained run {WORKDIR} (step {run.step})'
  model = GPT(GPTConfig(**SHAPE), rngs=nnx.Rngs(0))
  what = f'a randomly initialised GPT of its shape ({WORKDIR} has no checkpoint)'
  return model, text.make_tokenizer(TOKENIZER), what


def prompts(tokenizer, n: int) -> dict[str, np.ndarray]:
  from jdl.data import ioi

  clean = ioi.prompts(tokenizer, n, seed=0, vocab=ioi.Vocabulary.single(tokenizer))
  bad = ioi.corrupted(tokenizer, clean, seed=1)
  return dict(tokens=clean.tokens, corrupted=bad.tokens, end=clean.end, io=clean.io, s=clean.s)


def differ(ours, theirs) -> tuple[float, float]:
  """(max |ours - theirs|, the parity test's tolerance 1e-4 max |theirs| + 1e-6)."""
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  return float(np.abs(ours - theirs).max()), 1e-4 * float(np.abs(theirs).max()) + 1e-6


def main(quick: bool = False) -> int:
  import importlib.util

  import jax

  from jdl.interp import patching
  from jdl.models import hf_gpt2
  from jdl.train import errors

  if importlib.util.find_spec('transformer_lens') is None:
    raise errors.UsageError(
      'TransformerLens is not installed (the peer); install the bench extra: pip '
      "install -e '.[bench]'"
    )
  rounds, per_round = (2, 1) if quick else (5, 3)
  model, tokenizer, what = model_and_tokenizer()
  cfg = model.cfg
  data = prompts(tokenizer, N_PROMPTS)
  args = [data[k] for k in ('tokens', 'corrupted', 'end', 'io', 's')]
  B, T = data['tokens'].shape
  print(
    f'per-head activation patching (noising z, all positions): {cfg.n_layer} layers x '
    f'{cfg.n_head} heads = {cfg.n_layer * cfg.n_head} patched runs + 2 per sweep, {B} IOI '
    f'prompts of {T} tokens, d_model {cfg.d_model}, vocabulary {cfg.vocab_size}, float32; model: '
    f'{what}; {common.machine()}; {common.today()}',
    flush=True,
  )

  def jdl_sweep():
    return jax.block_until_ready(patching.patch_heads(model, *args))

  def jdl_sweeps(k: int) -> list[float]:
    times = []
    for _ in range(k):
      t = time.perf_counter()
      jdl_sweep()
      times.append(time.perf_counter() - t)
    return times

  with tempfile.TemporaryDirectory() as folder:
    hf_gpt2.save(model, f'{folder}/hf')
    np.savez(f'{folder}/prompts.npz', **data)
    t = time.perf_counter()
    ours = jdl_sweep()
    first = time.perf_counter() - t
    peer = common.Peer(
      'jdl.interp.peer_transformer_lens',
      [f'{folder}/hf', f'{folder}/prompts.npz'],
      env={**common.TORCH_ENV, 'TQDM_DISABLE': '1'},
    )
    info = peer.info
    theirs = np.asarray(info['effect'])
    worst, tolerance = differ(ours.effect, theirs)
    dla = patching.direct_logit_attribution(model, *args[:1], *args[2:]).heads
    dla_worst, dla_tolerance = differ(dla, info['dla'])
    print(
      f'jdl: first call (tracing + compilation + one sweep) {first:.2f} s, not timed; '
      f'TransformerLens {info["transformer_lens"]} on torch {info["torch"]} '
      f'({info["threads"]} thread(s): the faster of 1 and all cores), no weight processing. '
      f'Effects: clean - corrupted logit difference {float(ours.clean - ours.corrupted):.3f}, '
      f'max |effect| {np.abs(theirs).max():.3f}, max |jdl - TransformerLens| {worst:.2e} '
      f'(tolerance {tolerance:.2e}: {"met" if worst <= tolerance else "NOT met"}); per-head '
      f'direct logit attribution: max |jdl - TransformerLens| {dla_worst:.2e} (tolerance '
      f'{dla_tolerance:.2e}: {"met" if dla_worst <= dla_tolerance else "NOT met"})',
      flush=True,
    )
    # the peer is TransformerLens; each round starts with the machine's matmul peak, which says
    # whether it was idle
    jdl_times, tl_times, peak = common.alternate(jdl_sweeps, peer, rounds, per_round)
    peer.close()
  print(f'best matmul peak of the rounds: {peak / 1e9:.1f} GFLOP/s')
  jdl_med, tl_med = common.median(jdl_times), common.median(tl_times)
  print('\n| implementation | s per sweep (median) | patched runs/s |')
  print('|---|---|---|')
  n_runs = cfg.n_layer * cfg.n_head
  for name, med in (('jdl (JAX/XLA, jit + vmap over heads)', jdl_med), ('TransformerLens', tl_med)):
    print(f'| {name} | {med:.3f} | {n_runs / med:,.1f} |')
  ratio = tl_med / jdl_med
  print(
    f'\njdl / TransformerLens sweeps per second: {ratio:.2f}x (target >= 1.0x: '
    f'{"met" if ratio >= 1.0 else "NOT met"}); {len(jdl_times)} sweeps each'
  )
  return 0
