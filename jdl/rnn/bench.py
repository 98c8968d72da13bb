"""`jdl bench lstm`: training characters/s of a character-level LSTM language model (embedding
64, one LSTM layer of 512 units, linear read-out; batch 64, sequence length 128; Adam, float32)
in jdl against the same model around PyTorch's `nn.LSTM`, on this machine's CPU, in the same run.

Both read the same windows of the King James Bible (jdl.data.text, characters). jdl runs its own
training step: the `rnn_lm` Task's `train_step`, compiled by the loop's `Trainer` as
`jdl train` runs it, with the time scan unrolled `UNROLL` steps per loop iteration. Rounds alternate
jdl and PyTorch, so that both see the same load on a shared machine; medians are reported.

The LSTM layer runs as `jdl train` runs it by default (the rnn_lm task's `model.lstm_kernel`
'auto': oneDNN's LSTM primitives, jdl.models.lstm_ffi.onednn, as PyTorch runs them, where they
build); `python -m jdl.rnn.bench [--quick] --kernel K` runs another ('scan': the lax.scan cell,
'ffi': the fused XLA:CPU kernel of jdl.models.lstm_ffi, 'onednn'); the header line says which
ran.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from jdl.bench import common
from jdl.tasks.rnn_lm import LSTM_KERNEL

SHAPE = dict(embed=64, hidden=512, batch=64, seq=128)
# One LSTM step per loop iteration: at this size (64 x 512 -> 2048 products) 8 steps per
# iteration measured about 30% slower a training step on this machine's 2 cores.
UNROLL = 1
KERNEL_WORDS = {'onednn': 'oneDNN LSTM primitives', 'ffi': 'fused XLA:CPU LSTM kernel'}


def _config(vocab: int, unroll: int, kernel: str = LSTM_KERNEL):
  import ml_collections

  from jdl import config as config_lib
  from jdl import paths

  c = config_lib.load(f'{paths.EXPERIMENTS}/rnn/char_bible.py:lstm')
  c.model.update(
    hidden_size=SHAPE['hidden'], embed_dim=SHAPE['embed'], vocab_size=vocab, unroll=unroll
  )
  with c.unlocked():
    c.model.lstm_kernel = kernel
  c.optimizer = ml_collections.ConfigDict(
    dict(
      c.optimizer.to_dict(),
      learning_rate=1e-3,
      schedule='constant',
      warmup_steps=0,
      grad_clip_norm=0.0,
    )
  )  # as the PyTorch peer
  c.batch_size = SHAPE['batch']
  c.mesh.update(data=1, fsdp=1, tensor=1)
  return c


def windows_and_vocab(n: int = 4096) -> tuple[np.ndarray, int]:
  from jdl.data import text

  ids = text.encoded('kjv', 'train', 'char')
  length = SHAPE['seq'] + 1
  starts = np.random.default_rng(0).integers(0, len(ids) - length, n)
  return ids[starts[:, None] + np.arange(length)].astype(np.int32), text.make_tokenizer(
    'char'
  ).n_vocab


def kernel_used(kernel: str) -> str:
  """What the LSTM layer runs with `model.lstm_kernel = kernel` on this CPU, in words."""
  from jdl.models.rnn import FUSED_LSTM_KERNELS
  from jdl.train.errors import UsageError

  if kernel == 'scan':
    return 'lax.scan LSTM (lstm_kernel scan)'
  for name, (module, _) in FUSED_LSTM_KERNELS.items():  # 'auto' takes the first available
    if kernel in (name, 'auto') and module.available():
      return f'{KERNEL_WORDS[name]} (lstm_kernel {kernel}, {module.threads()} threads)'
    if kernel == name:
      reason = module.unavailable_reason()
      raise UsageError(f'--kernel {name}: the kernel is unavailable ({reason})')
  reasons = '; '.join(f'{n}: {m.unavailable_reason()}' for n, (m, _) in FUSED_LSTM_KERNELS.items())
  return f'lax.scan LSTM (lstm_kernel auto; {reasons})'


def main(quick: bool = False, kernel: str = LSTM_KERNEL) -> int:
  rounds, per_round = (2, 3) if quick else (5, 3)
  s = SHAPE
  windows, vocab = windows_and_vocab()
  chars = s['batch'] * s['seq']
  # Matmul FLOPs of one training step (3 x forward): input projection, recurrent product and
  # read-out per character; the gates' elementwise work is not counted.
  h, e = s['hidden'], s['embed']
  flops_per_step = 3 * 2 * chars * (e * 4 * h + h * 4 * h + h * vocab)
  print(
    f'char LSTM: embedding {e}, 1 x LSTM {h}, vocab {vocab}, batch {s["batch"]}, sequence '
    f'{s["seq"]}, float32, Adam; {flops_per_step / 1e9:.1f} GFLOP per step (matmuls); '
    f'{common.machine()}; {common.today()}; {kernel_used(kernel)}',
    flush=True,
  )
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'windows.npy')
    np.save(path, windows)
    peer = common.Peer(
      'jdl.rnn.peer_torch',
      [str(vocab), str(e), str(h), str(s['batch']), str(s['seq']), path],
      env=common.TORCH_ENV,
    )
    info = peer.info
    jdl = common.JdlSteps(
      _config(vocab, UNROLL, kernel),
      lambda rng: {'tokens': windows[rng.integers(0, len(windows), s['batch'])]},
    )
    jdl_first = jdl.steps(2)[1]  # compilation and first touches, not timed
    torch_first = peer.steps(2)
    jdl_times, torch_times, peak = common.alternate(
      lambda k: jdl.steps(k)[0], peer, rounds, per_round
    )
    peer.close()
  print(
    f'torch {info["torch"]} ({info["threads"]} threads, oneDNN available: '
    f'{info["mkldnn"]}); parameters jdl {jdl.trainer.num_params:,}, torch {info["params"]:,} '
    f'(PyTorch keeps two LSTM biases); float32 matmul peak (2048^3 with JAX, best of the run): '
    f'{peak / 1e9:.1f} GFLOP/s; first losses jdl {jdl_first[0]:.3f}, torch '
    f'{torch_first["loss"][0]:.3f} (ln {vocab} = {np.log(vocab):.3f})'
  )
  common.print_comparison(
    'nn.LSTM (PyTorch)',
    jdl_times,
    torch_times,
    units_per_step=chars,
    unit='characters',
    flops_per_step=flops_per_step,
    peak=peak,
    flops_label='matmul FLOP/s vs measured peak',
    stretch=1.5,
  )
  return 0


if __name__ == '__main__':
  import argparse

  from jdl.models.rnn import LSTM_KERNELS

  parser = argparse.ArgumentParser(description='jdl bench lstm with a chosen LSTM kernel')
  parser.add_argument('--quick', action='store_true', help='2 rounds instead of 5')
  parser.add_argument('--kernel', choices=LSTM_KERNELS, default=LSTM_KERNEL)
  args = parser.parse_args()
  try:
    raise SystemExit(main(args.quick, args.kernel))
  except ValueError as e:  # UsageError
    parser.exit(2, f'error: {e}\n')
