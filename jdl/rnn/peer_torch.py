"""The peer of `jdl bench lstm`: a character model around PyTorch's `nn.LSTM` on the CPU, same
shape as jdl's (embedding, one LSTM layer, linear read-out), Adam, float32, timed per training
step on the same King James Bible windows.

Run as `python -m jdl.rnn.peer_torch VOCAB EMBED HIDDEN BATCH SEQ WINDOWS.npy`. It prints one
JSON line describing itself, then for every line `K` on stdin runs K training steps and prints
one JSON line with their seconds, so that the parent interleaves rounds of jdl and PyTorch on a
shared machine. Settings are PyTorch's documented CPU ones: torch.set_num_threads(cores), the fused
`nn.LSTM` (oneDNN where PyTorch uses it), `zero_grad(set_to_none=True)` and the foreach Adam; the
parent sets glibc malloc's thresholds in the environment so that large activations are not
returned to the OS and page-faulted back in every step.
"""

import json
import os
import sys

from jdl.bench import common


def main() -> None:
  vocab, embed, hidden, batch, seq = map(int, sys.argv[1:6])
  import numpy as np
  import torch
  from torch import nn

  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)

  class CharLSTM(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(vocab, embed)
      self.lstm = nn.LSTM(embed, hidden, num_layers=1, batch_first=True)
      self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
      out, _ = self.lstm(self.embed(tokens))
      return self.head(out)

  model = CharLSTM().train()
  opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
  windows = np.load(sys.argv[6])  # [N, seq + 1] character ids
  rng = np.random.default_rng(0)
  print(
    json.dumps(
      {
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'mkldnn': torch.backends.mkldnn.is_available(),
        'params': sum(p.numel() for p in model.parameters()),
      }
    ),
    flush=True,
  )

  def prepare():
    return torch.from_numpy(windows[rng.integers(0, len(windows), batch)].astype(np.int64))

  def step(tokens):
    logits = model(tokens[:, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()

  common.serve(step, prepare)


if __name__ == '__main__':
  main()
