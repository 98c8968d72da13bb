"""Dictionary descriptions of the ten Fashion-MNIST classes, from WordNet and GCIDE, for the
CLIP-style image-text model (jdl.models.clip, jdl.tasks.clip).

Install:  apt-get install -y dict-gcide wordnet-base   (then `make data`, or
          python -m jdl.data.descriptions, which writes ~/.cache/jdl/multimodal/descriptions.json
          and prints the counts per class). GCIDE is GPL: the file is generated, never shipped.

WordNet. Each class names its words (`CLASS_WORDS`, e.g. sneaker, gym shoe, tennis shoe). Of the
noun synsets holding one of them, a *core* synset is one whose hypernym closure reaches the
class's root (clothing 03051540, footwear 03381126 or bag 02773037): the garment senses, so
"sneaker" as an informer (noun.person) and "coat" as an animal's fur are left out. A few senses
reach the root and still do not describe the item of the class (`EXCLUDED`: "dress" as clothing
in general, "jumper" as a pinafore); they are listed by offset with the reason. The direct
hyponyms of the core synsets are kinds of the item ("half boot: a boot reaching halfway up to
the knee") and are descriptions too; a synset that two classes would claim (T-shirt is a
hyponym of shirt) goes only to the class whose core it is, or to none. A description is
`lemma, lemma: gloss`, the gloss without its quoted examples.

GCIDE. The entries whose headword is a class word, noun entries only, cut into senses
(numbered `1.`, lettered `(a)`, or paragraphs); a sense is kept when it names a garment word
(`GARMENT_WORDS`: shoe, garment, worn, ...) and is not one of GCIDE's copies of WordNet 1.5
(those are WordNet's text again). The 1913 Webster's "sneaker, one who sneaks" names no garment
word and goes.

Held-out classes. `text_corpus(held_out)` is what the tokenizer is fitted on: the training
classes' descriptions and every GCIDE and WordNet sentence, less every sentence that mentions a
word of a held-out class (or is one of its descriptions).
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import re
import sys

import numpy as np

from jdl.data import words
from jdl.data.errors import DataError
from jdl.data.fashion_mnist import CLASSES
from jdl.paths import CACHE as JDL_CACHE

CACHE = JDL_CACHE / 'multimodal'
PATH = CACHE / 'descriptions.json'
VERSION = 2
INSTALL = f'{words.INSTALL}, then: python -m jdl.data.descriptions (or: make data)'

CLOTHING, FOOTWEAR, BAG, HANDBAG = '03051540', '03380867', '02773037', '02774152'
# (the words naming the class, the WordNet roots its senses must reach, the synset itself counted)
CLASS_WORDS = (
  (('t-shirt', 'tee shirt', 'top'), (CLOTHING,)),
  (('trouser', 'trousers', 'slacks', 'breeches'), (CLOTHING,)),
  (('pullover', 'sweater', 'jumper'), (CLOTHING,)),
  (('dress', 'frock', 'gown'), (CLOTHING,)),
  (('coat', 'overcoat', 'topcoat'), (CLOTHING,)),
  (('sandal',), (FOOTWEAR,)),
  (('shirt',), (CLOTHING,)),
  (('sneaker', 'gym shoe', 'tennis shoe', 'running shoe'), (FOOTWEAR,)),
  (('bag', 'handbag', 'purse', 'shoulder bag', 'tote bag'), (BAG, HANDBAG)),
  (('ankle boot', 'boot', 'half boot'), (FOOTWEAR,)),
)
# Senses that reach the root but do not describe the class's item.
EXCLUDED = {
  '02728440': 'dress = apparel, clothing in general',
  '02756098': 'dress = attire, clothing of a distinctive style',
  '03604400': 'jumper = pinafore, a sleeveless dress',
  '03604536': 'jumper = a loose jacket worn by workmen',
  '03604763': 'jumper = a coverall worn by children',
  '03398153': 'frock = a habit worn by clerics',
  '03450734': 'gown = a surgical gown',
  '03824381': 'gown = nightgown',
}
# Core senses whose kinds are not the class's item: bag in general has sandbags and tea bags.
NO_HYPONYMS = {BAG: 'bag in general: its kinds are sandbags, tea bags, air bags, ...'}
# A GCIDE sense must name one of these (other than its own class's words): what describes an
# item worn or carried.
GARMENT_WORDS = frozenset(
  'garment garments shoe shoes boot boots wear worn wearing dress clothing clothes coat bag sack '
  'pouch trousers breeches pantaloons jacket sweater knit knitted leg legs foot feet sole skirt '
  'sleeve sleeves waist shirt gown robe cloak purse linen woolen shoulders overshoe slipper'.split()
)
MIN_WORDS = 4
# GCIDE senses that name a garment word and still describe no item of the class (by their start).
EXCLUDED_GCIDE = {
  'An external covering like a garment': 'coat = an animal or plant covering',
  'An instrument of torture': 'boot = the torture instrument',
}


# ---- WordNet ------------------------------------------------------------------------------------


def _wordnet_nouns() -> dict[str, tuple[list[str], list[str], list[str], str]]:
  """offset -> (lemmas, hypernym offsets, hyponym offsets, gloss) of every noun synset."""
  path = words.WORDNET / 'data.noun'
  if not path.is_file():
    raise DataError(path, 'WordNet is missing', f'install it with: {INSTALL}')
  out = {}
  with open(path, encoding='utf-8', errors='replace') as f:
    for line in f:
      if line.startswith(' ') or ' | ' not in line:
        continue
      head, gloss = line.split(' | ', 1)
      fields = head.split()
      n = int(fields[3], 16)
      lemmas = [fields[4 + 2 * i].lower().replace('_', ' ') for i in range(n)]
      rest = fields[4 + 2 * n :]
      pointers = [rest[1 + 4 * i : 5 + 4 * i] for i in range(int(rest[0]))]
      up = [p[1] for p in pointers if p[0] in ('@', '@i') and p[2] == 'n']
      down = [p[1] for p in pointers if p[0] in ('~', '~i') and p[2] == 'n']
      out[fields[0]] = (lemmas, up, down, gloss.strip())
  return out


def _closure(nouns, offset: str) -> set[str]:
  """The synset and all its hypernyms."""
  seen, stack = {offset}, [offset]
  while stack:
    for up in nouns[stack.pop()][1]:
      if up not in seen:
        seen.add(up)
        stack.append(up)
  return seen


def _definition(gloss: str) -> str:
  """The gloss without its quoted examples: 'a canvas shoe ...; "he ..."' -> 'a canvas shoe ...'."""
  parts = [p.strip() for p in gloss.split(';')]
  return '; '.join(p for p in parts if p and not p.startswith('"')).strip()


def wordnet_descriptions() -> list[list[dict]]:
  """Per class: [{text, source, synset, kind}] (kind 'core' or 'hyponym')."""
  nouns = _wordnet_nouns()
  cores = []
  for class_words, roots in CLASS_WORDS:
    found = [
      off
      for off, (lemmas, _, _, _) in nouns.items()
      if set(lemmas) & set(class_words)
      and off not in EXCLUDED
      and set(roots) & _closure(nouns, off)
    ]
    cores.append(sorted(found))
  claimed = collections.Counter(h for core in cores for off in core for h in nouns[off][2])
  all_cores = {off for core in cores for off in core}
  out = []
  for core in cores:
    entries = [(off, 'core') for off in core]
    hyponyms = sorted({h for off in core if off not in NO_HYPONYMS for h in nouns[off][2]})
    entries += [
      (h, 'hyponym')
      for h in hyponyms
      if h not in all_cores and claimed[h] == 1 and h not in EXCLUDED
    ]
    out.append(
      [
        {
          'text': f'{", ".join(nouns[off][0])}: {_definition(nouns[off][3])}',
          'source': 'wordnet',
          'synset': off,
          'kind': kind,
        }
        for off, kind in entries
      ]
    )
  return out


# ---- GCIDE --------------------------------------------------------------------------------------

_SENSE = re.compile(r'(?:^|\s)(?:\d{1,2}\.|\([a-z]\))\s')


def _gcide_entries(headwords: set[str]) -> dict[str, list[str]]:
  """headword -> its raw GCIDE entries."""
  for path in (words.GCIDE, words.GCIDE_INDEX):
    if not path.is_file():
      raise DataError(path, 'the GCIDE dictionary is missing', f'install it with: {INSTALL}')
  data = gzip.open(words.GCIDE).read()
  out = collections.defaultdict(list)
  seen = set()
  for line in words.GCIDE_INDEX.read_text(encoding='utf-8', errors='replace').splitlines():
    parts = line.split('\t')
    if len(parts) != 3 or parts[0].lower() not in headwords:
      continue
    span = (words.b64(parts[1]), words.b64(parts[2]))
    if span in seen:
      continue
    seen.add(span)
    out[parts[0].lower()].append(data[span[0] : span[0] + span[1]].decode('utf-8', 'replace'))
  return out


def gcide_senses(entry: str) -> list[tuple[str, str]]:
  """(sense text, source tag) of one noun entry; [] for other parts of speech."""
  if not re.search(r',\s*n\.', entry.split('\n', 1)[0]):
    return []
  senses = []
  for i, paragraph in enumerate(re.split(r'\n\s*\n', entry)):
    tags = re.findall(
      r'\[(1913 Webster|Webster 1913 Suppl\.[^\]]*|WordNet [^\]]*|PJC)\]', paragraph
    )
    source = tags[-1] if tags else 'GCIDE'
    if source.startswith('WordNet'):  # GCIDE's copy of WordNet 1.5: WordNet's text again
      continue
    first_line = next((ln for ln in paragraph.split('\n') if ln.strip()), '')
    if i > 0 and len(first_line) - len(first_line.lstrip()) >= 6:
      continue  # an indented quotation ("Sails of silk and ropes of sandal. --Longfellow.")
    if first_line.strip().startswith(('Note:', 'Syn:')):
      continue
    text = ' '.join(words.clean_gcide(paragraph).split())
    if i == 0:  # the headword line: 'Sandal , n. (a) A kind of shoe ...'
      text = re.sub(r'^.*?,\s*n\.\s*', '', text, count=1)
    text = re.sub(r'\s--\s?[A-Z].*$', ' ', text)  # a citation ("--Longfellow.") ends a quote
    for piece in _SENSE.split(text):
      piece = piece.strip(' .;,')
      if piece:
        senses.append((piece + '.', source))
  return senses


def _is_garment_sense(text: str, own_words) -> bool:
  """At least MIN_WORDS words, a garment word other than the class's own, no subject label
  ('(Anat.) The glandular organ ...') and not a compound's definition ('Boot hook , a hook ...')."""
  tokens = words.tokenize(text)
  own = {t for w in own_words for t in words.tokenize(w)}
  own |= {t + 's' for t in own}
  if re.match(r'\([A-Z][a-z]*\.', text) or re.match(r"[A-Z][\w' ]* (,|\([A-Z][a-z]*\.\))", text):
    return False
  if text.startswith(tuple(EXCLUDED_GCIDE)):
    return False
  return len(tokens) >= MIN_WORDS and bool((GARMENT_WORDS - own) & set(tokens))


def gcide_descriptions() -> list[list[dict]]:
  headwords = {w for class_words, _ in CLASS_WORDS for w in class_words}
  entries = _gcide_entries(headwords)
  out = []
  for class_words, _ in CLASS_WORDS:
    found = []
    for word in class_words:
      for entry in entries.get(word, []):
        for text, source in gcide_senses(entry):
          if _is_garment_sense(text, class_words):
            found.append({'text': f'{word}: {text}', 'source': f'gcide ({source})'})
    out.append(found)
  return out


# ---- the file -----------------------------------------------------------------------------------


def _normal(text: str) -> str:
  return ' '.join(words.tokenize(text.split(':', 1)[-1]))


def extract() -> list[list[dict]]:
  """Per class: WordNet's descriptions, then GCIDE's that say something new."""
  out = []
  for wn, gc in zip(wordnet_descriptions(), gcide_descriptions()):
    seen, merged = set(), []
    for d in wn + gc:
      key = _normal(d['text'])
      if key not in seen:
        seen.add(key)
        merged.append(d)
    out.append(merged)
  return out


def present() -> bool:
  return PATH.is_file()


def write() -> list[list[dict]]:
  classes = extract()
  CACHE.mkdir(parents=True, exist_ok=True)
  tmp = PATH.with_suffix(f'.{os.getpid()}.tmp')
  tmp.write_text(
    json.dumps({'version': VERSION, 'classes': CLASSES, 'descriptions': classes}, indent=1),
    encoding='utf-8',
  )
  tmp.replace(PATH)
  return classes


def load() -> list[list[dict]]:
  """Per class (Fashion-MNIST's order): [{text, source, ...}]."""
  if not PATH.is_file():
    raise DataError(PATH, 'the class descriptions have not been extracted', INSTALL)
  try:
    data = json.loads(PATH.read_text(encoding='utf-8'))
    classes = data['descriptions']
    ok = data['version'] == VERSION and len(classes) == len(CLASSES)
  except (OSError, ValueError, KeyError, TypeError):
    ok = False
  if not ok or not all(classes):
    raise DataError(PATH, 'not a descriptions file of this version', f'rerun: {INSTALL}')
  return classes


def counts(classes: list[list[dict]]) -> list[dict[str, int]]:
  """Per class: descriptions by source family (wordnet, gcide) and in all."""
  out = []
  for found in classes:
    c = collections.Counter(d['source'].split(' ')[0] for d in found)
    out.append({'wordnet': c['wordnet'], 'gcide': c['gcide'], 'total': len(found)})
  return out


# ---- text without the held-out classes -----------------------------------------------------------


def held_out_terms(held_out: tuple[int, ...], classes: list[list[dict]]) -> set[str]:
  """The words naming the held-out classes and the lemmas of their core synsets (not of the
  hyponyms: 'white' names white flannel trousers, and every sentence with 'white' would go)."""
  terms = set()
  for c in held_out:
    terms |= set(CLASS_WORDS[c][0])
    for d in classes[c]:
      if d.get('kind') == 'core':
        terms |= {t.strip() for t in d['text'].split(':', 1)[0].split(',')}
  return {' '.join(words.tokenize(t)) for t in terms if t}


def mentions(text: str, terms: set[str]) -> bool:
  """Does `text` contain one of `terms` (a word or a run of words), plural 's' included?"""
  padded = f' {" ".join(words.tokenize(text))} '
  return any(f' {t} ' in padded or f' {t}s ' in padded for t in terms)


def training_descriptions(held_out: tuple[int, ...], classes: list[list[dict]]) -> dict:
  """class -> the texts of its descriptions that training may see: the training classes', less
  those that mention a held-out class (a kurta "usually worn with a salwar": a kind of trouser)."""
  terms = held_out_terms(held_out, classes)
  return {
    c: [d['text'] for d in found if not mentions(d['text'], terms)]
    for c, found in enumerate(classes)
    if c not in held_out
  }


def text_corpus(held_out: tuple[int, ...], classes: list[list[dict]]) -> list[str]:
  """What the tokenizer is fitted on: the training classes' descriptions and the dictionary
  text (GCIDE paragraphs, WordNet glosses), less every sentence mentioning a held-out class."""
  terms = held_out_terms(held_out, classes)
  held_texts = {_normal(d['text']) for c in held_out for d in classes[c]}
  train = [t for texts in training_descriptions(held_out, classes).values() for t in texts]
  dictionary = words.gcide_sentences() + words.wordnet_sentences()
  kept = [s for s in dictionary if not mentions(s, terms) and _normal(s) not in held_texts]
  return train + kept


# ---- tokens and image-text pairs ----------------------------------------------------------------


def tokenizer(held_out: tuple[int, ...], vocab_size: int = 8000):
  """A BPE (jdl.data.ding's SubwordTokenizer) fitted on `text_corpus(held_out)`, cached."""
  from jdl.data.ding import SubwordTokenizer

  held = '-'.join(map(str, sorted(held_out)))
  path = CACHE / f'bpe{vocab_size}.v{VERSION}.held{held}.json'
  if path.is_file():
    return SubwordTokenizer.load(path, vocab_size)
  tok = SubwordTokenizer.train(text_corpus(tuple(held_out), load()), vocab_size)
  CACHE.mkdir(parents=True, exist_ok=True)
  tok.save(path)
  return tok


def encode(tok, texts: list[str], max_len: int) -> np.ndarray:
  """int32 [N, max_len]: the ids of each text, cut at max_len, PAD (0) after."""
  out = np.zeros((len(texts), max_len), np.int32)
  for i, ids in enumerate(tok.encode_batch(texts)):
    ids = ids[:max_len]
    out[i, : len(ids)] = ids
  return out


class PairSource:
  """Training pairs for the grain pipeline: row r is image r; its text is one description of
  its class, drawn anew for every batch from the batch's generator (seeded by the pipeline from
  seed and step, so a resumed run draws the same)."""

  def __init__(self, images, labels, texts_by_class: dict[int, np.ndarray]):
    self.images, self.labels, self.texts = images, labels, texts_by_class
    missing = sorted(set(np.unique(labels).tolist()) - set(texts_by_class))
    if missing:
      raise ValueError(f'classes {missing} have images but no descriptions')

  def __len__(self) -> int:
    return len(self.labels)

  def batch(self, indices: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    rng = rng if rng is not None else np.random.default_rng(0)
    indices = np.asarray(indices).reshape(-1)
    labels = self.labels[indices]
    text = np.stack([self.texts[int(c)][rng.integers(len(self.texts[int(c)]))] for c in labels])
    return {'image': self.images[indices], 'label': labels, 'text': text}


def load_pairs(
  held_out: tuple[int, ...] = (1, 7),
  vocab_size: int = 8000,
  max_len: int = 64,
  train_rows: int | None = None,
  eval_rows: int | None = None,
):
  """Splits of Fashion-MNIST images of the training classes with descriptions of their class:
  train (a PairSource) and validation (each image with description i mod n of its class, so the
  loss is the same at every evaluation). The held-out classes' images and texts are not in
  them. `train_rows`/`eval_rows` keep the first rows (smoke runs)."""
  from jdl.data import fashion_mnist
  from jdl.data.splits import Splits

  classes = load()
  tok = tokenizer(tuple(held_out), vocab_size)
  texts = {
    c: encode(tok, found, max_len)
    for c, found in training_descriptions(tuple(held_out), classes).items()
  }
  seen = [c for c in range(len(CLASSES)) if c not in held_out]
  splits = fashion_mnist.load(classes=tuple(seen))
  train = {k: v[:train_rows] for k, v in splits.train.items()}
  valid = {k: v[:eval_rows] for k, v in splits.evals['validation'].items()}
  order = np.zeros(len(valid['label']), np.int64)
  for c in seen:
    rows = np.flatnonzero(valid['label'] == c)
    order[rows] = np.arange(len(rows)) % len(texts[c])
  valid['text'] = np.stack([texts[int(c)][i] for c, i in zip(valid['label'], order)])
  return Splits(
    train=PairSource(train['image'], train['label'], texts), evals={'validation': valid}
  )


def main(argv=None) -> int:
  classes = write()
  print(f'wrote {PATH}')
  print(f'{"class":14s} {"wordnet":>8s} {"gcide":>6s} {"total":>6s}')
  for name, c in zip(CLASSES, counts(classes)):
    print(f'{name:14s} {c["wordnet"]:8d} {c["gcide"]:6d} {c["total"]:6d}')
  held = (1, 7)
  kept = training_descriptions(held, classes)
  dropped = {
    CLASSES[c]: len(classes[c]) - len(t) for c, t in kept.items() if len(t) < len(classes[c])
  }
  print(
    f'held out {[CLASSES[c] for c in held]}: training descriptions dropped for naming them: '
    f'{dropped}'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
