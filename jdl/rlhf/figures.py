"""`jdl figures rlhf`: learning from preferences at this machine's scale.

  rlhf_frontier.png          the labeller's mean p(positive) against KL(policy || SFT) per
                             continuation: PPO over training (its validation rollouts, one point
                             per evaluation), each run's `jdl rlhf eval` on the held-out test
                             prompts (SFT, PPO, and DPO at each beta): the reward-KL frontier
  rlhf_rm_accuracy.png       the reward model's pair accuracy over training, on its training
                             batches and on the held-out pairs
  rlhf_overoptimisation.png  over PPO training, the reward model's score (the proxy it
                             maximises) and the labeller's p(positive) (the gold score) against
                             the step and against KL:
                             where the proxy keeps rising and the gold score stops, the policy is
                             exploiting the reward model (Gao et al. 2022)
  rlhf_rloo_trl.png          jdl's RLOO against trl's RLOOTrainer at equal rollouts (drawn when
                             `python -m jdl.rlhf.peer_trl rloo --out ...` has written its JSON)

Runs are read with jdl.train.run.read_metrics and the eval.json that `jdl rlhf eval` writes;
a missing run or evaluation is a FileNotFoundError naming the command that makes it.
"""

from __future__ import annotations

import json
import os

from jdl import plots
from jdl.train.run import read_metrics

EVAL_COMMAND = 'jdl rlhf eval --workdir {}'


def read_eval(workdir) -> dict:
  path = os.path.join(str(workdir), 'eval.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no evaluation in {path}: run `{EVAL_COMMAND.format(workdir)}`')
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _series(history: list[dict], x: str, *ys: str) -> tuple[list, ...]:
  rows = [h for h in history if x in h and all(y in h for y in ys)]
  return tuple([h[k] for h in rows] for k in (x, *ys))


def _ppo_curve(ppo, prefix: str) -> tuple[list, list, list, list]:
  """(steps, kl, rm score, labeller p) over PPO training: its validation rollouts' metrics when
  the run scored them with the labeller, else `jdl rlhf eval --step S` of its checkpoints
  (eval_stepS.json, held-out prompts) beside the logged reward-model score nearest S."""
  history = read_metrics(ppo)
  for pre in (prefix, ''):
    steps, kl, rm, gold = _series(
      history, 'step', f'{pre}kl', f'{pre}rm_score', f'{pre}labeller_p_positive'
    )
    if steps:
      return steps, kl, rm, gold
  evals = sorted(
    (
      read_eval_file(os.path.join(str(ppo), name))
      for name in os.listdir(str(ppo))
      if name.startswith('eval_step') and name.endswith('.json')
    ),
    key=lambda r: r['step'],
  )
  logged = [h for h in history if f'{prefix}rm_score' in h] or [
    h for h in history if 'rm_score' in h
  ]
  key = f'{prefix}rm_score' if logged and f'{prefix}rm_score' in logged[0] else 'rm_score'
  if len(evals) < 2 or not logged:
    raise FileNotFoundError(
      f'{ppo}: no labeller score over PPO training: evaluate its checkpoints with '
      f'`jdl rlhf eval --workdir {ppo} --step S` (steps from `ls {ppo}/checkpoints`)'
    )
  nearest = lambda s: min(logged, key=lambda h: abs(h['step'] - s))[key]
  return (
    [r['step'] for r in evals],
    [r['kl_nats'] for r in evals],
    [nearest(r['step']) for r in evals],
    [r['p_positive'] for r in evals],
  )


def read_eval_file(path) -> dict:
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def render(outdir, sft, rm, ppo, rloo_json=None, **dpo_runs) -> list:
  """The three figures of the module doc, and rlhf_rloo_trl.png when `rloo_json` (default
  runs/rlhf/peer_trl/rloo.json) exists; `dpo_runs` maps 'dpo_b<beta>' to a run or None."""
  plt = plots.pyplot()
  files = []
  dpo = {k[len('dpo_b') :]: v for k, v in dpo_runs.items() if v is not None}
  if not dpo:
    raise FileNotFoundError(
      'no DPO run: train one with `jdl train --config experiments/rlhf/dpo.py:b0.1 '
      '--workdir runs/rlhf/dpo_b0.1` and evaluate it with `jdl rlhf eval`'
    )
  sft_eval, ppo_eval = read_eval(sft), read_eval(ppo)
  dpo_evals = {}
  for beta, run in sorted(dpo.items(), key=lambda x: float(x[0])):
    try:
      dpo_evals[beta] = read_eval(run)
    except FileNotFoundError as e:  # a DPO run still training: drawn without it, and said
      print(f'rlhf figure: without DPO beta={beta}: {e}')
  if not dpo_evals:
    raise FileNotFoundError(
      'no evaluated DPO run: `jdl rlhf eval --workdir runs/rlhf/dpo_b<beta>` after training'
    )
  steps, kl, rm_score, gold = _ppo_curve(ppo, 'validation_')

  # ---- the frontier
  fig, ax = plt.subplots(figsize=(6.4, 4.6))
  # One point per evaluated step, darker later: the KL penalty holds the KL in a band, so a line
  # in step order would zig-zag.
  ax.scatter(kl, gold, c=steps, cmap='Blues', vmin=-max(steps) / 3, s=18, label='PPO over training')

  def point(result, label, color, marker):
    lo, hi = result['p_positive_ci95']
    p = result['p_positive']
    ax.errorbar(
      [result['kl_nats']],
      [p],
      yerr=[[p - lo], [hi - p]],
      fmt=marker,
      color=color,
      ms=8,
      capsize=3,
      label=label,
    )

  point(sft_eval, 'SFT (held-out test prompts)', 'black', 's')
  target = sft_eval['p_positive'] + 0.2  # the firm target (docs/rlhf.md)
  ax.axhline(target, color='gray', ls='--', lw=1, label='SFT + 0.2 (the target)')
  point(ppo_eval, 'PPO final (held-out)', 'tab:blue', 'D')
  for i, (beta, result) in enumerate(dpo_evals.items()):
    point(
      result, f'DPO beta={beta} (held-out)', plt.get_cmap('autumn')(i / max(1, len(dpo_evals))), 'o'
    )
  ax.set(
    xlabel='KL(policy || SFT) per 48-byte continuation (nats)',
    ylabel="labeller's mean p(positive)",
    title='Reward against KL: PPO and DPO from the same preferences',
  )
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  files.append(plots.save(fig, os.path.join(outdir, 'rlhf_frontier.png'), dpi=120))

  # ---- the reward model's accuracy
  history = read_metrics(rm)
  fig, ax = plt.subplots(figsize=(6.0, 4.0))
  s, acc = _series(history, 'step', 'accuracy')
  vs, vacc = _series(history, 'step', 'validation_accuracy')
  if not s and not vs:
    raise FileNotFoundError(f'{rm}/metrics.jsonl holds no accuracy: is it a reward-model run?')
  ax.plot(s, acc, color='tab:blue', alpha=0.6, label='training batches')
  ax.plot(vs, vacc, '-o', color='tab:orange', label='held-out pairs (validation prompts)')
  ax.axhline(0.5, color='gray', ls=':', lw=1)
  ax.set(xlabel='step', ylabel='pair accuracy', title='Reward model (Bradley-Terry)')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  files.append(plots.save(fig, os.path.join(outdir, 'rlhf_rm_accuracy.png'), dpi=120))

  # ---- over-optimisation
  # Against the step (the proxy and the gold score side by side as training goes) and against
  # the KL (Gao et al.'s axis; points, since the penalty keeps the KL in a band).
  fig, (by_step, by_kl) = plt.subplots(1, 2, figsize=(10.5, 4.2))
  for ax, x, xlabel, style in (
    (by_step, steps, 'PPO step', '-'),
    (by_kl, kl, 'KL(policy || SFT) per continuation (nats)', ''),
  ):
    right = ax.twinx()
    ax.plot(x, rm_score, f'{style}o', ms=4, color='tab:purple', label='reward model score (proxy)')
    right.plot(x, gold, f'{style}s', ms=4, color='tab:green', label='labeller p(positive) (gold)')
    right.axhline(sft_eval['p_positive'], color='black', ls=':', lw=1, label='SFT (labeller)')
    ax.set(xlabel=xlabel, ylabel='reward model score')
    right.set_ylabel("labeller's p(positive)")
    ax.grid(alpha=0.3)
  handles = by_step.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
  by_kl.legend(handles, [h.get_label() for h in handles], loc='lower right', fontsize=8)
  fig.suptitle('PPO over training: the proxy and the gold score (held-out prompts)')
  fig.tight_layout()
  files.append(plots.save(fig, os.path.join(outdir, 'rlhf_overoptimisation.png'), dpi=120))
  return files + rloo_trl(outdir, rloo_json)


def rloo_trl(outdir, path=None) -> list:
  """rlhf_rloo_trl.png: jdl's RLOO and trl's RLOOTrainer at equal rollouts (the JSON of
  `python -m jdl.rlhf.peer_trl rloo`): the reward model's score against KL per continuation, and
  the total reward and the KL against rollouts, mean over seeds with the seed spread (one
  standard deviation) as bands and bars. No JSON: no figure, and the command that makes it."""
  import numpy as np

  from jdl.rlhf import peer_trl_rloo

  path = path or peer_trl_rloo.OUT
  if not os.path.isfile(path):
    print(f'rlhf figure: no rlhf_rloo_trl.png: {path} is missing; `{peer_trl_rloo.COMMAND}`')
    return []
  with open(path, encoding='utf-8') as f:
    result = json.load(f)
  plt = plots.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2))
  x = np.asarray(result['rollouts'])
  sides = (('jdl', 'jdl RLOO (jdl train step)', 'tab:blue'), ('trl', 'trl', 'tab:orange'))
  for side, label, color in sides:
    label = f'trl {result["trl_version"]} RLOOTrainer' if side == 'trl' else label
    curves = {k: (np.asarray(v['mean']), np.asarray(v['std'])) for k, v in result[side].items()}
    (kl, kl_sd), (rm, rm_sd) = curves['kl'], curves['rm_score']
    bars = dict(xerr=kl_sd, yerr=rm_sd, elinewidth=0.5, alpha=0.7)
    axes[0].errorbar(kl, rm, fmt='-o', ms=2, lw=1, color=color, label=label, **bars)
    for ax, name in ((axes[1], 'reward'), (axes[2], 'kl')):
      mean, sd = curves[name]
      ax.plot(x, mean, color=color, label=label)
      ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2)
  p = result['pinned']
  axes[0].set(xlabel='KL(policy || SFT) per continuation (nats)', ylabel='reward model score')
  axes[1].set(xlabel='rollouts', ylabel=f'score - {p["beta"]} KL (what RLOO maximises)')
  axes[2].set(xlabel='rollouts', ylabel='KL per continuation (nats)')
  seeds = ', '.join(map(str, result['seeds']))
  fig.suptitle(
    f'RLOO, jdl against trl at equal rollouts ({p["prompts"]} prompts x {p["k"]} per step, '
    f'lr {p["learning_rate"]}, beta {p["beta"]}; seeds {seeds}: mean and 1 std)',
    fontsize=10,
  )
  for ax in axes:
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=8)
  fig.tight_layout()
  return [plots.save(fig, os.path.join(outdir, 'rlhf_rloo_trl.png'), dpi=120)]
