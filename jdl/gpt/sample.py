"""`jdl sample --workdir DIR --prompt "..."`: text from a trained language model (GPT or RNN).

The generation itself is `jdl.models.sampling`; a task may bring its own (`Task.sample_text`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from jdl.models import sampling


def load_model(workdir: pathlib.Path):
  """The task and model of a run folder: config.json and its newest checkpoint, on one device."""
  import jax
  import ml_collections

  from jdl import sharding
  from jdl.config import base_config
  from jdl.train import loop

  def merge(into: ml_collections.ConfigDict, saved: dict) -> None:
    for key, value in saved.items():
      if isinstance(value, dict) and isinstance(into.get(key), ml_collections.ConfigDict):
        merge(into[key], value)
      else:
        into[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value

  # The loop's defaults first, so that a run saved before a key was added still loads.
  config = base_config()
  merge(config, json.loads((workdir / 'config.json').read_text()))
  # JSON turned tuples into lists; the rules must be hashable again (they are static model state).
  config.sharding_rules = tuple(
    (name, tuple(t) if isinstance(t, list) else t) for name, t in config.sharding_rules
  )
  config.mesh.update(data=1, fsdp=1, tensor=1)  # sampling needs one device
  task = loop.get_task(config)
  mesh = sharding.make_mesh(config.mesh)
  jax.set_mesh(mesh)
  step, state = loop.restore_latest(
    task, mesh, workdir, max(config.num_train_steps, 1), log=lambda _: None
  )
  return task, task.merge(state.params, state.model_state), step


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(
    prog='jdl sample', description='sample text from a trained language model (GPT or RNN)'
  )
  p.add_argument('--workdir', required=True, help='a run folder of `jdl train`')
  p.add_argument('--prompt', default='\n')
  p.add_argument('--temperature', type=float, default=1.0, help='0: greedy')
  p.add_argument('--top-k', type=int, default=0, help='0: no top-k filter')
  p.add_argument('--top-p', type=float, default=1.0, help='1: no nucleus filter')
  p.add_argument('--max-new-tokens', type=int, default=200)
  p.add_argument('--num-samples', type=int, default=1)
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  task, model, step = load_model(pathlib.Path(args.workdir))
  tokenizer = task.tokenizer()
  print(
    f'# {args.workdir}, step {step}; temperature {args.temperature}, top-k {args.top_k}, '
    f'top-p {args.top_p}',
    file=sys.stderr,
  )
  # A task may bring its own generation (a recurrent model carries its state, not a KV cache).
  sampler = getattr(task, 'sample_text', sampling.sample_text)
  for i in range(args.num_samples):
    print(
      sampler(
        model,
        tokenizer,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed + i,
      )
    )
    if i + 1 < args.num_samples:
      print('-' * 40)
  return 0
