"""Sentences and words of a parsed document, found in one pass over its prose blocks.

Words: a run of letters or digits, joined through apostrophes and through a hyphen or
a full stop between two letters ("one-way", "don't", "3.5", "e.g" count once, as a
word processor counts them). Sentences end at ``.``, ``!`` or ``?`` followed by a
space or the end of the paragraph, except after common abbreviations; a paragraph or
list item ends its last sentence even without a full stop.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from mechanisms.docs import readability
from mechanisms.docs.markdown import ParsedDoc

WORD = re.compile(r"\w(?:[\w'’]|[-.](?=\w))*")
_SENTENCE_END = re.compile(r"[.!?]+[\"'’”)\]]*(?=\s|$)")
_LAST_TOKEN = re.compile(r"(\S+)$")
# Full stops that end an abbreviation, not a sentence.
ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "jr",
        "sr",
        "inc",
        "ltd",
        "co",
        "approx",
        "fig",
        "al",
        "eq",
    ]
)


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int
    end: int
    words: int


@dataclass
class Prose:
    doc: ParsedDoc
    sentences: list[Sentence]
    paragraphs: int
    counts: readability.Counts
    sentence_starts: list[int]
    lowered: str  # the masked text in lower case, for the word-list rules


def _is_abbreviation(text: str, at: int) -> bool:
    token = _LAST_TOKEN.search(text, max(0, at - 12), at)
    return bool(token) and token.group(1).lower().lstrip("([\"'") in ABBREVIATIONS


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in one block's text, trimmed of spaces."""
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.group(0)[0] == "." and _is_abbreviation(text, match.start()):
            continue
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        if s < e:
            trimmed.append((s, e))
    return trimmed


def _key(word: str) -> str:
    """The dictionary form of a lowercase word: as textstat strips it before counting."""
    if "-" in word or "." in word:
        word = word.replace("-", "").replace(".", "")
    if "’" in word:
        word = word.replace("’", "'")
    return word.strip("'")


def analyse(doc: ParsedDoc) -> Prose:
    masked = doc.masked
    lowered = masked.lower()
    tally: Counter[str] = Counter()
    sentences: list[Sentence] = []
    paragraphs = 0
    for block in doc.blocks:
        text = masked[block.start : block.end]
        counted = False
        for s, e in _sentence_spans(text):
            words = WORD.findall(lowered, block.start + s, block.start + e)
            if not words:
                continue
            tally.update(words)
            sentences.append(Sentence(block.start + s, block.start + e, len(words)))
            counted = True
        paragraphs += counted
    return Prose(
        doc=doc,
        sentences=sentences,
        paragraphs=paragraphs,
        counts=_counts(tally, len(sentences)),
        sentence_starts=[s.start for s in sentences],
        lowered=lowered,
    )


def _counts(tally: Counter[str], sentences: int) -> readability.Counts:
    easy = readability.easy_words()
    words = syllables = letters = complex_words = polysyllables = difficult = 0
    for word, n in tally.items():
        key = _key(word)
        count = readability.syllables(key)
        words += n
        syllables += count * n
        letters += n * sum(ch.isalnum() for ch in key)
        familiar = key in easy
        if count >= readability.COMPLEX_SYLLABLES:
            polysyllables += n
            if not familiar:
                complex_words += n
        if not familiar:
            difficult += n
    return readability.Counts(
        words=words,
        sentences=sentences,
        syllables=syllables,
        letters=letters,
        complex_words=complex_words,
        polysyllables=polysyllables,
        difficult_words=difficult,
    )
