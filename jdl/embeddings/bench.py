"""`jdl bench word2vec`: effective training words/s of jdl's skip-gram against gensim's
Word2Vec (its C Hogwild loop, 2 worker threads), alternating in one run on the same corpus.

Words are corpus positions passed per second (every word of the stream, the subsampled ones
included, as gensim's own `words/s` before subsampling), with the settings of
experiments/embeddings/word2vec.py (dimension 100, window 5, 5 negatives, sample 1e-3).
jdl runs the loop's compiled call (`Trainer.run_steps`, 8 steps a call) on the batches of its
grain pipeline, the time to produce them included; gensim trains on consecutive slices of the
same sentences.
Rounds alternate (k jdl steps, then one gensim slice of as many words), each timed as a whole;
the table gives the medians of the rounds.

Memory traffic: the step moves the rows it reads and writes (each real slot: a row read by the
gather, and read and written by the scatter-add), measured from the batches, against this
machine's copy bandwidth (the best of several 256 MB copies with NumPy).
"""

from __future__ import annotations

import time

import numpy as np

from jdl.bench import common

CONFIG = 'experiments/embeddings/word2vec.py'
STEPS_PER_CALL = 8


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
  """Bytes per second of a large array copy (read + write counted)."""
  a = np.ones(megabytes * 2**20 // 4, np.float32)
  b = np.empty_like(a)
  best = float('inf')
  for _ in range(repeats):
    t = time.perf_counter()
    np.copyto(b, a)
    best = min(best, time.perf_counter() - t)
  return 2 * a.nbytes / best


def row_bytes(batch: dict, dim: int) -> float:
  """Bytes a step moves for its rows: gathered once, scatter-added (read and written)."""
  valid = np.asarray(batch['context_valid'])
  contexts = valid.sum()
  centres = (valid.max(-1) > 0).sum()
  outputs = centres * (1 + np.asarray(batch['negatives']).shape[-1])
  return float((contexts + outputs) * dim * 4 * 3)


class JdlRounds:
  """jdl's steps through the loop's pieces: grain batches, global arrays, the compiled call."""

  def __init__(self, config):
    from jdl.train.loop import Trainer

    self.trainer = Trainer(config)
    self.state = self.trainer.init_state()
    self.batches = self.trainer.train_batches()
    self.dim = config.model.dim
    self.bytes: list[float] = []

  def steps(self, k: int) -> list[float]:
    """Seconds of each compiled call over k steps (`steps_per_call` steps a call)."""
    times = []
    for _ in range(k // self.trainer.schedule.per_call):
      t = time.perf_counter()
      local = next(self.batches)
      batch = self.trainer.global_batch(local)
      self.state, metrics = self.trainer.run_steps(self.state, batch)
      float(metrics['loss'][-1])  # waits for the call
      times.append(time.perf_counter() - t)
      self.bytes.append(row_bytes(local, self.dim) / self.trainer.schedule.per_call)
    return times


def main(quick: bool = False) -> int:
  from jdl import config as config_lib

  rounds, per_round = (2, 50) if quick else (10, 200)
  config = config_lib.load(CONFIG)
  with config.unlocked():
    config.mesh.update(data=1, fsdp=1, tensor=1)
    # 8 steps a compiled call (`jdl train` takes 2: the divisors of the config's epoch); the
    # number of steps only shapes the learning rate's decay.
    config.update(num_epochs=0, num_train_steps=STEPS_PER_CALL * 3346)
    config.update(log_every_steps=-1, eval_every_steps=-1, checkpoint_every_steps=-1)
    config.steps_per_call = STEPS_PER_CALL
  words_per_step = config.batch_size * config.data.kwargs.chunk
  words_per_round = words_per_step * per_round
  jdl = JdlRounds(config)
  print(
    f'skip-gram, dimension {config.model.dim}, window {config.data.kwargs.window}, '
    f'{config.data.kwargs.negatives} negatives, sample {config.data.kwargs.sample:g}; jdl: '
    f'{words_per_step:,} corpus words a step ({config.batch_size} rows of '
    f'{config.data.kwargs.chunk}); rounds of {words_per_round:,} words each; '
    f'{common.machine()}; {common.today()}',
    flush=True,
  )
  peer = common.Peer('jdl.embeddings.peer_gensim', [CONFIG, str(words_per_round)])
  info = peer.info
  jdl.steps(2 * STEPS_PER_CALL)  # compilation and first touches, not timed
  peer.steps(1)
  jdl_rates, peer_rates = [], []
  for r in range(rounds):
    jdl_rates.append(words_per_round / sum(jdl.steps(per_round)))
    out = peer.steps(1)
    peer_rates.append(out['loss'][0] / out['step_seconds'][0])
    print(
      f'round {r + 1}/{rounds}: jdl {jdl_rates[-1]:,.0f} words/s, gensim {peer_rates[-1]:,.0f} '
      'words/s',
      flush=True,
    )
  peer.close()
  bandwidth = copy_bandwidth()
  jdl_rate, peer_rate = common.median(jdl_rates), common.median(peer_rates)
  moved = float(np.mean(jdl.bytes)) * jdl_rate / words_per_step
  ratio = jdl_rate / peer_rate
  print(
    f'\ngensim {info["gensim"]} ({info["workers"]} workers, FAST_VERSION {info["fast_version"]})'
  )
  print('\n| implementation | words/s (median of rounds) | ratio |')
  print('|---|---|---|')
  print(
    f'| jdl skip-gram (JAX/XLA, {words_per_step:,} words a step, {STEPS_PER_CALL} steps a call) '
    f'| {jdl_rate:,.0f} | {ratio:.2f}x |'
  )
  print(f'| gensim Word2Vec sg=1 ({info["workers"]} workers) | {peer_rate:,.0f} | 1.00x |')
  print(
    f'\njdl rows moved: {np.mean(jdl.bytes) / 1e6:.1f} MB a step, {moved / 1e9:.2f} GB/s, '
    f"{moved / bandwidth:.1%} of this machine's copy bandwidth ({bandwidth / 1e9:.1f} GB/s)"
  )
  print(
    f'jdl / gensim words/s: {ratio:.2f}x (firm >= 0.25x: {"met" if ratio >= 0.25 else "NOT met"}; '
    f'stretch 1.0x: {"met" if ratio >= 1.0 else "not met"})'
  )
  return 0
