"""Readability statistics: the counts a word processor shows and the classic formulas.

Pure functions over counts, so each formula is checked on its own (tests compare them
with textstat's on reference texts). Syllables come from the CMU Pronouncing Dictionary
(its first pronunciation, as textstat does), with Pyphen's hyphenation for words the
dictionary does not know; difficult words for Dale–Chall are those missing from the
Dale–Chall list of about 3,000 familiar words. Both lists ship in ``docs/data`` (see its
README for sources and licences), so nothing is downloaded at run time.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pyphen

# Reading speed and page size the length check assumes (decision doc 0015).
WORDS_PER_MINUTE = 1700 / 15  # 1,700 words in 15 minutes
WORDS_PER_PAGE = 500  # a single-spaced page in 11–12 pt type

# Gunning Fog's "complex" words have this many syllables or more.
COMPLEX_SYLLABLES = 3


def _data(name: str) -> bytes:
    return resources.files("mechanisms.docs").joinpath("data", name).read_bytes()


@lru_cache(maxsize=1)
def _cmu_syllables() -> dict[str, int]:
    text = gzip.decompress(_data("cmudict-syllables.tsv.gz")).decode("utf-8")
    table = {}
    for line in text.splitlines():
        word, _, count = line.partition("\t")
        table[word] = int(count)
    return table


@lru_cache(maxsize=1)
def easy_words() -> frozenset[str]:
    return frozenset(_data("dale-chall-easy-words.txt").decode("utf-8").split())


@lru_cache(maxsize=1)
def _hyphenator() -> pyphen.Pyphen:
    return pyphen.Pyphen(lang="en_US")


@lru_cache(maxsize=65536)
def syllables(word: str) -> int:
    """Syllables in one lowercase word (its apostrophes kept, other punctuation gone)."""
    if not word:
        return 0
    known = _cmu_syllables().get(word)
    if known is not None:
        return known
    return len(_hyphenator().positions(word)) + 1


@dataclass(frozen=True)
class Counts:
    """What the formulas are made of."""

    words: int
    sentences: int
    syllables: int
    letters: int  # letters and digits
    complex_words: int  # 3+ syllables and not a familiar word (Gunning Fog)
    polysyllables: int  # 3+ syllables (SMOG)
    difficult_words: int  # not on the Dale–Chall list of familiar words


def _per(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def flesch_reading_ease(c: Counts) -> float:
    """Flesch (1948): 206.835 − 1.015 × words/sentence − 84.6 × syllables/word."""
    if not c.words or not c.sentences:
        return 0.0
    return 206.835 - 1.015 * _per(c.words, c.sentences) - 84.6 * _per(c.syllables, c.words)


def flesch_kincaid_grade(c: Counts) -> float:
    """Kincaid et al. (1975): 0.39 × words/sentence + 11.8 × syllables/word − 15.59."""
    if not c.words or not c.sentences:
        return 0.0
    return 0.39 * _per(c.words, c.sentences) + 11.8 * _per(c.syllables, c.words) - 15.59


def gunning_fog(c: Counts) -> float:
    """Gunning (1952): 0.4 × (words/sentence + 100 × complex words/words)."""
    if not c.words or not c.sentences:
        return 0.0
    return 0.4 * (_per(c.words, c.sentences) + 100 * _per(c.complex_words, c.words))


def smog(c: Counts) -> float:
    """McLaughlin (1969), scaled to any number of sentences:
    1.043 × √(polysyllables × 30 / sentences) + 3.1291."""
    if not c.sentences:
        return 0.0
    return 1.043 * math.sqrt(c.polysyllables * 30 / c.sentences) + 3.1291


def coleman_liau(c: Counts) -> float:
    """Coleman & Liau (1975): 0.0588 L − 0.296 S − 15.8, L letters and S sentences
    per 100 words. (textstat uses 0.058; the published constant is 0.0588.)"""
    if not c.words or not c.sentences:
        return 0.0
    letters = 100 * _per(c.letters, c.words)
    sentences = 100 * _per(c.sentences, c.words)
    return 0.0588 * letters - 0.296 * sentences - 15.8


def automated_readability_index(c: Counts) -> float:
    """Smith & Senter (1967): 4.71 × characters/word + 0.5 × words/sentence − 21.43,
    characters being letters and digits."""
    if not c.words or not c.sentences:
        return 0.0
    return 4.71 * _per(c.letters, c.words) + 0.5 * _per(c.words, c.sentences) - 21.43


def dale_chall(c: Counts) -> float:
    """Dale & Chall (1948): 0.1579 × % difficult words + 0.0496 × words/sentence,
    plus 3.6365 when more than 5 % of the words are difficult."""
    if not c.words or not c.sentences:
        return 0.0
    percent = 100 * _per(c.difficult_words, c.words)
    score = 0.1579 * percent + 0.0496 * _per(c.words, c.sentences)
    return score + 3.6365 if percent > 5 else score


SCORES = {
    "flesch_reading_ease": flesch_reading_ease,
    "flesch_kincaid_grade": flesch_kincaid_grade,
    "gunning_fog": gunning_fog,
    "smog": smog,
    "coleman_liau": coleman_liau,
    "automated_readability_index": automated_readability_index,
    "dale_chall": dale_chall,
}


def scores(c: Counts) -> dict[str, float]:
    return {name: round(formula(c), 2) for name, formula in SCORES.items()}


def reading_minutes(words: int) -> float:
    return words / WORDS_PER_MINUTE


def pages(words: int) -> float:
    return words / WORDS_PER_PAGE
