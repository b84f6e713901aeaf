"""Weasel words: words that sound meaningful and commit the writer to nothing.

``find_weasels(text)`` returns one span per weasel word or phrase in plain prose.
"""

from __future__ import annotations

import re

from mechanisms.docs.spans import Span

WEASEL_WORDS = (
    "many",
    "various",
    "very",
    "fairly",
    "several",
    "extremely",
    "exceedingly",
    "quite",
    "remarkably",
    "few",
    "surprisingly",
    "mostly",
    "largely",
    "huge",
    "tiny",
    "excellent",
    "interestingly",
    "significantly",
    "substantially",
    "clearly",
    "vast",
    "relatively",
    "completely",
    "literally",
    "some",
    "somewhat",
    "arguably",
    "probably",
    "possibly",
)
_WEASEL = re.compile(r"\b(?:" + "|".join(WEASEL_WORDS) + r")\b", re.IGNORECASE)


def find_weasels(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), m.group(0)) for m in _WEASEL.finditer(text)]
