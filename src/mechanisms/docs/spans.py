"""A matched stretch of text: the unit every prose rule reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Characters ``text[start:end]`` of the string a finder was given."""

    start: int
    end: int
    text: str
