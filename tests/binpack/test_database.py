"""Program database: clusters by signature, island isolation, sampling, resets."""

import numpy as np

from jdl.binpack import database


def prog(score, signature, source=None):
  return database.Program(
    source or f'def priority(item, bins):\n    return bins * {score}\n', score, tuple(signature)
  )


def test_programs_with_equal_signature_share_a_cluster():
  island = database.Island(0.1, 100)
  island.register(prog(-10, (10, 10)))
  island.register(prog(-10, (10, 10), 'def priority(item, bins):\n    return -bins\n'))
  island.register(prog(-9, (9, 9)))
  assert len(island.clusters) == 2 and island.num_programs == 3
  # best: highest score; within a cluster, the shortest program
  assert island.best.score == -9


def test_register_on_one_island_only_and_initial_on_all():
  db = database.ProgramDatabase(num_islands=4, seed=0)
  db.register(prog(-10, (10,)))  # initial program goes everywhere
  db.register(prog(-5, (5,)), island=2)
  assert [i.num_programs for i in db.islands] == [1, 1, 2, 1]
  assert db.best.score == -5


def test_sampling_prefers_better_clusters_and_orders_worst_first():
  db = database.ProgramDatabase(num_islands=1, functions_per_prompt=2, seed=0)
  for s in range(20):
    db.register(prog(-100 + s, (100 - s,)), island=0)
  counts = np.zeros(20)
  for _ in range(300):
    prompt = db.prompt()
    scores = [p.score for p in prompt.programs]
    assert scores == sorted(scores) and len(scores) == 2
    for p in prompt.programs:
      counts[int(p.score + 100)] += 1
  # The temperature is low (0.1 on normalised scores): the top clusters dominate.
  assert counts[-5:].sum() > 0.9 * counts.sum()


def test_temperature_decays_with_programs():
  island = database.Island(0.1, 10)
  t0 = island.temperature
  for s in range(5):
    island.register(prog(-s, (s,)))
  assert island.temperature < t0


def test_reset_reseeds_the_weaker_half_from_the_stronger():
  db = database.ProgramDatabase(num_islands=4, seed=1)
  db.register(prog(-100, (100,)))
  for island, score in enumerate([-50, -40, -30, -20]):
    db.register(prog(score, (-score,)), island=island)
  wiped = db.reset_islands()
  assert sorted(wiped) == [0, 1]
  for i in wiped:
    assert db.islands[i].num_programs == 1
    assert db.islands[i].best.score in (-30, -20)  # a strong island's best
  assert db.islands[3].best.score == -20 and db.islands[3].num_programs == 2
  assert db.resets == 1


def test_prompt_text_has_versioned_skeleton():
  db = database.ProgramDatabase(num_islands=1, seed=0)
  db.register(prog(-2, (2,)))
  db.register(prog(-1, (1,)), island=0)
  text = db.prompt().text
  assert 'def priority_v0(item, bins)' in text and 'def priority_v1(item, bins)' in text
  assert text.rstrip().endswith('"""Improved version of `priority_v1`."""')
  assert 'import numpy as np' in text
