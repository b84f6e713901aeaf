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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from mechanisms.docs.lexicon import trie_pattern
from mechanisms.docs.passive import find_passive
from mechanisms.docs.prose import Prose, Sentence
from mechanisms.docs.quotes import quoted
from mechanisms.docs.spans import Span
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


def _phrase_regex(phrase: str) -> str:
    # Spaces in a listed phrase also match hyphens and line breaks ("low-hanging fruit").
    return r"[\s\-]+".join(re.escape(w) for w in phrase.split())


def _first_word(phrase: str) -> str:
    return re.split(r"[\s\-]+", phrase.strip().lower(), maxsplit=1)[0]


@dataclass(frozen=True)
class Lexicon:
    """Listed words and phrases by their first word: the rules look each word of the
    text up once, and try a phrase's expression only where its first word stands."""

    entries: dict[str, tuple[tuple[str, re.Pattern[str]], ...]]

    def starts(self) -> re.Pattern[str]:
        """Where any listed word or phrase may start."""
        return re.compile(rf"(?<![\w'’-]){trie_pattern(self.entries)}(?![\w'’])")

    @classmethod
    def build(cls, lists: dict[str, tuple[str, ...]]) -> Lexicon:
        grouped: dict[str, dict[str, list[str]]] = {}
        for rule, phrases in lists.items():
            for phrase in phrases:
                if phrase.strip():
                    grouped.setdefault(_first_word(phrase), {}).setdefault(rule, []).append(phrase)
        entries = {
            first: tuple(
                (rule, _anchored(tuple(sorted(set(ps), key=len, reverse=True))))
                for rule, ps in by_rule.items()
            )
            for first, by_rule in grouped.items()
        }
        return cls(entries)


@lru_cache(maxsize=4096)
def _anchored(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(_phrase_regex(p) for p in phrases)
    return re.compile(rf"(?:{alternatives})(?![\w'’-])", re.IGNORECASE)


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
    """An intensifier and a word of measured change, matched where the intensifier
    starts ("much faster", "significantly more reliable", "greatly reduced")."""
    changes = "|".join(
        _phrase_regex(p) for p in sorted(word_list("comparatives"), key=len, reverse=True)
    )
    intensifiers = "|".join(
        _phrase_regex(p) for p in sorted(word_list("intensifiers"), key=len, reverse=True)
    )
    return re.compile(
        rf"(?:{intensifiers})\s+(?:(?:more|less|fewer)\s+\w+|{changes}|[a-z]{{3,}}er)"
        r"(?![\w'’-])",
        re.IGNORECASE,
    )


_THERE = re.compile(r"there\s+(?:is|are|was|were|'s|’s|has\s+been|have\s+been)\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# Words in -er that compare nothing ("much power"); "far longer" does compare.
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


@lru_cache(maxsize=32)
def _lexicon(
    extra: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[Lexicon, re.Pattern[str]]:
    added = dict(extra)
    lists = {rule: words + added.get(rule, ()) for rule, words in default_lists().items()}
    # The weasel list itself belongs to find_weasels; only a project's additions go here.
    lists["weasel"] = added.get("weasel", ())
    lexicon = Lexicon.build(lists)
    pattern = _unquantified()
    for intensifier in word_list("intensifiers"):
        first = _first_word(intensifier)
        current = lexicon.entries.get(first, ())
        if all(rule != "unquantified" for rule, _ in current):
            lexicon.entries[first] = (*current, ("unquantified", pattern))
    return lexicon, lexicon.starts()


def _sentence_at(prose: Prose, offset: int) -> Sentence | None:
    i = bisect_right(prose.sentence_starts, offset) - 1
    if i < 0:
        return None
    sentence = prose.sentences[i]
    return sentence if offset < sentence.end else None


def _listed(prose: Prose, settings: Settings) -> Iterator[Hit]:
    """One pass over every paragraph for all the word-list rules: a trie of the lists'
    first words finds where a listed phrase may start, then that phrase is tried there."""
    masked = prose.doc.masked
    lowered = prose.lowered
    lexicon, starts = _lexicon(tuple(sorted(settings.extra_words.items())))
    entries = lexicon.entries
    enabled = settings.enabled
    for block in prose.doc.blocks:
        for word in starts.finditer(lowered, block.start, block.end):
            for rule, pattern in entries[word.group()]:
                if rule not in enabled:
                    continue
                found = pattern.match(lowered, word.start(), block.end)
                if found is None:
                    continue
                if rule == "unquantified" and not _unquantified_ok(prose, found):
                    continue
                # A quoted word is mentioned, not used ("the word "perhaps""), as the
                # passive and weasel finders also hold.
                if quoted(masked, found.start(), found.end()):
                    continue
                yield Hit(rule, found.start(), found.end(), masked[found.start() : found.end()])


def _unquantified_ok(prose: Prose, found: re.Match[str]) -> bool:
    """Reported only when the last word compares and the sentence has no number."""
    if found.group().split()[-1] in _NOT_COMPARATIVE:
        return False
    sentence = _sentence_at(prose, found.start())
    return sentence is None or not _DIGIT.search(prose.doc.masked, sentence.start, sentence.end)


def _finder_hits(rule: str, spans: Iterable[Span]) -> Iterator[Hit]:
    return (Hit(rule, s.start, s.end, s.text) for s in spans)


def _there_is(prose: Prose) -> Iterator[Hit]:
    masked = prose.doc.masked
    for sentence in prose.sentences:
        match = _THERE.match(masked, sentence.start, sentence.end)
        if match:
            yield Hit("there-is", match.start(), match.end(), match.group(0))


def _long_sentences(prose: Prose, settings: Settings) -> Iterator[Hit]:
    masked = prose.doc.masked
    for sentence in prose.sentences:
        if sentence.words > settings.long_sentence_words:
            yield Hit(
                "long-sentence", sentence.start, sentence.end, masked[sentence.start : sentence.end]
            )


def run(prose: Prose, settings: Settings) -> list[Hit]:
    """Every enabled prose rule's hits, in document order."""
    masked = prose.doc.masked
    enabled = settings.enabled
    found: list[Iterable[Hit]] = [_listed(prose, settings)]
    # The passive and weasel finders take plain text: one call on the whole masked
    # document, then hits that run from one paragraph into the next are dropped.
    whole: list[Hit] = []
    if "passive" in enabled:
        whole.extend(_finder_hits("passive", find_passive(masked)))
    if "weasel" in enabled:
        whole.extend(_finder_hits("weasel", find_weasels(masked)))
    starts, ends = _block_ends(prose)
    found.append(h for h in whole if _within_one_block(starts, ends, h.start, h.end))
    if "there-is" in enabled:
        found.append(_there_is(prose))
    if "long-sentence" in enabled:
        found.append(_long_sentences(prose, settings))
    accepted = settings.accepted
    hits = [
        h
        for hits in found
        for h in hits
        if not accepted or " ".join(h.text.lower().split()) not in accepted
    ]
    hits.sort(key=lambda h: (h.start, h.end, h.rule))
    return hits


def _block_ends(prose: Prose) -> tuple[list[int], list[int]]:
    blocks = prose.doc.blocks
    return [b.start for b in blocks], [b.end for b in blocks]


def _within_one_block(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    i = bisect_right(starts, start) - 1
    return i >= 0 and end <= ends[i]
