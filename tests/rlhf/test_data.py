"""Preference files (jdl.data.preferences) and review prompts (jdl.data.review_prompts)."""

import json

import pytest

from jdl.data import preferences, review_prompts
from jdl.data.errors import DataError
from jdl.data.preferences import Pair

PAIRS = [
  Pair('the film ', 'is a joy', 'is a bore', 'auto:labeller', 0.875),
  Pair('i ', 'loved it', 'hated it', 'human', None),
  Pair('so ', 'ok', 'fine', 'human', None, tie=True),
  Pair('caf\u00e9 "', 'tr\u00e8s bien', '\u2014 bad', 'auto:labeller', 0.5),
]


def test_round_trip_keeps_every_field(tmp_path):
  path = tmp_path / 'prefs.jsonl'
  preferences.write(path, PAIRS[:2])
  for pair in PAIRS[2:]:
    preferences.append(path, pair)
  assert preferences.read(path) == PAIRS
  # Exactly the documented keys, one object per line.
  lines = path.read_text(encoding='utf-8').splitlines()
  assert len(lines) == 4
  assert list(json.loads(lines[0])) == ['prompt', 'chosen', 'rejected', 'labeller', 'p', 'tie']
  assert json.loads(lines[1])['p'] is None


def test_ties_are_returned_and_counted(tmp_path):
  path = tmp_path / 'prefs.jsonl'
  preferences.write(path, PAIRS)
  pairs = preferences.read(path)
  assert [p.tie for p in pairs] == [False, False, True, False]
  decided, ties = preferences.split_ties(pairs)
  assert ties == 1 and decided == [PAIRS[0], PAIRS[1], PAIRS[3]]


@pytest.mark.parametrize(
  'line, says',
  [
    ('{"prompt": "a", "chosen": "b"', 'not valid JSON'),
    ('[1, 2]', 'a JSON object was expected'),
    ('{"prompt": "a", "chosen": "b", "rejected": "c", "labeller": "human", "p": null}', "['tie']"),
    (
      '{"prompt": "a", "chosen": "b", "rejected": "c", "labeller": "human", "p": null, '
      '"tie": false, "score": 1}',
      "unknown keys ['score']",
    ),
    (
      '{"prompt": "a", "chosen": 3, "rejected": "c", "labeller": "human", "p": null, "tie": false}',
      '"chosen" must be a string',
    ),
    (
      '{"prompt": "a", "chosen": "b", "rejected": "c", "labeller": "auto:x", "p": 1.5, '
      '"tie": false}',
      'probability in [0, 1]',
    ),
    (
      '{"prompt": "a", "chosen": "b", "rejected": "c", "labeller": "human", "p": null, '
      '"tie": "no"}',
      '"tie" must be true or false',
    ),
  ],
)
def test_a_malformed_line_names_file_and_line(tmp_path, line, says):
  path = tmp_path / 'prefs.jsonl'
  preferences.write(path, PAIRS[:2])
  with open(path, 'a', encoding='utf-8') as f:
    f.write('\n' + line + '\n')  # a blank line (allowed) and then the bad one: line 4
  preferences.append(path, PAIRS[3])
  with pytest.raises(DataError) as info:
    preferences.read(path)
  assert f'{path}:4:' in str(info.value)
  assert says in str(info.value)


def test_a_missing_file_names_the_command(tmp_path):
  with pytest.raises(DataError, match='jdl rlhf pairs'):
    preferences.read(tmp_path / 'none.jsonl')


def test_cut_never_splits_a_character():
  assert review_prompts.cut('ab\u00e9cd', 3) == 'ab'  # \u00e9 is 2 bytes: bytes 2..3
  assert review_prompts.cut('ab\u00e9cd', 4) == 'ab\u00e9'
  assert review_prompts.cut('abc', 10) == 'abc'


def test_sentence_windows_start_at_lines_and_do_not_overlap():
  text = 'first line here . \nsecond one . \nthird sentence is long enough . \nend'
  assert review_prompts.sentence_windows(text, 10) == ['first line', 'second one', 'third sent']
  # 'second one' starts inside the 25-byte opening window: skipped; the last line is too short.
  assert review_prompts.sentence_windows(text, 25) == [
    'first line here . \nsecond',
    'third sentence is long en',
  ]


def test_prompts_are_review_openings_by_split():
  from jdl.data import reviews

  test = review_prompts.prompts('test')
  texts, _ = reviews.examples('reviews', 'test')
  openings = {t.lstrip().encode()[:64].decode() for t in texts}
  assert set(test) == openings and len(test) == len(openings) >= 200
  assert all(len(p.encode()) == 64 for p in test)
  # Split by review: the one opening both splits share is a critic's boilerplate spoiler note.
  shared = set(review_prompts.prompts('train')) & set(test)
  assert {p[:30] for p in shared} == {'note : some may consider porti'}
  more = review_prompts.prompts('train', n=1500)
  first = review_prompts.prompts('train')
  assert len(set(more)) == 1500 and more[: len(first)] == first
  assert review_prompts.prompts('test', n=5) == review_prompts.prompts('test', n=5)
  assert review_prompts.prompts('test', n=5, seed=1) != review_prompts.prompts('test', n=5)
