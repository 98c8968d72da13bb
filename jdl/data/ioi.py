"""The indirect-object-identification (IOI) task of Wang et al. 2022, "Interpretability in the
wild": prompts, their corrupted "ABC" counterparts, and the metric.

    When Mary and John went to the store, John gave a drink to   ->  " Mary"

Two names are introduced; one of them (the subject S) is repeated; a model that does the task
completes the sentence with the other one, the indirect object IO. The paper's distribution
p_IOI varies the template, the names, the place and the object, with the two orders of the
introduction in equal numbers:

    ABBA   "[IO] and [S] ... [S] gave a [OBJECT] to"   (the indirect object is named first)
    BABA   "[S] and [IO] ... [S] gave a [OBJECT] to"

The corrupted distribution p_ABC keeps each prompt's template, order, place and object and
puts three new distinct names in the three name slots ("[A] and [B] ... [C] gave ... to"), so
it carries no information about which name is the answer; patching its activations into the
clean run (noising) shows what the clean run needs.

The prompts are data (this module): the interpretability tools (jdl.interp) read them, and the
`ioi` corpus of jdl.data.text trains a model on whole sentences of the same distribution
(`sentences`), with the names and templates that evaluation holds out left out.

Every name, place and object is one token with its leading space under the model's tokenizer,
so all prompts of a template have the same length, a clean prompt and its corruption put every
word at the same position, and the answer is one token. The metric is the logit difference
logit(IO) - logit(S) at the prompt's last position.

The templates and word lists below are written for jdl in the paper's style (its appendix
lists 15 templates of this form); they are not the paper's files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jdl.data.tokenizers import Tokenizer

# {X} and {Y} are the introduced names, {S} the repeated one; the prompt stops before the answer.
TEMPLATES = (
  'Then, {X} and {Y} went to the {place}. {S} gave a {object} to',
  'When {X} and {Y} found a {object} at the {place}, {S} decided to give it to',
  'After {X} and {Y} walked to the {place}, {S} handed a {object} to',
  'While {X} and {Y} were busy at the {place}, {S} passed a {object} to',
  'Friends {X} and {Y} spotted a {object} in the {place}. {S} gave it to',
  'Then, {X} and {Y} had a long day at the {place}. {S} gave a {object} to',
  'When {X} and {Y} arrived at the {place}, {S} offered a {object} to',
  'After lunch, {X} and {Y} went back to the {place}. {S} passed a {object} to',
  'Yesterday {X} and {Y} met at the {place}, and {S} brought a {object} to',
  'On Sunday, {X} and {Y} visited the {place}. {S} sent a {object} to',
  'Since {X} and {Y} were waiting at the {place}, {S} showed a {object} to',
  'Later, {X} and {Y} sat down in the {place}. {S} sold a {object} to',
  'Both {X} and {Y} stayed at the {place}, so {S} lent a {object} to',
  'The day {X} and {Y} cleaned the {place}, {S} threw a {object} to',
  'Once {X} and {Y} had left the {place}, {S} mailed a {object} to',
)

NAMES = (
  'Mary John Alice Bob James Sarah Michael Emma David Laura Daniel Anna Thomas Kate Paul Lisa '
  'Mark Rachel Peter Susan Andrew Linda Steven Karen Brian Nancy Kevin Helen Jason Amy Eric '
  'Emily Adam Julia Ryan Jessica Jacob Rose Sam Jennifer Tom Lucy Chris Sophie Matt Jane Dan '
  'Claire Jack Hannah Ben Victoria Joe Ruth Tim Diana Greg Martha Luke Sandra Frank Elizabeth '
  'Richard Catherine Robert Margaret Charles Patricia Joseph Barbara William Maria Henry Sofia '
  'Edward Olivia George Natalie Alex Alexandra Christopher Leonardo Marguerite Bartholomew'
).split()
PLACES = (
  'store garden restaurant school hospital office house station park beach church library '
  'market kitchen museum hotel airport bank theater farm gym river lake hill cafe bakery'
).split()
OBJECTS = (
  'ring kiss bone basketball computer necklace drink snack ball book cake bag letter gift '
  'pen bottle hat ticket card key box phone watch camera flower banana sandwich drum'
).split()

ABBA, BABA = 0, 1


def is_single_token(tokenizer: Tokenizer, word: str) -> bool:
  try:
    return len(tokenizer.encode(' ' + word)) == 1
  except ValueError:  # a piece that a vocabulary subset lacks: not one token there either
    return False


def single_tokens(tokenizer: Tokenizer, words: Sequence[str]) -> list[str]:
  """The words that are one token with their leading space, in order."""
  return [w for w in words if is_single_token(tokenizer, w)]


def _check_single(tokenizer: Tokenizer, words: Sequence[str], what: str) -> None:
  for w in words:
    if not is_single_token(tokenizer, w):
      try:
        ids = tokenizer.encode(' ' + w).tolist()
      except ValueError as e:
        ids = str(e)
      raise ValueError(
        f"{what} '{w}' is not a single token under {getattr(tokenizer, 'name', 'the tokenizer')} "
        f"(' {w}' -> {ids}); the IOI prompts need one token per {what}"
      )


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """What prompts are drawn from; `single` keeps what the tokenizer writes as one token."""

  names: tuple[str, ...] = tuple(NAMES)
  templates: tuple[str, ...] = TEMPLATES
  places: tuple[str, ...] = tuple(PLACES)
  objects: tuple[str, ...] = tuple(OBJECTS)

  @classmethod
  def single(cls, tokenizer: Tokenizer, **kwargs) -> Vocabulary:
    v = cls(**kwargs)
    return dataclasses.replace(
      v,
      names=tuple(single_tokens(tokenizer, v.names)),
      places=tuple(single_tokens(tokenizer, v.places)),
      objects=tuple(single_tokens(tokenizer, v.objects)),
    )


def held_out(
  vocab: Vocabulary, eval_names: float = 0.25, eval_templates: int = 3, seed: int = 0
) -> tuple[Vocabulary, Vocabulary]:
  """(train, eval): disjoint names and disjoint templates (places and objects shared), so an
  evaluation measures the task on names and sentences a model has not been trained on."""
  rng = np.random.default_rng(seed)
  names = [vocab.names[i] for i in rng.permutation(len(vocab.names))]
  templates = [vocab.templates[i] for i in rng.permutation(len(vocab.templates))]
  n, k = max(2, round(eval_names * len(names))), eval_templates
  if len(names) - n < 3 or len(templates) - k < 1 or n < 3 or k < 1:
    raise ValueError(f'too few names ({len(names)}) or templates ({len(templates)}) to split')
  train = dataclasses.replace(vocab, names=tuple(names[n:]), templates=tuple(templates[k:]))
  test = dataclasses.replace(vocab, names=tuple(names[:n]), templates=tuple(templates[:k]))
  return train, test


@dataclasses.dataclass(frozen=True)
class Prompts:
  """N prompts, right-padded to the longest: `tokens` [N, T] int32, `end` [N] the last
  position (where the answer is read), `io` and `s` [N] the answer and subject token ids,
  `slots` [N, 3] the positions of the {X}, {Y} and {S} name slots, `template` and `order`
  [N] (index into the vocabulary's templates; ABBA or BABA), `texts`, and what the prompts were
  made from (`names` [N, 3]: the names in slots X, Y, S; `place`, `object`), for corrupting."""

  texts: list[str]
  tokens: np.ndarray
  end: np.ndarray
  io: np.ndarray
  s: np.ndarray
  slots: np.ndarray
  template: np.ndarray
  order: np.ndarray
  names: list[tuple[str, str, str]]
  place: list[str]
  object: list[str]
  vocab: Vocabulary

  def __len__(self) -> int:
    return len(self.texts)

  @property
  def io_pos(self) -> np.ndarray:
    return np.where(self.order == ABBA, self.slots[:, 0], self.slots[:, 1])

  @property
  def s1_pos(self) -> np.ndarray:
    return np.where(self.order == ABBA, self.slots[:, 1], self.slots[:, 0])

  @property
  def s2_pos(self) -> np.ndarray:
    return self.slots[:, 2]


def _encode(tokenizer, vocab, template, names, places, objects, pad) -> Prompts:
  """Prompts from filled templates; `names[i]` are the words of slots (X, Y, S)."""
  texts, rows, slots = [], [], []
  for t, (x, y, s), place, obj in zip(template, names, places, objects, strict=True):
    text = vocab.templates[t].format(X=x, Y=y, S=s, place=place, object=obj)
    ids = tokenizer.encode(text)
    found = []
    for name, k in ((x, 0), (y, 1), (s, 2)):
      at = np.flatnonzero(ids == tokenizer.encode(' ' + name)[0])
      if len(at) != (x, y, s).count(name):
        raise ValueError(f"'{name}' is not where the template puts it in {text!r}")
      # a name in two slots (S) is first found for the earlier slot, then for the later one
      found.append(at[-1] if name in (x, y, s)[:k] else at[0])
    texts.append(text)
    rows.append(ids)
    slots.append(found)
  T = max(len(r) for r in rows)
  tokens = np.full((len(rows), T), pad, np.int32)
  for i, r in enumerate(rows):
    tokens[i, : len(r)] = r
  return Prompts(
    texts=texts,
    tokens=tokens,
    end=np.asarray([len(r) - 1 for r in rows], np.int32),
    io=np.zeros(len(rows), np.int32),  # set by the callers
    s=np.zeros(len(rows), np.int32),
    slots=np.asarray(slots, np.int32),
    template=np.asarray(template, np.int32),
    order=np.zeros(len(rows), np.int32),
    names=[tuple(n) for n in names],
    place=list(places),
    object=list(objects),
    vocab=vocab,
  )


def _token(tokenizer, word) -> int:
  return int(tokenizer.encode(' ' + word)[0])


def _draw(vocab: Vocabulary, n: int, seed: int):
  """What n prompts of p_IOI are made of: templates in turn (their counts differ by at most
  one), ABBA and BABA alternating within each template (equal counts for even n), names, place
  and object drawn at random. Returns (template, order, names (X, Y, S), io names, places,
  objects)."""
  if len(vocab.names) < 2:
    raise ValueError('IOI prompts need at least 2 names')
  rng = np.random.default_rng(seed)
  template = [(i // 2) % len(vocab.templates) for i in range(n)]
  order = np.arange(n) % 2
  names, io = [], []
  for o in order:
    a, b = rng.choice(len(vocab.names), 2, replace=False)
    io_name, s_name = vocab.names[a], vocab.names[b]
    x, y = (io_name, s_name) if o == ABBA else (s_name, io_name)
    names.append((x, y, s_name))
    io.append(io_name)
  places = [vocab.places[i] for i in rng.integers(len(vocab.places), size=n)]
  objects = [vocab.objects[i] for i in rng.integers(len(vocab.objects), size=n)]
  return template, order, names, io, places, objects


def prompts(
  tokenizer: Tokenizer, n: int, seed: int = 0, vocab: Vocabulary | None = None
) -> Prompts:
  """n prompts of p_IOI (see `_draw`). A name, place or object that is not a single token is a
  ValueError naming it."""
  vocab = vocab or Vocabulary.single(tokenizer)
  _check_single(tokenizer, vocab.names, 'name')
  _check_single(tokenizer, vocab.places, 'place')
  _check_single(tokenizer, vocab.objects, 'object')
  template, order, names, io, places, objects = _draw(vocab, n, seed)
  pad = tokenizer.eot if tokenizer.eot is not None else 0
  out = _encode(tokenizer, vocab, template, names, places, objects, pad)
  return dataclasses.replace(
    out,
    io=np.asarray([_token(tokenizer, w) for w in io], np.int32),
    s=np.asarray([_token(tokenizer, s) for _, _, s in names], np.int32),
    order=order.astype(np.int32),
  )


def sentences(vocab: Vocabulary, n: int, seed: int = 0) -> list[str]:
  """n whole sentences of p_IOI, each prompt followed by its answer: training text for a model
  that is to learn the task ("... John gave a drink to Mary.")."""
  template, _, names, io, places, objects = _draw(vocab, n, seed)
  return [
    vocab.templates[t].format(X=x, Y=y, S=s, place=place, object=obj) + f' {answer}.'
    for t, (x, y, s), answer, place, obj in zip(template, names, io, places, objects, strict=True)
  ]


def corrupted(tokenizer: Tokenizer, clean: Prompts, seed: int = 1) -> Prompts:
  """p_ABC for `clean`: each prompt's template, order, place and object with three distinct
  names in its slots, none of them the clean IO or S. `io` and `s` stay the clean answer's
  tokens, so the metric on a corrupted run measures the clean answer."""
  rng = np.random.default_rng(seed)
  vocab = clean.vocab
  names = []
  for x, y, _ in clean.names:
    pool = [n for n in vocab.names if n not in (x, y)]
    if len(pool) < 3:
      raise ValueError('the ABC corruption needs at least 5 names')
    names.append(tuple(pool[i] for i in rng.choice(len(pool), 3, replace=False)))
  pad = tokenizer.eot if tokenizer.eot is not None else 0
  out = _encode(tokenizer, vocab, clean.template.tolist(), names, clean.place, clean.object, pad)
  return dataclasses.replace(out, io=clean.io, s=clean.s, order=clean.order)
