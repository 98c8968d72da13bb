"""The IOI circuit of a GPT, found as Wang et al. 2022 found GPT-2 small's, and judged by their
criteria.

    how well:     accuracy and logit difference, on training or held-out names and templates
    who:          path patching in the paper's order (`find`):
                    heads -> logits                           name movers (attending to IO),
                                                              S suppression (attending to S),
                                                              negative name movers
                    heads -> name movers' queries at END      S-inhibition heads
                    heads -> S-inhibition heads' values at S2 induction / duplicate-token heads
                    heads -> induction heads' keys at S1+1    previous-token heads
                  each class also described by where its heads attend
    how faithful: the circuit alone, every other head mean-ablated (its mean output over the
                  p_ABC prompts of the same template, per position): F(C) / F(M); completeness
                  (F(C \\ K) against F(M \\ K) for each class K); minimality (what removing each
                  head from the circuit costs)

A head joins a class when its path effect is at most -`threshold` (a fraction of the clean minus
corrupted logit difference: -0.1 means patching that one path loses a tenth of it); negative name
movers are the heads whose direct path has effect >= +`threshold`. A head may be in two classes:
a small model's head that attends to S at END can lower S's logit directly (S suppression, a
class the paper's GPT-2 does not need) and also steer a name mover's query (S-inhibition). The
maps of every effect are kept, so a figure shows what the threshold cut.

Differences from the paper, at this size: its circuit heads act at chosen positions only; here a
circuit head is kept at every position. Its minimality search picks the set K for each head
greedily; here K is empty (the cost of removing the head alone).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jdl.data import ioi
from jdl.data.tokenizers import Tokenizer
from jdl.interp import patching
from jdl.interp.path_patching import path_patch_heads
from jdl.models import hooks
from jdl.models.gpt import GPT
from jdl.models.hooks import Patch

Head = tuple[int, int]
CLASSES = (
  'name mover',
  'S suppression',
  'negative name mover',
  'S-inhibition',
  'induction',
  'duplicate token',
  'previous token',
)


@dataclasses.dataclass(frozen=True)
class Data:
  """Clean prompts and their p_ABC corruptions, as arrays for the analysis."""

  clean: ioi.Prompts
  bad: ioi.Prompts

  @property
  def args(self) -> tuple:
    c = self.clean
    return (c.tokens, self.bad.tokens, c.end, c.io, c.s)


SPLITS = ('train', 'held')


def prompt_data(
  tokenizer: Tokenizer, n: int, seed: int = 0, names: str = 'train', templates: str = 'train'
) -> Data:
  """n prompts and their corruptions, with names and templates from the IOI training text's
  ('train') or from those it holds out ('held'; jdl.data.ioi's default split). Prompts of the
  training names and templates are new combinations, not necessarily sentences seen in training.
  A model trained from scratch has never seen the held-out names, so their embeddings are
  untrained: GPT-2 small knows all of them."""
  for what, split in (('names', names), ('templates', templates)):
    if split not in SPLITS:
      raise ValueError(f"{what}: 'train' or 'held', not {split!r}")
  train, held = ioi.held_out(ioi.Vocabulary.single(tokenizer))
  pick = {'train': train, 'held': held}
  vocab = dataclasses.replace(pick[templates], names=pick[names].names)
  clean = ioi.prompts(tokenizer, n, seed=seed, vocab=vocab)
  return Data(clean, ioi.corrupted(tokenizer, clean, seed=seed + 1))


def evaluate(model: GPT, prompts: ioi.Prompts) -> dict:
  """How well the model does the task: mean logit difference, the share of prompts where IO
  beats S, where IO is the top token of the whole vocabulary, and IO's mean probability."""
  logits = np.asarray(model(jnp.asarray(prompts.tokens)), np.float64)
  final = logits[np.arange(len(prompts)), prompts.end]
  ld = final[np.arange(len(prompts)), prompts.io] - final[np.arange(len(prompts)), prompts.s]
  p = np.exp(final - final.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return {
    'prompts': len(prompts),
    'logit_diff': float(ld.mean()),
    'logit_diff_std': float(ld.std()),
    'io_over_s': float((ld > 0).mean()),
    'top1': float((final.argmax(-1) == prompts.io).mean()),
    'p_io': float(p[np.arange(len(prompts)), prompts.io].mean()),
  }


def attention_stats(model: GPT, prompts: ioi.Prompts) -> dict[str, np.ndarray]:
  """Mean attention [L, H] from END to IO, S1 and S2; from S2 to S1 and S1+1; from S1+1 to S1."""
  L = model.cfg.n_layer
  names = [f'blocks.{i}.attn.pattern' for i in range(L)]
  _, cache = hooks.run_with_cache(model, jnp.asarray(prompts.tokens), names=names)
  pattern = np.stack([np.asarray(cache[n], np.float64) for n in names], 1)  # [B, L, H, T, S]
  b = np.arange(len(prompts))
  end, io, s1, s2 = prompts.end, prompts.io_pos, prompts.s1_pos, prompts.s2_pos

  def mean(q, k):
    return pattern[b, :, :, q, k].mean(0)

  return {
    'end_to_io': mean(end, io),
    'end_to_s1': mean(end, s1),
    'end_to_s2': mean(end, s2),
    's2_to_s1': mean(s2, s1),
    's2_to_s1_next': mean(s2, s1 + 1),
    's1_next_to_s1': mean(s1 + 1, s1),
  }


def _selected(effect_LxH: np.ndarray, threshold: float, sign: int = -1) -> list[Head]:
  hit = np.argwhere(sign * effect_LxH >= threshold)
  return sorted((int(layer), int(head)) for layer, head in hit)


def find(model: GPT, data: Data, threshold: float = 0.1) -> dict:
  """Path patching in the paper's order; returns the classes, the effect maps and the attention
  statistics (module docstring)."""
  args, c = data.args, data.clean
  effects = {'logits': np.asarray(path_patch_heads(model, *args).effect)}
  stats = attention_stats(model, c)

  def to_io(head: Head) -> bool:  # attends at END more to the indirect object than to S
    return stats['end_to_io'][head] >= stats['end_to_s1'][head] + stats['end_to_s2'][head]

  direct = _selected(effects['logits'], threshold)
  movers = [h for h in direct if to_io(h)]
  classes = {
    'name mover': movers,
    'S suppression': [h for h in direct if not to_io(h)],
    'negative name mover': _selected(effects['logits'], threshold, sign=+1),
  }
  s_inh, induction, duplicate, previous = [], [], [], []
  if movers:
    effects['name mover queries'] = np.asarray(
      path_patch_heads(model, *args, tuple(movers), 'q', c.end).effect
    )
    s_inh = [h for h in _selected(effects['name mover queries'], threshold) if h not in movers]
  if s_inh:
    effects['S-inhibition values'] = np.asarray(
      path_patch_heads(model, *args, tuple(s_inh), 'v', c.s2_pos).effect
    )
    for head in _selected(effects['S-inhibition values'], threshold):
      if head in movers or head in s_inh:
        continue
      # duplicate-token heads look at the earlier S itself, induction heads at the token after it
      dup, ind = stats['s2_to_s1'][head], stats['s2_to_s1_next'][head]
      (duplicate if dup >= ind else induction).append(head)
  if induction:
    effects['induction keys'] = np.asarray(
      path_patch_heads(model, *args, tuple(induction), 'k', c.s1_pos + 1).effect
    )
    taken = {*movers, *s_inh, *induction, *duplicate}
    previous = [h for h in _selected(effects['induction keys'], threshold) if h not in taken]
  classes.update(
    {
      'S-inhibition': s_inh,
      'induction': induction,
      'duplicate token': duplicate,
      'previous token': previous,
    }
  )
  return {'classes': classes, 'effects': effects, 'attention': stats, 'threshold': threshold}


def _template_means(model: GPT, prompts: ioi.Prompts) -> dict[str, jax.Array]:
  """Each head's output z averaged over the prompts of the same template, per position, given
  back per prompt: {blocks.i.attn.z: [B, T, H, K]}."""
  names = [f'blocks.{i}.attn.z' for i in range(model.cfg.n_layer)]
  _, cache = hooks.run_with_cache(model, jnp.asarray(prompts.tokens), names=names)
  out = {}
  for name in names:
    z = np.asarray(cache[name], np.float32)
    means = {t: z[prompts.template == t].mean(0) for t in np.unique(prompts.template)}
    out[name] = jnp.asarray(np.stack([means[t] for t in prompts.template]))
  return out


def mean_ablated(model: GPT, data: Data, keep: set[Head] | None, means=None) -> float:
  """Mean logit difference of the clean prompts with every head outside `keep` replaced by its
  p_ABC mean (keep=None: nothing ablated, the model itself)."""
  c = data.clean
  if keep is None:
    return float(patching.logit_diffs(model, c.tokens, c.end, c.io, c.s).mean())
  means = means if means is not None else _template_means(model, data.bad)
  L, H = model.cfg.n_layer, model.cfg.n_head
  patches = {}
  for i in range(L):
    ablated = [h for h in range(H) if (i, h) not in keep]
    if ablated:
      patches[f'blocks.{i}.attn.z'] = Patch(means[f'blocks.{i}.attn.z'], head=ablated)
  return float(patching.logit_diffs(model, c.tokens, c.end, c.io, c.s, patches).mean())


def judge(model: GPT, data: Data, classes: dict[str, list[Head]]) -> dict:
  """Faithfulness, completeness per class, minimality per head (module docstring)."""
  means = _template_means(model, data.bad)
  L, H = model.cfg.n_layer, model.cfg.n_head
  every = {(i, h) for i in range(L) for h in range(H)}
  circuit = {h for heads in classes.values() for h in heads}
  f_model = mean_ablated(model, data, None)
  f_circuit = mean_ablated(model, data, circuit, means)
  out = {
    'F(M)': f_model,
    'F(C)': f_circuit,
    'F(empty)': mean_ablated(model, data, set(), means),
    'faithfulness': f_circuit / f_model,
    'heads': len(circuit),
    'completeness': {},
    'minimality': {},
  }
  for name, heads in classes.items():
    if heads:
      k = set(heads)
      out['completeness'][name] = {
        'F(C-K)': mean_ablated(model, data, circuit - k, means),
        'F(M-K)': mean_ablated(model, data, every - k, means),
      }
  for head in sorted(circuit):
    without = mean_ablated(model, data, circuit - {head}, means)
    out['minimality'][f'{head[0]}.{head[1]}'] = (f_circuit - without) / abs(f_circuit)
  return out


def to_json(found: dict) -> dict:
  """`find`'s result with arrays as nested lists."""
  return {
    'threshold': found['threshold'],
    'classes': {k: [list(h) for h in v] for k, v in found['classes'].items()},
    'effects': {k: np.round(v, 5).tolist() for k, v in found['effects'].items()},
    'attention': {k: np.round(v, 5).tolist() for k, v in found['attention'].items()},
  }
