"""The docs prose finders' labelled sets and how a finder is scored on them.

Used by benchmarks/docs_quality.py (ours and write-good side by side) and by
tests/docs (ours stays above its reached figures), so both score the same way.

- ``passive_sentences.tsv``: sentence, label (1 = holds a passive), category, source,
  split. A sentence counts as passive for a tool when the tool flags at least one
  passive in it; precision, recall and F1 are over sentences.
- ``weasel_sentences.tsv``: sentence with each weasel word in braces, category, source,
  split. A found span is right when it overlaps a marked one; a marked one is found when
  a found span overlaps it. Precision and recall are over spans.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PASSIVE_SET = DATA / "passive_sentences.tsv"
WEASEL_SET = DATA / "weasel_sentences.tsv"

Spans = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class PassiveSentence:
    text: str
    passive: bool
    category: str
    source: str
    split: str


@dataclass(frozen=True)
class WeaselSentence:
    text: str  # braces removed
    weasels: tuple[tuple[int, int], ...]  # [start, end) of each marked word in text
    category: str
    source: str
    split: str


@dataclass(frozen=True)
class Score:
    """Precision over what a tool flagged, recall over what the labels hold (for spans
    the two counts of right answers may differ: one span can overlap two marked ones)."""

    found: int
    found_right: int
    wanted: int
    wanted_found: int

    @property
    def precision(self) -> float:
        return self.found_right / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.wanted_found / self.wanted if self.wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "found": self.found,
            "found_right": self.found_right,
            "wanted": self.wanted,
            "wanted_found": self.wanted_found,
        }


def _rows(path: Path) -> list[list[str]]:
    lines = (line for line in path.open(encoding="utf-8") if not line.startswith("#"))
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:]  # the header


def passive_sentences(path: Path = PASSIVE_SET) -> list[PassiveSentence]:
    return [
        PassiveSentence(text, label == "1", category, source, split)
        for text, label, category, source, split in _rows(path)
    ]


_MARK = re.compile(r"\{([^{}]*)\}")


def unmark(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The sentence without braces, and where each braced word now stands."""
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    length, pos = 0, 0
    for m in _MARK.finditer(marked):
        plain.append(marked[pos : m.start()])
        length += m.start() - pos
        spans.append((length, length + len(m.group(1))))
        plain.append(m.group(1))
        length += len(m.group(1))
        pos = m.end()
    plain.append(marked[pos:])
    return "".join(plain), tuple(spans)


def weasel_sentences(path: Path = WEASEL_SET) -> list[WeaselSentence]:
    out = []
    for marked, category, source, split in _rows(path):
        text, weasels = unmark(marked)
        out.append(WeaselSentence(text, weasels, category, source, split))
    return out


def score_sentences(labels: Iterable[bool], flagged: Iterable[bool]) -> Score:
    pairs = list(zip(labels, flagged, strict=True))
    right = sum(label and flag for label, flag in pairs)
    return Score(sum(flag for _, flag in pairs), right, sum(label for label, _ in pairs), right)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score_spans(gold: Iterable[Spans], found: Iterable[Spans]) -> Score:
    found_n = found_right = wanted_n = wanted_found = 0
    for wanted, got in zip(gold, found, strict=True):
        found_n += len(got)
        found_right += sum(any(_overlaps(g, w) for w in wanted) for g in got)
        wanted_n += len(wanted)
        wanted_found += sum(any(_overlaps(w, g) for g in got) for w in wanted)
    return Score(found_n, found_right, wanted_n, wanted_found)


def by_split(
    items: Sequence[PassiveSentence] | Sequence[WeaselSentence],
    scorer: Callable[[list[int]], Score],
) -> dict[str, Score]:
    """A score for every split and for all sentences ("all"); ``scorer`` gets indices."""
    splits = sorted({item.split for item in items})
    out = {s: scorer([i for i, item in enumerate(items) if item.split == s]) for s in splits}
    out["all"] = scorer(list(range(len(items))))
    return out
