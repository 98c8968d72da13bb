"""The Spanish-English verse pairs: diatheke's output parsed and cleaned (a small fixture with each
quirk), aligned by reference (a verse missing on one side drops the pair), the real modules'
alignment, the split's determinism and disjointness, the tokenizer and the rows."""

import functools

import numpy as np

from jdl.data import bible_pairs as bible
from jdl.data import ding

# diatheke -f plain output, as the modules print it: a footnote (WEB, -o f), Strong's numbers
# (RV1909), a verse over several lines with a paragraph break inside, a Psalm superscription
# repeated before every verse (and carried on to the next psalm), the module name, and the WEB's
# glossary after the last verse.
ENGLISH = '\n'.join(
  [
    'Genesis 1:1: In the beginning, God [1:1 The Hebrew word rendered “God” is “אֱלֹהִ֑ים”.] '
    'created the heavens and the earth.',
    'Genesis 1:2: The earth was formless and empty. ',
    'Genesis 3:14: Yahweh God said to the serpent,',
    'you are cursed above all livestock,',
    'and above every animal of the field. ',
    '',
    'Aaron held his peace.',
    '',
    '',
    'A Psalm by David, when he fled from Absalom his son.',
    '  Psalms 3:1: Yahweh, how my adversaries have increased!',
    'Many are those who rise up against me. ',
    '',
    'A Psalm by David, when he fled from Absalom his son. [3:2 soul: or, life [or, breath]] ',
    '  Psalms 3:2: Many there are who say of my soul, [3:2 soul: or, life [or, breath]] ',
    '',
    'A Psalm by David, when he fled from Absalom his son.',
    '  Psalms 4:1: Answer me when I call, God of my righteousness. ',
    '  Tobit 1:1: The book of the words of Tobit. <title type="psalm">A Psalm by David, when he '
    'fled from Absalom his son.</title>',
    '  Revelation of John 22:21: The grace of the Lord Jesus Christ be with all the saints. '
    'Amen.   ',
    '',
    '',
    '',
    '   The following words used in the World English Bible (WEB) are not very common.  ',
    '(engWEB2015eb)',
  ]
)

SPANISH = '\n'.join(
  [
    'Genesis 1:1: EN el principio crió Dios los cielos y la tierra.',
    'Genesis 1:2: Y la tierra estaba desordenada y vacía <H0922>, y las tinieblas estaban sobre '
    'la haz del abismo.',
    'Genesis 3:14: Y Jehová Dios dijo á la serpiente:',
    'Psalms 3:1: Salmo de David, cuando huía de delante de Absalom su hijo. ¡OH Jehová, cuánto '
    'se han multiplicado mis enemigos!',
    'Psalms 3:2: Muchos dicen de mi vida: No hay para él salud en Dios. (Selah.)',
    'Psalms 4:1: RESPÓNDEME cuando clamo, oh Dios de mi justicia.',
    'Psalms 4:2: Hijos de los hombres, ¿hasta cuándo volveréis mi honra en infamia?',
    'Revelation of John 22:21: La gracia de nuestro Señor Jesucristo <G5547> sea con todos '
    'vosotros. Amén.   ',
    '(spaRV1909eb)',
  ]
)


def needs_bibles(fn):
  """`make test` installs the data first (`make data`); missing data is a failure that names the
  command, never a skip."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    assert bible.present(), f'data missing; install with: {bible.INSTALL}'
    return fn(*args, **kwargs)

  return wrapped


def test_parse_cleans_footnotes_tags_lines_headings_and_back_matter():
  en = bible.parse_verses(ENGLISH)
  assert list(en) == [
    ('Genesis', 1, 1),
    ('Genesis', 1, 2),
    ('Genesis', 3, 14),
    ('Psalms', 3, 1),
    ('Psalms', 3, 2),
    ('Psalms', 4, 1),
    ('Tobit', 1, 1),
    ('Revelation of John', 22, 21),
  ]
  assert en[('Genesis', 1, 1)] == 'In the beginning, God created the heavens and the earth.'
  assert en[('Genesis', 3, 14)] == (
    'Yahweh God said to the serpent, you are cursed above all livestock, and above every animal '
    'of the field. Aaron held his peace.'
  )
  # The repeated superscription belongs to no verse; the verse's own second line does.
  assert en[('Psalms', 3, 1)] == (
    'Yahweh, how my adversaries have increased! Many are those who rise up against me.'
  )
  assert en[('Psalms', 3, 2)] == 'Many there are who say of my soul,'  # a nested footnote
  assert en[('Psalms', 4, 1)] == 'Answer me when I call, God of my righteousness.'
  assert en[('Tobit', 1, 1)] == 'The book of the words of Tobit.'  # a heading glued on, in tags
  assert en[('Revelation of John', 22, 21)].endswith('with all the saints. Amen.')
  es = bible.parse_verses(SPANISH)
  assert es[('Genesis', 1, 2)] == (
    'Y la tierra estaba desordenada y vacía, y las tinieblas estaban sobre la haz del abismo.'
  )
  assert es[('Revelation of John', 22, 21)] == (
    'La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén.'
  )


def test_spanish_superscription_is_cut_and_capitals_lowered():
  verse = 'Salmo de David, cuando huía de delante de Absalom su hijo. ¡OH Jehová, cuánto!'
  assert bible.spanish_verse(('Psalms', 3, 1), verse) == '¡Oh Jehová, cuánto!'
  assert bible.spanish_verse(('Psalms', 4, 1), 'RESPÓNDEME cuando') == 'Respóndeme cuando'
  # Only a psalm's first verse has a superscription to cut.
  assert bible.spanish_verse(('Genesis', 1, 1), 'EN el principio') == 'En el principio'
  assert bible.spanish_verse(('Psalms', 3, 2), 'Muchos dicen. OH') == 'Muchos dicen. Oh'


def test_alignment_by_reference_drops_a_verse_missing_on_either_side():
  pairs, counts = bible.align(bible.parse_verses(SPANISH), bible.parse_verses(ENGLISH))
  refs = [ref for ref, _, _ in pairs]
  # Psalms 4:2 has no English, Tobit no Spanish: both dropped, the rest paired by reference.
  assert ('Psalms', 4, 2) not in refs and ('Tobit', 1, 1) not in refs
  assert counts == {'pairs': 7, 'missing_english': 1, 'missing_spanish': 1, 'empty': 0}
  by_ref = {ref: (es, en) for ref, es, en in pairs}
  assert by_ref[('Psalms', 3, 1)] == (
    '¡Oh Jehová, cuánto se han multiplicado mis enemigos!',
    'Yahweh, how my adversaries have increased! Many are those who rise up against me.',
  )
  assert by_ref[('Genesis', 1, 1)][0] == 'En el principio crió Dios los cielos y la tierra.'
  # An empty verse on one side drops its pair too.
  pairs, counts = bible.align({('Genesis', 1, 1): ' '}, {('Genesis', 1, 1): 'In the beginning'})
  assert pairs == [] and counts['empty'] == 1


@needs_bibles
def test_real_modules_align_31079_verses_by_reference():
  pairs, counts = bible.read_pairs()
  assert {k: v for k, v in counts.items() if k != 'shifted_chapters'} == {
    'pairs': 30931,
    'missing_english': 2,  # Romans 16:26-27 (the WEB has them at 14:25-26)
    'missing_spanish': 6222,  # the deuterocanonical books
    'empty': 22,
    'shifted': 147,  # 8 chapters numbered differently, dropped whole
  }
  assert 'Numbers 13' in counts['shifted_chapters']  # the WEB's 13:1 is the RV1909's 12:16
  by_ref = {ref: (es, en) for ref, es, en in pairs}
  assert by_ref[('John', 3, 16)][0].startswith('Porque de tal manera amó Dios al mundo')
  assert by_ref[('John', 3, 16)][1].startswith('For God so loved the world')
  assert by_ref[('Psalms', 23, 1)] == (
    'Jehová es mi pastor; nada me faltará.',
    'Yahweh is my shepherd; I shall lack nothing.',
  )
  assert pairs[-1][0] == ('Revelation of John', 22, 21)
  assert pairs[-1][2] == 'The grace of the Lord Jesus Christ be with all the saints. Amen.'
  text = ' '.join(es + ' ' + en for _, es, en in pairs)
  for markup in ('<', '>', '[', ']', 'A praise psalm by David', 'This Psalm is a genuine'):
    assert markup not in text, markup
  # A heading carrying the next verse's footnote is still a heading (Proverbs 1:7).
  assert by_ref[('Proverbs', 1, 7)][1] == (
    'The fear of Yahweh is the beginning of knowledge, but the foolish despise wisdom and '
    'instruction.'
  )


@needs_bibles
def test_split_is_fixed_disjoint_and_holds_out_the_whole_book():
  pairs, _ = bible.read_pairs()
  a = bible.split_pairs(pairs, 'Acts', seed=0)
  b = bible.split_pairs(pairs, 'Acts', seed=0)
  assert a == b  # deterministic
  assert {k: len(v) for k, v in a.items()} == {
    'train': 28428,
    'validation': 500,
    'test': 1000,
    'book': 1003,
  }
  refs = {k: {ref for ref, _, _ in v} for k, v in a.items()}
  names = list(refs)
  for i, x in enumerate(names):
    for y in names[i + 1 :]:
      assert not refs[x] & refs[y], (x, y)
  assert sum(map(len, refs.values())) == len(pairs)
  assert {ref[0] for ref in refs['book']} == {'Acts'}
  assert not any(ref[0] == 'Acts' for ref in refs['train'] | refs['test'] | refs['validation'])
  # The random verses spread over the books; another seed draws others.
  assert len({ref[0] for ref in refs['test']}) > 50
  c = bible.split_pairs(pairs, 'Acts', seed=1)
  assert {ref for ref, _, _ in c['test']} != refs['test']


@needs_bibles
def test_tokenizer_is_fitted_on_training_verses_and_round_trips():
  tok = bible.tokenizer(8000)
  assert tok.n_vocab == 8000
  parts = bible.splits()
  for _, es, en in parts['train'][:200] + parts['test'][:50]:
    assert tok.decode(tok.encode(es)) == es and tok.decode(tok.encode(en)) == en
  # Cached: the same object, not retrained.
  assert bible.tokenizer(8000) is tok


def test_a_chapter_numbered_one_verse_apart_is_found():
  rng = np.random.default_rng(0)
  lengths = rng.integers(20, 300, size=(2, 12))
  pairs = []
  for c, shift in ((1, 0), (2, 1)):  # chapter 2's English is one verse late
    es = ['x' * n for n in lengths[c - 1]]
    en = ['y' * (n + 5) for n in np.roll(lengths[c - 1], shift)]
    pairs += [(('Numbers', c, v + 1), es[v], en[v]) for v in range(12)]
  assert bible.shifted_chapters(pairs) == {('Numbers', 2)}


def test_one_pair_a_row_has_the_packed_rows_fields():
  rows = bible.one_per_row([[5, 6, 7], [8]], [[20], [21, 22]], length=5)
  assert rows['src'].tolist() == [[5, 6, 7, 0, 0], [8, 0, 0, 0, 0]]
  assert rows['src_segments'].tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]
  assert rows['tgt_in'].tolist() == [[ding.BOS, 20, 0, 0, 0], [ding.BOS, 21, 22, 0, 0]]
  assert rows['tgt_out'].tolist() == [[20, ding.EOS, 0, 0, 0], [21, 22, ding.EOS, 0, 0]]
  assert rows['tgt_positions'][1].tolist() == [0, 1, 2, 0, 0]
  assert set(rows) == set(ding.pack([[5]], [[6]], 4, 0))
  assert all(v.dtype == np.int32 for v in rows.values())
