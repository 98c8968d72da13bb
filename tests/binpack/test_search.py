"""The search loop end to end (seconds), the offline proposer, the LLM proposer's I/O."""

import ast
import http.server
import json
import threading

import numpy as np
import pytest

from jdl.binpack import data, database, evaluate, heuristics, proposers, sandbox, search


def test_short_search_improves_on_first_fit(small_train, tmp_path):
  log = tmp_path / 'log.jsonl'
  result = search.run_search(
    proposers.MutationProposer(seed=0),
    seconds=240,  # a cap: the 120 candidates take seconds
    max_evaluations=120,
    train=small_train,
    # One worker: results come back in the order proposed, so the run is the same under any
    # load (with two, a loaded machine reorders them and the search takes another path).
    workers=1,
    islands=4,
    reset_every=50,
    log_path=log,
    seed=0,
    verbose=False,
  )
  first_fit = evaluate.evaluate(small_train, evaluate.compile_priority(heuristics.FIRST_FIT))
  assert np.mean(result.best.signature) < first_fit.mean_bins  # fewer bins than First Fit
  assert result.train_excess < 100 * first_fit.excess
  assert result.evaluated >= 120
  records = search.read_log(log)
  events = [r['event'] for r in records]
  assert events[0] == 'start' and events[-1] == 'end' and 'improved' in events
  assert 'reset' in events  # 120 candidates, a reset every 50
  times, values = search.best_over_time(records)
  assert values[-1] < values[0] and times == sorted(times)
  # the found program is valid, elementwise and scores what the log says (in the sandbox)
  assert sandbox.is_elementwise(result.best.source)
  again = sandbox.run_candidate(result.best.source, small_train)
  assert again.ok and tuple(again.bins) == result.best.signature


class HostileProposer:
  """Every other proposal is hostile: it escapes, hangs, eats memory or lies about shape."""

  HOSTILE = [
    'def priority(item, bins):\n    while True:\n        pass\n',
    'def priority(item, bins):\n    import os\n    os.system("true")\n    return bins\n',
    'def priority(item, bins):\n    x = np.ones(10 * 2**30 // 8)\n    return bins\n',
    'def priority(item, bins):\n    return bins * np.nan\n',
    'def priority(item, bins):\n    return bins[:1]\n',
    "def priority(item, bins):\n    return '{0.f_back}'.format(bins)\n",
  ]

  def __init__(self):
    self.honest = proposers.MutationProposer(seed=1)
    self.calls = 0

  def propose(self, prompt):
    self.calls += 1
    if self.calls % 2 and self.calls // 2 < len(self.HOSTILE):
      return [self.HOSTILE[self.calls // 2]]
    return self.honest.propose(prompt)


def test_search_survives_hostile_proposals(small_train):
  proposer = HostileProposer()
  # A budget of candidates, not of seconds (on a loaded machine 3 s once evaluated 2). The
  # hanging candidate, submitted first, is killed after 1 s; 120 candidates take about 3.5 s on
  # an idle machine here and longer under load, so its timeout is always among the outcomes.
  result = search.run_search(
    proposer,
    seconds=600,
    max_evaluations=120,
    train=small_train,
    workers=2,
    islands=2,
    timeout=1,
    verbose=False,
  )
  assert result.evaluated >= 120
  for status in ('rejected', 'timeout', 'memory', 'error'):
    assert result.outcomes.get(status, 0) >= 1, (status, result.outcomes)
  assert result.outcomes['ok'] >= 10
  assert result.best.source not in HostileProposer.HOSTILE


def test_mutation_proposer_makes_valid_distinct_programs():
  proposer = proposers.MutationProposer(seed=3, samples=4)
  db = database.ProgramDatabase(num_islands=1, seed=0)
  db.register(database.Program(heuristics.FIRST_FIT, -10.0, (10,)))
  db.register(database.Program(heuristics.BEST_FIT, -9.0, (9,)), island=0)
  seen = set()
  for _ in range(25):
    for source in proposer.propose(db.prompt()):
      sandbox.check_source(source)  # passes the static check
      assert sandbox.is_elementwise(source)
      seen.add(source)
  assert len(seen) > 40  # diverse
  # They run (in the sandbox: they are candidates); a scalar or infinite score is the
  # candidate's error, recorded as such.
  tiny = data.Dataset('tiny', 150, {'a': np.array([30, 110, 50, 100, 20])})
  with sandbox.SandboxPool(tiny, workers=2) as pool:
    for source in seen:
      pool.submit(source)
    outcomes = pool.drain(120)
  assert len(outcomes) == len(seen)
  for outcome in outcomes:
    assert outcome.ok or any(
      s in outcome.reason for s in ('not an ndarray', 'shape', 'non-finite')
    ), outcome
  assert sum(o.ok for o in outcomes) > 0.8 * len(outcomes)


def test_crossover_grafts_from_the_other_parent():
  proposer = proposers.MutationProposer(seed=0)
  other = 'def priority(item, bins):\n    return np.log1p(np.abs(bins - 77))\n'
  children = {proposer.mutate(heuristics.BEST_FIT, other) for _ in range(200)}
  assert any('77' in child for child in children)


class _Handler(http.server.BaseHTTPRequestHandler):
  requests = []

  def do_POST(self):  # noqa: N802 - http.server's naming
    body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
    type(self).requests.append(
      {'path': self.path, 'auth': self.headers.get('Authorization'), 'body': body}
    )
    completion = '    # prefer tight fits\n    return -(bins - item)\n\ndef another():\n    pass\n'
    reply = {'choices': [{'text': completion}, {'text': '    return ('}]}
    data = json.dumps(reply).encode()
    self.send_response(200)
    self.send_header('Content-Type', 'application/json')
    self.send_header('Content-Length', str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


def test_completions_proposer_against_local_server():
  server = http.server.HTTPServer(('127.0.0.1', 0), _Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    url = f'http://127.0.0.1:{server.server_address[1]}/v1'
    proposer = proposers.CompletionsProposer(
      url, model='tiny-coder', api_key='k123', samples=2, temperature=0.7
    )
    db = database.ProgramDatabase(num_islands=1, seed=0)
    db.register(database.Program(heuristics.FIRST_FIT, -10.0, (10,)))
    prompt = db.prompt()
    sources = proposer.propose(prompt)
  finally:
    server.shutdown()
  (request,) = _Handler.requests
  assert request['path'] == '/v1/completions'
  assert request['auth'] == 'Bearer k123'
  body = request['body']
  assert body['model'] == 'tiny-coder' and body['n'] == 2 and body['temperature'] == 0.7
  assert body['prompt'] == prompt.text and body['prompt'].rstrip().endswith('"""')
  # The second choice does not parse and is dropped; the first is cut at `def another`.
  assert len(sources) == 1
  tree = ast.parse(sources[0])
  assert [n.name for n in tree.body] == ['priority']
  # It is Best Fit: on the hand-worked instance (capacity 10, items 5 7 3 5), 2 bins.
  tiny = data.Dataset('tiny', 10, {'a': np.array([5, 7, 3, 5])})
  outcome = sandbox.run_candidate(sources[0], tiny)
  assert outcome.ok and outcome.bins == [2]


def test_completions_proposer_survives_a_dead_endpoint():
  proposer = proposers.CompletionsProposer('http://127.0.0.1:9/v1', timeout=2)
  db = database.ProgramDatabase(num_islands=1, seed=0)
  db.register(database.Program(heuristics.FIRST_FIT, -10.0, (10,)))
  assert proposer.propose(db.prompt()) == []


def test_extract_function_and_parse_response():
  assert proposers.extract_function('') is None
  src = proposers.extract_function("    x = bins - item\n    return -x\nprint('after')\n")
  assert 'print' not in src and src.startswith('def priority(item, bins):')
  with pytest.raises(RuntimeError):
    proposers.CompletionsProposer.parse_response(b'{"error": "quota"}')
