"""The PyTorch peer: `torch.nn.Transformer` of the same size as jdl's, on the same packed rows.

Same as jdl's model: d_model, heads, FFN width, layers, pre- or post-LN, a shared source/target
embedding N(0, d^-1/2) scaled by sqrt(d) with sinusoidal positions, the output layer tied to it,
label smoothing, Adam (0.9, 0.98, 1e-9) with the same warm-up and inverse-square-root schedule,
and the same masks (a token sees its own sentence of a packed row; the decoder causally).
What differs is PyTorch's own: `nn.Transformer` also applies dropout to the attention weights and
inside the FFN, Xavier-initialises its in-projections as one (3d x d) matrix, and with
`norm_first=False` still adds a final LayerNorm to each stack.

`fit` is the peer's side of `jdl.transformer.race` (the same config as jdl's `Trainer.fit`:
batches, steps, wall-clock budget, records); `main` is the peer of `jdl bench transformer`. Both
run in a process with glibc malloc's thresholds in the environment (MALLOC_MMAP_THRESHOLD_
etc.), which keeps large activations from being returned to the OS and page-faulted back every
step.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from jdl import config as config_lib
from jdl import paths
from jdl.data import ding, pipeline
from jdl.data.ding import BOS, EOS, PAD
from jdl.models.decoding import pad_batch
from jdl.models.transformer import sinusoidal_positions
from jdl.tasks import translation
from jdl.train.logs import MetricWriter
from jdl.train.loop import Schedule


class TorchTransformer(nn.Module):
  def __init__(
    self,
    vocab_size: int,
    d_model: int,
    n_heads: int,
    d_ff: int,
    n_encoder_layers: int,
    n_decoder_layers: int,
    dropout: float,
    pre_ln: bool,
    max_len: int,
    **_,
  ):
    super().__init__()
    self.d_model, self.n_heads = d_model, n_heads
    self.embedding = nn.Embedding(vocab_size, d_model)
    nn.init.normal_(self.embedding.weight, 0.0, d_model**-0.5)
    self.register_buffer('positions', torch.from_numpy(sinusoidal_positions(max_len, d_model)))
    self.dropout = nn.Dropout(dropout)
    self.transformer = nn.Transformer(
      d_model=d_model,
      nhead=n_heads,
      num_encoder_layers=n_encoder_layers,
      num_decoder_layers=n_decoder_layers,
      dim_feedforward=d_ff,
      dropout=dropout,
      batch_first=True,
      norm_first=pre_ln,
    )

  def embed(self, tokens, positions):
    return self.dropout(
      self.embedding(tokens) * math.sqrt(self.d_model) + self.positions[positions]
    )

  def _heads(self, mask_BxTxS):
    # PyTorch's boolean masks mark what may NOT be attended, per (batch x head).
    return (~mask_BxTxS).repeat_interleave(self.n_heads, dim=0)

  def encode(self, src, src_seg, src_pos):
    mask = src_seg[:, :, None] == src_seg[:, None, :]
    return self.transformer.encoder(self.embed(src, src_pos), mask=self._heads(mask))

  def decode(self, tgt, memory, tgt_seg, src_seg, tgt_pos):
    T = tgt.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    self_mask = (tgt_seg[:, :, None] == tgt_seg[:, None, :]) & causal
    # Padding queries see every key: a query with no key at all would give NaN in PyTorch.
    cross_mask = (tgt_seg[:, :, None] == src_seg[:, None, :]) | (tgt_seg == 0)[:, :, None]
    y = self.transformer.decoder(
      self.embed(tgt, tgt_pos),
      memory,
      tgt_mask=self._heads(self_mask),
      memory_mask=self._heads(cross_mask),
    )
    return y @ self.embedding.weight.T  # tied output layer

  def forward(self, batch):
    memory = self.encode(batch['src'], batch['src_segments'], batch['src_positions'])
    return self.decode(
      batch['tgt_in'], memory, batch['tgt_segments'], batch['src_segments'], batch['tgt_positions']
    )


class TorchTrainer:
  """Model, optimizer and schedule from a jdl translation config; `step(batch)` trains."""

  def __init__(self, config, threads: int):
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    m = config.model
    self.model = TorchTransformer(**m.to_dict())
    opt = config.optimizer
    kw = opt.kwargs
    self.optimizer = torch.optim.Adam(
      self.model.parameters(), lr=opt.learning_rate, betas=(kw.b1, kw.b2), eps=kw.eps, foreach=True
    )
    warmup = max(opt.warmup_steps, 1)
    # optax's join of a linear warm-up and the 'rsqrt' schedule, as a multiplier of the peak.
    self.scheduler = torch.optim.lr_scheduler.LambdaLR(
      self.optimizer, lambda s: s / warmup if s < warmup else (warmup / s) ** 0.5
    )
    self.loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=config.label_smoothing)
    self.vocab = m.vocab_size

  def step(self, batch: dict[str, np.ndarray]) -> float:
    self.model.train()
    batch = {k: torch.from_numpy(np.asarray(v, np.int64)) for k, v in batch.items()}
    logits = self.model(batch)
    loss = self.loss_fn(logits.reshape(-1, self.vocab), batch['tgt_out'].reshape(-1))
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    self.scheduler.step()
    return loss.item()

  @torch.no_grad()
  def greedy(self, src_BxS: np.ndarray, max_len: int) -> np.ndarray:
    """Greedy decoding (the whole prefix recomputed each step: nn.Transformer has no cache)."""
    self.model.eval()
    src = torch.from_numpy(np.asarray(src_BxS, np.int64))
    B, S = src.shape
    src_seg = (src != PAD).long()
    pos = torch.arange(S).expand(B, S)
    memory = self.model.encode(src, src_seg, pos)
    tokens = torch.full((B, 1), BOS, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for _ in range(max_len):
      T = tokens.shape[1]
      logits = self.model.decode(
        tokens, memory, torch.ones(B, T, dtype=torch.long), src_seg, torch.arange(T).expand(B, T)
      )
      nxt = logits[:, -1].argmax(-1)
      nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
      tokens = torch.cat([tokens, nxt[:, None]], 1)
      done |= nxt == EOS
      if done.all():
        break
    out = np.zeros((B, max_len), np.int64)
    out[:, : tokens.shape[1] - 1] = tokens[:, 1:].numpy()
    return out

  def translate(self, tokenizer, sentences: list[str], max_extra_tokens: int) -> list[str]:
    """Greedy translations of `sentences`, in order, in batches of similar length."""
    ids = tokenizer.encode_batch(sentences)
    order = np.argsort([len(x) for x in ids], kind='stable')
    out = [''] * len(sentences)
    for start in range(0, len(order), 64):
      chunk = order[start : start + 64]
      src_BxS = pad_batch([ids[i] for i in chunk])
      max_len = min(src_BxS.shape[1] + max_extra_tokens, len(self.model.positions) - 1)
      tokens_BxL = self.greedy(src_BxS, max_len)
      for row, i in enumerate(chunk):
        out[i] = tokenizer.decode(tokens_BxL[row])
    return out


def fit(
  config, workdir, train, validation: tuple[list[str], list[str]], threads: int
) -> dict[str, float]:
  """Trains the peer on `train` (packed rows) in a new `workdir` as `Trainer.fit` trains jdl's
  model from the same config: the same batches in the same order, the same log and evaluation
  steps, the same stop (the last step, or `max_seconds` of wall time from the start, evaluation
  included). Each evaluation translates `validation` (sources, references) greedily, as the
  translation task's `bleu_hook` does for jdl; the records go to metrics.jsonl, the test scores to
  results.json.
  Returns the last record."""
  workdir = paths.workdir(workdir)
  kwargs = config.data.kwargs
  task = translation.Task(config)  # the config's data (Ding or Bible pairs) and its tokenizer
  tokenizer = task.tokenizer()
  schedule = Schedule.from_config(config, pipeline.num_rows(train))
  trainer = TorchTrainer(config, threads)
  batches = iter(pipeline.train_dataset(train, config.batch_size, config.seed))
  config_lib.write(config, workdir)
  log = MetricWriter(workdir, schedule.total, 0, config.progress_bar)
  extra_tokens = config.decode.max_extra_tokens

  t_start = time.perf_counter()
  step, losses, record = 0, [], {}
  while step < schedule.total:
    losses.append(trainer.step(next(batches)))
    step += 1
    out_of_time = 0 < config.max_seconds <= time.perf_counter() - t_start
    last = step >= schedule.total or out_of_time
    record = {}
    if last or schedule.due(schedule.log, step):
      record['loss'] = float(np.mean(losses))
      losses.clear()
    if last or schedule.due(schedule.eval, step):
      t = time.perf_counter()
      hypotheses = trainer.translate(tokenizer, validation[0], extra_tokens)
      seconds = time.perf_counter() - t
      record.update(translation.bleu_metrics('validation', hypotheses, validation[1], seconds))
    if record:
      record.update(epoch=step / schedule.per_epoch, seconds=time.perf_counter() - t_start)
      log.write(step, record)
    if out_of_time:
      log.message(f'max_seconds={config.max_seconds:g} reached at step {step}')
      break
  log.close()

  n = config.decode.test_sentences
  if n:  # every held-out set jdl's report scores: 'test', and the held-out book where there is one
    result = {'step': step, 'direction': kwargs.direction}
    for split, (sources, references) in task.held_out_sets().items():
      if n > 0:
        sources, references = sources[:n], references[:n]
      hypotheses = trainer.translate(tokenizer, sources, extra_tokens)
      scores = translation.test_results(
        hypotheses, sources, references, beam_size=0, length_penalty=0.0
      )
      translation.print_scores(split, scores)
      if split == 'test':
        result.update(scores)
      else:
        result[split] = scores
    translation.write_results(workdir, result)
  return {'step': step, **record}


def main() -> None:
  """`python -m jdl.transformer.peer_torch CONFIG`: the peer of `jdl bench transformer`. Prints
  one JSON line about itself; then for every line `K` on stdin trains K steps on the config's
  batches (the same ones, in the same order, as jdl's) and prints their seconds and tokens."""
  import json
  import os
  import sys

  config = config_lib.load(sys.argv[1])
  train = ding.load(**config.data.kwargs.to_dict()).train
  trainer = TorchTrainer(config, os.cpu_count())
  batches = iter(pipeline.train_dataset(train, config.batch_size, config.seed))
  print(
    json.dumps(
      {
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'parameters': sum(p.numel() for p in trainer.model.parameters()),
      }
    ),
    flush=True,
  )
  for line in sys.stdin:
    seconds, tokens, losses = [], [], []
    for _ in range(int(line)):
      batch = next(batches)
      t = time.perf_counter()
      losses.append(trainer.step(batch))
      seconds.append(time.perf_counter() - t)
      tokens.append(int((batch['src_segments'] > 0).sum() + (batch['tgt_segments'] > 0).sum()))
    print(json.dumps({'step_seconds': seconds, 'tokens': tokens, 'loss': losses}), flush=True)


if __name__ == '__main__':
  main()
