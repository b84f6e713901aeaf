"""Comments anchored to paragraphs so they survive edits (decision 0016).

An anchor is the paragraph's fingerprint, its text and the fingerprints of the paragraphs
before and after it. On a new version it is re-located: first by fingerprint (the same
text, possibly moved), then by fuzzy match on words (the paragraph was edited). When no
paragraph is close enough, or two are equally close and the neighbours cannot tell them
apart, the anchor is orphaned: a comment shown as outdated is better than one shown
against the wrong paragraph. Pure functions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from difflib import SequenceMatcher

# How alike (0..1, over words) an edited paragraph must be to keep its comments.
FUZZY_THRESHOLD = 0.6
# Two candidates closer than this are a tie the context must break, or nobody wins.
TIE_MARGIN = 0.1

_BLANK_LINES = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def blocks(body: str) -> list[str]:
    """The body's blocks as written (separated by blank lines): what a reader comments on.
    Fenced code keeps its blank lines inside one block."""
    found: list[str] = []
    fenced = False
    current: list[str] = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                found.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        found.append("\n".join(current))
    return [b for b in found if b.strip()]


def paragraphs(body: str) -> list[str]:
    """The blocks, whitespace-normalised: what anchors compare."""
    return [normalise(b) for b in blocks(body)]


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def fingerprint(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Anchor:
    fingerprint: str
    text: str
    before: str
    after: str


@dataclass(frozen=True)
class Located:
    """Where an anchor stands in a version: its paragraph index (None when orphaned) and
    how it got there: exact (same text, same place), moved, changed (fuzzy) or orphaned."""

    index: int | None
    state: str


def anchor_at(paras: list[str], index: int) -> Anchor:
    if not 0 <= index < len(paras):
        raise IndexError(index)
    return Anchor(
        fingerprint(paras[index]),
        paras[index],
        fingerprint(paras[index - 1]) if index > 0 else "",
        fingerprint(paras[index + 1]) if index + 1 < len(paras) else "",
    )


def _context_score(anchor: Anchor, prints: list[str], index: int) -> int:
    before = prints[index - 1] if index > 0 else ""
    after = prints[index + 1] if index + 1 < len(prints) else ""
    return int(before == anchor.before) + int(after == anchor.after)


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, _WORD.findall(a.lower()), _WORD.findall(b.lower())).ratio()


def _pick(anchor: Anchor, prints: list[str], scored: list[tuple[float, int]]) -> int | None:
    """The one best candidate, or None when the best cannot be told from the runner-up."""
    scored = sorted(scored, key=lambda s: (-s[0], -_context_score(anchor, prints, s[1])))
    if len(scored) == 1:
        return scored[0][1]
    (best, i), (second, j) = scored[0], scored[1]
    if best - second >= TIE_MARGIN:
        return i
    ci, cj = _context_score(anchor, prints, i), _context_score(anchor, prints, j)
    return i if ci > cj else None


def relocate(anchor: Anchor, paras: list[str], previous_index: int | None = None) -> Located:
    prints = [fingerprint(p) for p in paras]
    exact = [i for i, p in enumerate(prints) if p == anchor.fingerprint]
    if exact:
        index = exact[0] if len(exact) == 1 else _pick(anchor, prints, [(1.0, i) for i in exact])
        if index is None:
            return Located(None, "orphaned")
        return Located(index, "exact" if index == previous_index else "moved")
    scored = [
        (s, i) for i, p in enumerate(paras) if (s := similarity(anchor.text, p)) >= FUZZY_THRESHOLD
    ]
    if not scored:
        return Located(None, "orphaned")
    index = _pick(anchor, prints, scored)
    return Located(index, "changed") if index is not None else Located(None, "orphaned")
