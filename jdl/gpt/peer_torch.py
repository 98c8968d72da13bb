"""The peer of `jdl bench gpt`: Hugging Face transformers' GPT2LMHeadModel in PyTorch on the CPU,
same shape, AdamW, float32, timed per training step.

Run as `python -m jdl.gpt.peer_torch N_LAYER N_HEAD D_MODEL CONTEXT BATCH VOCAB`. It builds the
model, prints one JSON line describing itself, then for every line `K` on stdin runs K training
steps and prints one JSON line with their seconds, so that the parent can interleave rounds of
jdl and PyTorch on a shared machine. Settings are PyTorch's documented CPU ones:
torch.set_num_threads(cores), the SDPA attention kernel, `zero_grad(set_to_none=True)` and the
foreach AdamW; the parent sets glibc malloc's thresholds in the environment so that large
activations are not returned to the OS and page-faulted back in every step.
"""

import json
import os
import sys

from jdl.bench import common


def main() -> None:
  n_layer, n_head, d_model, context, batch, vocab = map(int, sys.argv[1:7])
  import torch
  import transformers

  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  config = transformers.GPT2Config(
    vocab_size=vocab,
    n_positions=context,
    n_embd=d_model,
    n_layer=n_layer,
    n_head=n_head,
    resid_pdrop=0.0,
    embd_pdrop=0.0,
    attn_pdrop=0.0,
    bos_token_id=None,
    eos_token_id=None,
  )
  config._attn_implementation = 'sdpa'  # PyTorch's fused scaled_dot_product_attention
  model = transformers.GPT2LMHeadModel(config).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, foreach=True)
  tokens = torch.randint(0, vocab, (batch, context + 1))
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  print(
    json.dumps(
      {
        'torch': torch.__version__,
        'transformers': transformers.__version__,
        'threads': torch.get_num_threads(),
        'attention': model.config._attn_implementation,
      }
    ),
    flush=True,
  )

  def step(_):
    logits = model(input_ids=inputs).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()

  common.serve(step)


if __name__ == '__main__':
  main()
