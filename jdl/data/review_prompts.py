"""Prompts for learning from preferences: openings of Pang & Lee's movie reviews (jdl.data.reviews).

Ziegler et al. (2019) continue the beginnings of book passages; here a prompt is the first
`length` bytes (64 by default) of a review, cut at a UTF-8 character boundary, so a policy
writes the next 48 bytes of the review. The split is by review, as the language model's: 'train'
openings for the preference pairs and PPO's rollouts, 'validation' for the reward model's
held-out pairs, 'test' (298 reviews) for the >= 200 held-out evaluation prompts.

More prompts than reviews: after every review's opening come windows that start at its later
sentences (the reviews are one sentence per line), the second sentence of every review, then
the third, ..., each window not overlapping the one before it in the same review. So `n` up to
the number of reviews gives one opening per review, and any larger `n` still never repeats a
window (a window that recurs in several reviews comes once).
"""

from __future__ import annotations

import numpy as np

from jdl.data import reviews


def cut(text: str, length: int) -> str:
  """The first `length` bytes of text, fewer if a multi-byte character would be cut."""
  raw = text.encode('utf-8')[:length]
  while raw:
    try:
      return raw.decode('utf-8')
    except UnicodeDecodeError:
      raw = raw[:-1]
  return ''


def sentence_windows(text: str, length: int) -> list[str]:
  """Non-overlapping windows of `length` bytes at sentence starts (line starts) of one review,
  its opening first. A window shorter than `length` (the review ends) is left out."""
  out, next_free = [], 0
  starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == '\n']
  for start in starts:
    while start < len(text) and text[start] == ' ':
      start += 1
    if start < next_free:
      continue
    window = cut(text[start:], length)
    if len(window.encode('utf-8')) < length - 3:  # the review ends: not a full prompt
      continue
    out.append(window)
    next_free = start + len(window)
  return out


def prompts(split: str, n: int | None = None, length: int = 64, seed: int = 0) -> list[str]:
  """`n` prompts of `length` bytes from the reviews of `split` ('train', 'validation', 'test'):
  every review's opening in a seeded order (n=None: all of them, each text once), then later
  sentences' windows round by round. Refuses an `n` larger than the windows there are."""
  if length < 1:
    raise ValueError(f'prompt length must be at least 1 byte, got {length}')
  texts, _ = reviews.examples('reviews', split)
  order = np.random.default_rng(seed).permutation(len(texts))
  windows = [sentence_windows(texts[i].lstrip(), length) for i in order]
  # A sentence can recur across reviews (a critic's spoiler note or sign-off): each window once.
  out, seen, round_ = [], set(), 0
  while n is None or len(out) < n:
    this_round = [w[round_] for w in windows if len(w) > round_]
    if n is None and round_ == 1:
      break
    if not this_round:
      raise ValueError(
        f'the {split} reviews have only {len(out)} windows of {length} bytes; asked for {n}'
      )
    for window in this_round:
      if window not in seen and (n is None or len(out) < n):
        seen.add(window)
        out.append(window)
    round_ += 1
  return out
