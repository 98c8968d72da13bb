"""Imports in jdl only point down: foundation < tasks < bench < systems < CLI.

The foundation is ordered too: the base modules < jdl.data < jdl.models < jdl.train. A system
imports no other system; nothing but the CLI imports jdl.cli. The check reads the import
statements with `ast` (every one, also those inside functions), so it needs neither JAX nor jdl.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Programs found by the binpack search: texts the search wrote, not modules of jdl.
SKIP = 'jdl/binpack/found/'

BASE = {'config', 'paths', 'sharding', 'plots'}
CLI = {'cli', '__main__', 'registry'}
# Rank of each layer: a module may import a module of its own rank or below.
RANK = {
  'base': 0,
  'data': 1,
  'models': 2,
  'train': 3,
  'tasks': 4,
  'bench': 5,
  'system': 6,
  'cli': 7,
}
WHO = {
  'base': 'a base module',
  'data': 'jdl.data',
  'models': 'jdl.models',
  'train': 'jdl.train',
  'tasks': 'a task',
  'bench': 'the bench harness',
  'system': 'a system',
  'cli': 'the CLI',
}


def module_name(relpath: str) -> str:
  """'jdl/data/ding.py' -> 'jdl.data.ding'; 'jdl/data/__init__.py' -> 'jdl.data'."""
  parts = relpath.removesuffix('.py').split('/')
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def layer(module: str, packages: set[str]) -> tuple[str, str] | None:
  """(layer, system name or '') of a jdl module, or None where it fits no layer.

  Every package jdl/<name>/ that is not a layer of its own is a system (mlp, cnn, gpt, ...).
  """
  parts = module.split('.')
  top = parts[1] if len(parts) > 1 else None
  if top is None or top in BASE:
    return 'base', ''
  if top in ('data', 'models', 'train', 'tasks', 'bench'):
    return top, ''
  if top in CLI:
    return 'cli', ''
  if f'jdl.{top}' in packages:
    return 'system', top
  return None


def imports(source: str, module: str, is_package: bool, modules: set[str]):
  """(line, module) of every jdl module the source imports.

  `from jdl.data import ding` imports the module jdl.data.ding, so a name that is itself a module
  resolves to it; relative imports resolve against the module's package.
  """
  package = module if is_package else module.rpartition('.')[0]
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        anchor = package.rsplit('.', node.level - 1)[0]
        base = f'{anchor}.{base}' if base else anchor
      names = []
      for alias in node.names:
        sub = f'{base}.{alias.name}'
        names.append(sub if sub in modules else base)
    else:
      continue
    for name in dict.fromkeys(names):
      if name == 'jdl' or name.startswith('jdl.'):
        yield node.lineno, name


def violation(importer: tuple[str, str], imported: tuple[str, str]) -> str | None:
  """Why importer may not import imported, or None where it may."""
  if imported[0] == 'system' and importer[0] == 'system' and imported[1] != importer[1]:
    return 'a system imports another system'
  if RANK[imported[0]] > RANK[importer[0]]:
    return f'{WHO[importer[0]]} imports {WHO[imported[0]]}'
  return None


def check(sources: dict[str, str]) -> tuple[list[str], list[str], int]:
  """(upward imports, modules that fit no layer, jdl imports seen) of {relpath: source}."""
  modules = {module_name(path) for path in sources}
  packages = {module_name(path) for path in sources if path.endswith('__init__.py')}
  found, unplaced, seen = [], [], 0
  for path, source in sorted(sources.items()):
    module = module_name(path)
    importer = layer(module, packages)
    if importer is None:
      unplaced.append(path)
      continue
    for line, name in imports(source, module, path.endswith('__init__.py'), modules):
      seen += 1
      imported = layer(name, packages)
      why = f'{name} fits no layer' if imported is None else violation(importer, imported)
      if why:
        found.append(f'{path}:{line} imports {name} ({why})')
  return found, unplaced, seen


def jdl_sources() -> dict[str, str]:
  paths = sorted((ROOT / 'jdl').rglob('*.py'))
  sources = {str(p.relative_to(ROOT)): p.read_text() for p in paths}
  return {path: source for path, source in sources.items() if not path.startswith(SKIP)}


def test_imports_only_point_down():
  found, unplaced, seen = check(jdl_sources())
  assert not unplaced, (
    f'{", ".join(unplaced)} fit no layer: move each into jdl/data, jdl/models or jdl/train '
    '(foundation), jdl/tasks, jdl/bench, or a system package jdl/<name>/; a new base module '
    'goes into BASE in tests/test_layers.py'
  )
  # Guard against checking nothing (a wrong root or a parse that sees no imports).
  assert seen > 100, f'only {seen} jdl imports seen'
  assert not found, 'upward imports:\n' + '\n'.join(found)


def test_checker_catches_upward_imports():
  sources = {
    'jdl/__init__.py': '',
    'jdl/cli.py': 'from jdl.gpt import sample\n',
    'jdl/data/__init__.py': 'from . import ding\n',
    'jdl/data/ding.py': 'from ..models import gpt\n',
    'jdl/models/__init__.py': '',
    'jdl/models/gpt.py': 'from jdl.data.ding import PAD\n',
    'jdl/tasks/__init__.py': '',
    'jdl/tasks/lm.py': 'import jdl.train\n\n\ndef f():\n  from jdl import gpt\n',
    'jdl/train/__init__.py': '',
    'jdl/gpt/__init__.py': '',
    'jdl/gpt/sample.py': 'from jdl import cli\nfrom jdl.rnn import bench\nfrom . import bench\n',
    'jdl/gpt/bench.py': 'import jdl.bench.common\n',
    'jdl/bench/__init__.py': '',
    'jdl/bench/common.py': 'from jdl.tasks import lm\n',
    'jdl/rnn/__init__.py': '',
    'jdl/rnn/bench.py': '',
    'jdl/stray.py': '',
  }
  found, unplaced, seen = check(sources)
  assert found == [
    'jdl/data/ding.py:1 imports jdl.models.gpt (jdl.data imports jdl.models)',
    'jdl/gpt/sample.py:1 imports jdl.cli (a system imports the CLI)',
    'jdl/gpt/sample.py:2 imports jdl.rnn.bench (a system imports another system)',
    'jdl/tasks/lm.py:5 imports jdl.gpt (a task imports a system)',
  ]
  assert unplaced == ['jdl/stray.py']
  assert seen == 11
