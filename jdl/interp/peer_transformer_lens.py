"""The same per-head direct logit attribution and activation patching as jdl.interp.patching,
computed by TransformerLens 4.x (PyTorch) on the same weights: the check of jdl's tools against
the library the field uses, and the peer of `jdl bench ioi`.

The weights travel as a Hugging Face GPT-2 folder (jdl.models.hf_gpt2.save: `config.json` +
`model.safetensors`), read by `transformers.GPT2LMHeadModel` and wrapped in TransformerLens'
`TransformerBridge` (`boot_transformers(folder, hf_model=...)`), all from local files.

**Weight processing: none, on both sides.** `boot_transformers` keeps the Hugging Face weights
as they are (no folded LayerNorm, no centred writing weights or unembedding; this module never
calls `enable_compatibility_mode`), and jdl's tools read jdl's own weights. The final LayerNorm
is therefore applied explicitly, with jdl's definition (jdl.interp.patching):

    DLA(l, h) = ((c - mean(c)) / sigma) . (gamma * (W_U[:, IO] - W_U[:, S])),
    c = z_{l,h}[end] W_O^{l,h}

where the centring and the division by the clean run's cached scale sigma
(`ln_final.hook_scale` = sqrt(var + eps)) are TransformerLens' `ActivationCache.apply_ln_to_stack`
on the per-head stack of `stack_head_results` (hook_z times W_O), and gamma is the final
LayerNorm's weight, multiplied in here because no folding put it into W_U. The product equals
jdl's c . u / sigma with the centred direction u = gamma * d - mean(gamma * d).
(`ActivationCache.logit_attrs` is not used: without folding it would leave gamma out.)

**Patching** is TransformerLens' `patching.get_act_patch_attn_head_out_all_pos` (a
`run_with_hooks` per layer and head on `blocks.{l}.attn.hook_z`), given the clean tokens as the
run and the corrupted run's cache as the source: noising, as jdl's `patch_heads`. Its metric is
the mean logit difference at each prompt's `end`, normalised as jdl's
(LD_patched - LD_clean) / (LD_clean - LD_corrupted).

The bridge needs a Hugging Face tokenizer object; it is GPT-2's BPE from the files jdl already
installs (jdl.data.tokenizers), and is never used: every call here takes token ids.

  python -m jdl.interp.peer_transformer_lens FOLDER PROMPTS.npz   (the benchmark's peer:
  jdl.bench.common.Peer; one step is one whole head sweep on the prompts of PROMPTS.npz)
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

import numpy as np


def _tokenizer():
  """GPT-2's tokenizer as transformers reads it, from jdl's offline BPE files. Saved and read
  back, because the bridge rebuilds a tokenizer from its `name_or_path`."""
  import transformers

  from jdl.data import tokenizers

  files = tokenizers.gpt2_files()
  fast = transformers.GPT2TokenizerFast(
    vocab_file=str(files['encoder.json']), merges_file=str(files['vocab.bpe'])
  )
  with tempfile.TemporaryDirectory() as folder:
    fast.save_pretrained(folder)
    return transformers.AutoTokenizer.from_pretrained(folder, add_bos_token=True)


def load(folder):
  """A TransformerBridge over the GPT-2 folder (float32, CPU, eager attention, eval mode), with
  the weights as they are (module docstring)."""
  import transformers
  from transformer_lens.model_bridge import TransformerBridge

  folder = pathlib.Path(folder)
  hf_model = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation='eager')
  hf_model.eval()
  bridge = TransformerBridge.boot_transformers(
    str(folder), hf_model=hf_model, tokenizer=_tokenizer(), device='cpu'
  )
  bridge.eval()
  return bridge


def _tensor(x):
  import torch

  return torch.as_tensor(np.asarray(x), dtype=torch.long)


def _ln_final_weight(bridge):
  # The bridge's final norm wraps GPT-2's ln_f; its weight is gamma, unfolded.
  return bridge.ln_final.original_component.weight


def direct_logit_attribution(bridge, tokens_BxT, end_B, io_B, s_B) -> np.ndarray:
  """Per-head direct logit attribution [B, L, H] float64, from TransformerLens' cache
  (module docstring: jdl's definition, no weight processing)."""
  import torch

  cfg = bridge.cfg
  tokens, end, io, s = (_tensor(a) for a in (tokens_BxT, end_B, io_B, s_B))
  b = torch.arange(tokens.shape[0])
  with torch.no_grad():
    keep = lambda name: name.endswith('attn.hook_z') or name == 'ln_final.hook_scale'
    _, cache = bridge.run_with_cache(tokens, names_filter=keep)
    # [L*H, B, T, D]: each head's z W_O, centred and divided by the final LayerNorm's scale
    stack = cache.stack_head_results(layer=-1, apply_ln=True)
    at_end_CxBxD = stack[:, b, end]
    d_BxD = (bridge.W_U[:, io] - bridge.W_U[:, s]).T
    attr_CxB = (at_end_CxBxD * (_ln_final_weight(bridge) * d_BxD)).sum(-1)
  attr = attr_CxB.double().numpy().reshape(cfg.n_layers, cfg.n_heads, -1)
  return attr.transpose(2, 0, 1)


def _logit_diff_metric(end_B, io_B, s_B):
  import torch

  end, io, s = (_tensor(a) for a in (end_B, io_B, s_B))
  b = torch.arange(len(end))

  def mean_logit_diff(logits_BxTxV):
    final_BxV = logits_BxTxV[b, end]
    return (final_BxV[b, io] - final_BxV[b, s]).mean()

  return mean_logit_diff


def patch_heads(bridge, clean_BxT, corrupted_BxT, end_B, io_B, s_B) -> dict[str, np.ndarray]:
  """Noising each head's z at every position, by TransformerLens' own patching function:
  {'effect', 'patched'} [L, H] and the unpatched means {'clean', 'corrupted'}, as
  jdl.interp.patching.Patching."""
  import torch
  from transformer_lens import patching

  clean, corrupted = _tensor(clean_BxT), _tensor(corrupted_BxT)
  metric = _logit_diff_metric(end_B, io_B, s_B)
  with torch.no_grad():
    keep = lambda name: name.endswith('attn.hook_z')
    bad_logits, bad_cache = bridge.run_with_cache(corrupted, names_filter=keep)
    ld_bad = float(metric(bad_logits))
    ld_clean = float(metric(bridge(clean)))
    # TransformerLens' names: the run is its `corrupted_tokens`, the source its `clean_cache`;
    # here the run is clean and the source corrupted (noising).
    patched = patching.get_act_patch_attn_head_out_all_pos(bridge, clean, bad_cache, metric)
  patched = patched.double().numpy()
  return {
    'effect': (patched - ld_clean) / (ld_clean - ld_bad),
    'patched': patched,
    'clean': np.float64(ld_clean),
    'corrupted': np.float64(ld_bad),
  }


def _fastest_threads(bridge, tokens_BxT) -> int:
  """1 or every core, whichever runs a forward pass faster (best of 3): on a shared machine
  PyTorch's threads wait for each other, and one thread was several times faster here."""
  import time

  import torch

  best = {}
  for threads in sorted({1, os.cpu_count() or 1}):
    torch.set_num_threads(threads)
    times = []
    with torch.no_grad():
      for _ in range(3):
        t = time.perf_counter()
        bridge(tokens_BxT)
        times.append(time.perf_counter() - t)
    best[threads] = min(times)
  return min(best, key=best.get)


def main(argv: list[str]) -> int:
  """The benchmark's peer: FOLDER PROMPTS.npz (tokens, corrupted, end, io, s)."""
  os.environ.setdefault('TQDM_DISABLE', '1')  # the patching loop's progress bar
  import importlib.metadata

  import torch

  from jdl.bench import common

  folder, prompts = argv
  data = dict(np.load(prompts))
  bridge = load(folder)
  args = [data[k] for k in ('tokens', 'corrupted', 'end', 'io', 's')]
  torch.set_num_threads(_fastest_threads(bridge, _tensor(data['tokens'])))
  # the first touches, not timed; its effects and attributions are compared with jdl's
  first = patch_heads(bridge, *args)
  info = {
    'torch': torch.__version__,
    'transformer_lens': importlib.metadata.version('transformer-lens'),
    'threads': torch.get_num_threads(),
    'effect': first['effect'].tolist(),
    'dla': direct_logit_attribution(bridge, *args[:1], *args[2:]).tolist(),
  }
  print(json.dumps(info), flush=True)
  common.serve(lambda _: float(patch_heads(bridge, *args)['effect'].sum()))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
