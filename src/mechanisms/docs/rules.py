"""The prose rules: what each looks for, why it matters, and what to do instead.

Each rule runs once over the whole masked document (one precompiled expression per
rule, or one look at each sentence's start), so checking costs a few passes of the
regular-expression engine rather than one per sentence or per word. A match that runs
from one paragraph into the next is dropped: the masked text keeps line breaks, and a
pattern allowing whitespace could otherwise join two paragraphs.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from mechanisms.docs.passive import find_passive
from mechanisms.docs.prose import Prose, Sentence
from mechanisms.docs.weasel import WEASEL_WORDS, find_weasels


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str  # error | warning | suggestion (SARIF's error | warning | note)
    why: str
    suggestion: str


PROSE_RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "passive",
            "Passive voice",
            "warning",
            "Passive voice hides who acts; a decision needs an owner for each action.",
            "Name who does it: “The gate blocks the deploy”, not “the deploy is blocked”.",
        ),
        Rule(
            "weasel",
            "Weasel word",
            "warning",
            "Weasel words sound precise and commit to nothing a reader can check.",
            "Replace it with a number or a fact, or delete it.",
        ),
        Rule(
            "hedge",
            "Hedge",
            "warning",
            "Hedging makes the reader guess how sure you are.",
            "State the claim and its evidence, or say what is unknown and how you will find out.",
        ),
        Rule(
            "adverb",
            "Needless adverb",
            "suggestion",
            "Intensifiers and fillers add length, not meaning.",
            "Delete it, or use a stronger verb.",
        ),
        Rule(
            "there-is",
            "“There is” opener",
            "suggestion",
            "“There is/are” delays the subject and often hides the actor.",
            "Start with the subject: “Three teams use it”, not “There are three teams that use it”.",
        ),
        Rule(
            "cliche",
            "Cliché",
            "warning",
            "Readers skim over phrases they have seen a thousand times.",
            "Say what you mean in plain words.",
        ),
        Rule(
            "long-sentence",
            "Long sentence",
            "warning",
            "Long sentences make readers hold too much in mind at once.",
            "Split it into two or three sentences.",
        ),
        Rule(
            "unquantified",
            "Adjective that should be data",
            "warning",
            "“Much faster” without a number asks the reader to trust instead of check.",
            "Give the measurement: how much, measured how (e.g. “p99 from 180 ms to 40 ms”).",
        ),
    )
}

STRUCTURE_RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "missing-section",
            "Missing section",
            "error",
            "Reviewers need this section to judge the decision.",
            "Add the section under one of the expected headings.",
        ),
        Rule(
            "empty-section",
            "Empty section",
            "error",
            "A heading without text promises an answer and gives none.",
            "Write the section or say in one sentence why it does not apply.",
        ),
        Rule(
            "alternative-without-reason",
            "Alternative without a reason",
            "error",
            "An alternative listed without why it was discarded cannot be weighed.",
            "Say why it was discarded (“because …”, “rejected: …”).",
        ),
        Rule(
            "door-not-stated",
            "One-way or two-way door not stated",
            "error",
            "How reversible a decision is sets how much care it needs.",
            "Say whether this is a one-way door (hard to undo) or a two-way door.",
        ),
        Rule(
            "too-long",
            "Too long",
            "warning",
            "Decision docs are read in the meeting; past 3 pages they are skimmed.",
            "Cut to the decision, its reasons and what it changes; move detail to an appendix.",
        ),
        Rule(
            "directive",
            "Unknown rule in a comment",
            "error",
            "An inline comment names a rule that does not exist, so it switches nothing off.",
            "Use one of the rule names `mech doc rules` lists.",
        ),
    )
}

RULES: dict[str, Rule] = {**PROSE_RULES, **STRUCTURE_RULES}
# Rules whose word list a project may extend in its configuration.
LIST_RULES = ("weasel", "hedge", "adverb", "cliche")


def word_list(name: str) -> tuple[str, ...]:
    """A data file's entries: one a line, ``#`` starts a comment."""
    text = resources.files("mechanisms.docs").joinpath("data", f"{name}.txt").read_text("utf-8")
    entries = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(dict.fromkeys(e for e in entries if e))


@lru_cache(maxsize=64)
def phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """One expression for a list of words and phrases; spaces match hyphens and line
    breaks too, longer phrases win over their prefixes."""
    if not phrases:
        return None
    parts = [
        r"[\s\-]+".join(re.escape(w) for w in p.split())
        for p in sorted(set(phrases), key=len, reverse=True)
    ]
    return re.compile(r"(?<![\w'’-])(?:" + "|".join(parts) + r")(?![\w'’-])", re.IGNORECASE)


@lru_cache(maxsize=1)
def default_lists() -> dict[str, tuple[str, ...]]:
    weasels = {w.lower() for w in WEASEL_WORDS}
    return {
        "hedge": word_list("hedges"),
        "adverb": tuple(w for w in word_list("adverbs") if w.lower() not in weasels),
        "cliche": word_list("cliches"),
    }


@lru_cache(maxsize=1)
def _unquantified() -> re.Pattern[str]:
    intensifiers = r"|".join(
        r"\s+".join(re.escape(w) for w in p.split())
        for p in sorted(word_list("intensifiers"), key=len, reverse=True)
    )
    changes = r"|".join(
        r"\s+".join(re.escape(w) for w in p.split())
        for p in sorted(word_list("comparatives"), key=len, reverse=True)
    )
    return re.compile(
        rf"(?<![\w'’-])(?:{intensifiers})\s+"
        rf"(?:(?:more|less|fewer)\s+\w+|{changes}|[a-z]{{3,}}er)(?![\w'’-])",
        re.IGNORECASE,
    )


_THERE = re.compile(r"there\s+(?:is|are|was|were|'s|’s|has\s+been|have\s+been)\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# Comparatives in -er that are no comparison ("much power", "far longer" is one).
_NOT_COMPARATIVE = frozenset(
    [
        "other",
        "order",
        "under",
        "over",
        "after",
        "never",
        "ever",
        "per",
        "user",
        "users",
        "paper",
        "number",
        "water",
        "matter",
        "power",
        "rather",
        "either",
        "neither",
        "together",
        "whether",
        "member",
    ]
)


@dataclass(frozen=True)
class Settings:
    enabled: frozenset[str]
    extra_words: dict[str, tuple[str, ...]]
    accepted: frozenset[str]
    long_sentence_words: int = 30


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    start: int
    end: int
    text: str
    detail: str = ""


def _block_ends(prose: Prose) -> tuple[list[int], list[int]]:
    blocks = prose.doc.blocks
    return [b.start for b in blocks], [b.end for b in blocks]


def _within_one_block(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    i = bisect_right(starts, start) - 1
    return i >= 0 and end <= ends[i]


def _matches(pattern: re.Pattern[str] | None, text: str) -> Iterable[tuple[int, int, str]]:
    if pattern is None:
        return ()
    return ((m.start(), m.end(), m.group(0)) for m in pattern.finditer(text))


def _list_rule_matches(
    prose: Prose, rule: str, settings: Settings
) -> Iterable[tuple[int, int, str]]:
    extra = settings.extra_words.get(rule, ())
    if rule == "weasel":
        builtin: Iterable[tuple[int, int, str]] = (
            (s.start, s.end, s.text) for s in find_weasels(prose.doc.masked)
        )
        return [*builtin, *_matches(phrase_pattern(extra), prose.doc.masked)]
    return _matches(phrase_pattern(default_lists()[rule] + extra), prose.doc.masked)


def _passive(prose: Prose, _settings: Settings) -> Iterable[tuple[int, int, str]]:
    return ((s.start, s.end, s.text) for s in find_passive(prose.doc.masked))


def _unquantified_matches(prose: Prose, _settings: Settings) -> Iterable[tuple[int, int, str]]:
    masked = prose.doc.masked
    for start, end, text in _matches(_unquantified(), masked):
        if text.split()[-1].lower() in _NOT_COMPARATIVE:
            continue
        sentence = _sentence_at(prose, start)
        if sentence is not None and _DIGIT.search(masked, sentence.start, sentence.end):
            continue
        yield start, end, text


def _sentence_at(prose: Prose, offset: int) -> Sentence | None:
    i = bisect_right(prose.sentence_starts, offset) - 1
    if i < 0:
        return None
    sentence = prose.sentences[i]
    return sentence if offset < sentence.end else None


def _there_is(prose: Prose, _settings: Settings) -> Iterable[tuple[int, int, str]]:
    masked = prose.doc.masked
    for sentence in prose.sentences:
        match = _THERE.match(masked, sentence.start, sentence.end)
        if match:
            yield match.start(), match.end(), match.group(0)


def _long_sentences(prose: Prose, settings: Settings) -> Iterable[tuple[int, int, str]]:
    masked = prose.doc.masked
    for sentence in prose.sentences:
        if sentence.words > settings.long_sentence_words:
            yield sentence.start, sentence.end, masked[sentence.start : sentence.end]


Finder = Callable[[Prose, Settings], Iterable[tuple[int, int, str]]]
FINDERS: dict[str, Finder] = {
    "passive": _passive,
    "weasel": lambda prose, settings: _list_rule_matches(prose, "weasel", settings),
    "hedge": lambda prose, settings: _list_rule_matches(prose, "hedge", settings),
    "adverb": lambda prose, settings: _list_rule_matches(prose, "adverb", settings),
    "there-is": _there_is,
    "cliche": lambda prose, settings: _list_rule_matches(prose, "cliche", settings),
    "long-sentence": _long_sentences,
    "unquantified": _unquantified_matches,
}


def run(prose: Prose, settings: Settings) -> list[Hit]:
    """Every prose rule's hits, in document order."""
    starts, ends = _block_ends(prose)
    accepted = settings.accepted
    hits = []
    for rule, finder in FINDERS.items():
        if rule not in settings.enabled:
            continue
        for start, end, text in finder(prose, settings):
            if not _within_one_block(starts, ends, start, end):
                continue
            if accepted and " ".join(text.lower().split()) in accepted:
                continue
            hits.append(Hit(rule, start, end, text))
    hits.sort(key=lambda h: (h.start, h.end))
    return hits
