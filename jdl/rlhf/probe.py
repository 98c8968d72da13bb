"""Diagnostics of the preference signal (docs/rlhf.md, round 2).

  python -m jdl.rlhf.probe sft RUN PAIRS HELDOUT   linear probe of a language model's frozen
      features: logistic regression on h(chosen) - h(rejected), h the last byte's hidden state
      or the mean over the continuation's bytes, fitted on PAIRS, scored on HELDOUT
  python -m jdl.rlhf.probe rm RUN PAIRS...         a reward-model run's pair accuracy on each
      file (its own pooling), and how often it orders a pair as the labeller's scores do

Continuations are read alone, as the labeller and the reward model read them.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from jdl.data import preferences

BATCH = 200


def _rows(texts, width: int):
  rows = [list(t.encode())[:width] for t in texts]
  tokens = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    tokens[i, : len(r)] = r
  return tokens, np.array([max(len(r), 1) for r in rows], np.int32)


def _batched(fn, tokens, lengths):
  out = [
    fn(jnp.asarray(tokens[i : i + BATCH]), jnp.asarray(lengths[i : i + BATCH]))
    for i in range(0, len(tokens), BATCH)
  ]
  return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *out)


def features(model, texts, width: int = 48) -> dict[str, np.ndarray]:
  """The frozen trunk's hidden states [N, D] of each text (its first `width` bytes, at most the
  model's context): at its last byte and averaged over its bytes."""
  width = min(width, model.cfg.context)

  @jax.jit
  def fn(tokens_BxT, lengths_B):
    h_BxTxD, _ = model.hidden(tokens_BxT)
    real_BxT = jnp.arange(tokens_BxT.shape[1])[None] < lengths_B[:, None]
    last = jnp.take_along_axis(h_BxTxD, (lengths_B - 1)[:, None, None], axis=1)[:, 0]
    mean = (h_BxTxD * real_BxT[..., None]).sum(1) / lengths_B[:, None]
    return {'last': last, 'mean': mean}

  return _batched(fn, *_rows(texts, width))


def probe(model, train_pairs, heldout_pairs, cs=(0.01, 0.1, 1.0)) -> dict:
  """Held-out accuracy of a logistic regression on feature differences, per reading and C."""
  from sklearn.linear_model import LogisticRegression

  diff = {}
  for name, pairs in (('train', train_pairs), ('heldout', heldout_pairs)):
    c = features(model, [p.chosen for p in pairs])
    r = features(model, [p.rejected for p in pairs])
    diff[name] = {k: c[k] - r[k] for k in c}
  result = {}
  for reading, x in diff['train'].items():
    xs = np.concatenate([x, -x])  # both orders: no intercept, no label balance to learn
    ys = np.r_[np.ones(len(x)), np.zeros(len(x))]
    for c in cs:
      fit = LogisticRegression(C=c, max_iter=2000, fit_intercept=False).fit(xs, ys)
      held = float((fit.decision_function(diff['heldout'][reading]) > 0).mean())
      result[f'{reading} C={c:g}'] = held
  return result


def rm_accuracy(run, pairs) -> dict:
  """A reward-model run's share of pairs whose chosen scores higher, and its agreement with the
  labeller's order (p > 0.5 means the labeller's score of chosen was the higher)."""
  from jdl.tasks.rlhf import common

  pooling = run.config.data.get('reward_pooling', 'last')
  width = run.config.data.completion_bytes

  @jax.jit
  def fn(tokens_BxT, lengths_B):
    return common.sequence_scores(run.model, tokens_BxT, lengths_B, pooling)

  chosen = _batched(fn, *_rows([p.chosen for p in pairs], width))
  rejected = _batched(fn, *_rows([p.rejected for p in pairs], width))
  labeller_order = np.array([p.p > 0.5 for p in pairs])
  return {
    'pairs': len(pairs),
    'accuracy': float((chosen > rejected).mean()),
    'agrees_with_labeller_scores': float(((chosen > rejected) == labeller_order).mean()),
  }


def main(argv: list[str]) -> int:
  from jdl.train.run import load_run

  if len(argv) >= 4 and argv[0] == 'sft':
    from jdl.rlhf import policy

    model = policy.load_policy(argv[1])
    result = probe(model, preferences.read(argv[2]), preferences.read(argv[3]))
    for name, acc in result.items():
      print(f'{name:14s} held-out pair accuracy {acc:.4f}')
    return 0
  if len(argv) >= 3 and argv[0] == 'rm':
    run = load_run(argv[1])
    for path in argv[2:]:
      r = rm_accuracy(run, preferences.read(path))
      print(
        f'{path}: {r["pairs"]} pairs, accuracy {r["accuracy"]:.4f}, '
        f"agrees with the labeller's order {r['agrees_with_labeller_scores']:.4f}"
      )
    return 0
  print(__doc__, file=sys.stderr)
  return 2


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
