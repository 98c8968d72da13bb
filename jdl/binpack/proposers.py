"""Proposers turn a prompt (a few programs from one island) into new candidate programs.

Both implement `propose(prompt) -> list[str]` (full `def priority(item, bins)` sources):

* `CompletionsProposer`: any OpenAI-compatible `/completions` endpoint, called with
  urllib only (FunSearch's setup: a code model continues the `priority_vK` header).
* `MutationProposer`: no network. Genetic programming on the syntax tree of the
  prompt's programs (point mutation, subtree replacement, growth, shrinking, and
  crossover between the two prompt programs). It generates elementwise programs
  (one `return` expression over item, bins and elementwise np functions), for which
  showing one untouched bin is exact (see evaluate.pack).
"""

from __future__ import annotations

import ast
import json
import os
import urllib.error
import urllib.request

import numpy as np


def extract_function(completion: str, header_indent: str = '    ') -> str | None:
  """Turn a completion of `def priority_vK(...):` into `def priority(item, bins)`.

  The model continues the function body; we keep lines until the first line that is
  not indented (the next top-level statement), then check that it parses.
  """
  body = []
  for line in completion.splitlines():
    if line.strip() and not line.startswith((' ', '\t')):
      break
    body.append(line)
  while body and not body[-1].strip():
    body.pop()
  if not any(line.strip() for line in body):
    return None
  source = 'def priority(item, bins):\n' + '\n'.join(body) + '\n'
  try:
    tree = ast.parse(source)
  except SyntaxError:
    return None
  return ast.unparse(tree) + '\n'


class CompletionsProposer:
  """Samples continuations from an OpenAI-compatible completions endpoint.

  url: base URL such as http://host:8000/v1 (the request goes to url + /completions);
  model, api_key: from the arguments, else JDL_BINPACK_URL / JDL_BINPACK_MODEL /
  JDL_BINPACK_API_KEY, else OPENAI_BASE_URL / OPENAI_API_KEY.
  """

  def __init__(
    self,
    url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    samples: int = 4,
    temperature: float = 1.0,
    max_tokens: int = 512,
    timeout: float = 60.0,
  ):
    env = os.environ
    self.url = url or env.get('JDL_BINPACK_URL') or env.get('OPENAI_BASE_URL') or ''
    if not self.url:
      raise ValueError('no endpoint: pass --url or set JDL_BINPACK_URL')
    self.model = model or env.get('JDL_BINPACK_MODEL') or 'default'
    self.api_key = api_key or env.get('JDL_BINPACK_API_KEY') or env.get('OPENAI_API_KEY')
    self.samples, self.temperature = samples, temperature
    self.max_tokens, self.timeout = max_tokens, timeout

  def build_request(self, prompt_text: str) -> urllib.request.Request:
    payload = {
      'model': self.model,
      'prompt': prompt_text,
      'max_tokens': self.max_tokens,
      'temperature': self.temperature,
      'n': self.samples,
      'stop': ['\ndef ', '\nclass ', '\nif __name__', '\n#'],
    }
    headers = {'Content-Type': 'application/json'}
    if self.api_key:
      headers['Authorization'] = f'Bearer {self.api_key}'
    endpoint = self.url.rstrip('/') + '/completions'
    return urllib.request.Request(
      endpoint, data=json.dumps(payload).encode(), headers=headers, method='POST'
    )

  @staticmethod
  def parse_response(body: bytes) -> list[str]:
    data = json.loads(body)
    if 'error' in data:
      raise RuntimeError(f'endpoint error: {data["error"]}')
    texts = [c.get('text', '') for c in data.get('choices', [])]
    return [s for s in (extract_function(t) for t in texts) if s]

  def propose(self, prompt) -> list[str]:
    try:
      with urllib.request.urlopen(
        self.build_request(prompt.text), timeout=self.timeout
      ) as response:
        return self.parse_response(response.read())
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as e:
      print(f'[binpack] completions request failed: {e}')
      return []


# --- offline proposer: genetic programming on the AST ----------------------------------

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_CMPOPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_UNARY = ('neg', 'abs', 'square', 'sqrt', 'log1p', 'exp_decay')
_BINARY_NP = ('maximum', 'minimum')
_CONSTANTS = (0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100, 150)


def _np_call(name: str, *args: ast.expr) -> ast.expr:
  return ast.Call(ast.Attribute(ast.Name('np', ast.Load()), name, ast.Load()), list(args), [])


class MutationProposer:
  """Offline proposer: mutation and crossover of the prompt's programs' ASTs."""

  def __init__(self, seed: int = 0, samples: int = 2, max_nodes: int = 60):
    self.rng = np.random.default_rng(seed)
    self.samples = samples
    self.max_nodes = max_nodes

  # expression generation ---------------------------------------------------------
  def constant(self) -> ast.expr:
    if self.rng.random() < 0.6:
      value = _CONSTANTS[self.rng.integers(len(_CONSTANTS))]
    else:
      value = round(float(self.rng.uniform(0, 100)), 1)
    return ast.Constant(value)

  def terminal(self) -> ast.expr:
    r = self.rng.random()
    if r < 0.3:
      return ast.Name('bins', ast.Load())
    if r < 0.5:
      return ast.Name('item', ast.Load())
    if r < 0.75:
      return ast.BinOp(ast.Name('bins', ast.Load()), ast.Sub(), ast.Name('item', ast.Load()))
    return self.constant()

  def expression(self, depth: int) -> ast.expr:
    if depth <= 0 or self.rng.random() < 0.3:
      return self.terminal()
    r = self.rng.random()
    if r < 0.45:
      op = _BINOPS[self.rng.integers(len(_BINOPS))]()
      return ast.BinOp(self.expression(depth - 1), op, self.expression(depth - 1))
    if r < 0.7:
      return self.unary(self.expression(depth - 1))
    if r < 0.8:
      name = _BINARY_NP[self.rng.integers(len(_BINARY_NP))]
      return _np_call(name, self.expression(depth - 1), self.expression(depth - 1))
    return self.where(self.expression(depth - 1), self.expression(depth - 1))

  def unary(self, x: ast.expr) -> ast.expr:
    kind = _UNARY[self.rng.integers(len(_UNARY))]
    if kind == 'neg':
      return ast.UnaryOp(ast.USub(), x)
    if kind == 'abs':
      return _np_call('abs', x)
    if kind == 'square':
      return ast.BinOp(x, ast.Pow(), ast.Constant(2))
    if kind == 'sqrt':
      return _np_call('sqrt', _np_call('abs', x))
    if kind == 'log1p':
      return _np_call('log1p', _np_call('abs', x))
    return _np_call(
      'exp', ast.UnaryOp(ast.USub(), ast.BinOp(_np_call('abs', x), ast.Div(), self.constant()))
    )

  def where(self, a: ast.expr, b: ast.expr) -> ast.expr:
    # Conditions compare the leftover room or the item with a threshold: the kind
    # of case split ("a gap this small is useless") good heuristics are made of.
    left = (
      self.terminal()
      if self.rng.random() < 0.5
      else ast.BinOp(ast.Name('bins', ast.Load()), ast.Sub(), ast.Name('item', ast.Load()))
    )
    op = _CMPOPS[self.rng.integers(len(_CMPOPS))]()
    return _np_call('where', ast.Compare(left, [op], [self.constant()]), a, b)

  # mutation on trees -------------------------------------------------------------
  @staticmethod
  def _return_expr(source: str) -> tuple[ast.Module, ast.Return]:
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    ret = fn.body[-1]
    if not isinstance(ret, ast.Return) or ret.value is None:
      raise ValueError('not a single-return program')
    return tree, ret

  @staticmethod
  def _slots(root: ast.AST) -> list[tuple[ast.AST, str, int | None]]:
    """(parent, field, index) of every expression slot below `root`."""
    slots = []
    for parent in ast.walk(root):
      if isinstance(parent, ast.Attribute):  # the `np` of np.abs is not a slot
        continue
      for field, value in ast.iter_fields(parent):
        if (
          isinstance(value, ast.expr)
          and not isinstance(value, ast.Attribute)
          and field not in ('func', 'ctx')
        ):
          slots.append((parent, field, None))
        elif isinstance(value, list):
          for i, item in enumerate(value):
            if isinstance(item, ast.expr):
              slots.append((parent, field, i))
    return slots

  @staticmethod
  def _get(slot):
    parent, field, index = slot
    value = getattr(parent, field)
    return value if index is None else value[index]

  @staticmethod
  def _set(slot, node):
    parent, field, index = slot
    if index is None:
      setattr(parent, field, node)
    else:
      getattr(parent, field)[index] = node

  def mutate(self, source: str, other: str | None = None) -> str:
    tree, ret = self._return_expr(source)
    holder = ast.Expression(ret.value)  # so the root expression is a slot too
    slots = self._slots(holder)
    slot = slots[self.rng.integers(len(slots))]
    node = self._get(slot)
    r = self.rng.random()
    if other is not None and r < 0.2:  # crossover: graft a subtree of the other parent
      _, other_ret = self._return_expr(other)
      donors = [self._get(s) for s in self._slots(ast.Expression(other_ret.value))]
      self._set(slot, donors[self.rng.integers(len(donors))])
    elif r < 0.45:
      self._set(slot, self.point(node))
    elif r < 0.65:
      self._set(slot, self.expression(2))
    elif r < 0.85:
      self._set(slot, self.grow(node))
    else:
      children = [
        c
        for c in ast.iter_child_nodes(node)
        if isinstance(c, ast.expr) and not isinstance(c, (ast.Attribute, ast.Compare))
      ]
      if children:
        self._set(slot, children[self.rng.integers(len(children))])
    ret.value = holder.body
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    # Drop the parent's docstring (it describes the parent, e.g. "First Fit").
    fn.body = [
      s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    return ast.unparse(ast.fix_missing_locations(tree)) + '\n'

  def point(self, node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
      if self.rng.random() < 0.5:
        return ast.Constant(round(float(node.value) * self.rng.uniform(0.5, 2.0), 2))
      return ast.Constant(round(float(node.value) + self.rng.normal(0, 5), 1))
    if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Pow):
      node.op = _BINOPS[self.rng.integers(len(_BINOPS))]()
      return node
    if isinstance(node, ast.Compare):
      node.ops = [_CMPOPS[self.rng.integers(len(_CMPOPS))]()]
      return node
    if isinstance(node, ast.Name) and node.id in ('bins', 'item'):
      return ast.Name('item' if node.id == 'bins' else 'bins', ast.Load())
    return self.expression(1)

  def grow(self, node: ast.expr) -> ast.expr:
    r = self.rng.random()
    if r < 0.5:
      op = _BINOPS[self.rng.integers(len(_BINOPS))]()
      new = self.expression(1)
      return ast.BinOp(node, op, new) if self.rng.random() < 0.5 else ast.BinOp(new, op, node)
    if r < 0.75:
      return (
        self.where(node, self.expression(1))
        if self.rng.random() < 0.5
        else self.where(self.expression(1), node)
      )
    return self.unary(node)

  def propose(self, prompt) -> list[str]:
    sources = [p.source for p in prompt.programs]
    out = []
    for _ in range(self.samples):
      for _attempt in range(20):
        parent = (
          sources[-1] if self.rng.random() < 0.7 else sources[self.rng.integers(len(sources))]
        )
        other = sources[self.rng.integers(len(sources))] if len(sources) > 1 else None
        try:
          child = parent
          for _step in range(1 + int(self.rng.random() < 0.3)):
            child = self.mutate(child, other)
        except (ValueError, RecursionError, StopIteration):
          continue
        tree = ast.parse(child)
        nodes = sum(1 for _ in ast.walk(tree))
        uses_bins = any(isinstance(n, ast.Name) and n.id == 'bins' for n in ast.walk(tree))
        if child not in sources and uses_bins and nodes <= self.max_nodes:
          out.append(child)
          break
    return out
