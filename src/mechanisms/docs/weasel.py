"""Weasel words: words that sound meaningful and commit the writer to nothing.

``find_weasels(text)`` returns one span per weasel word or phrase in plain prose.

A weasel word makes a claim sound larger, stronger, more certain or better supported than
the text shows, with no figure or source a reader could check: vague amounts ("many",
"a lot of"), degree words ("very", "significantly"), hedges ("arguably"), claims of
self-evidence ("clearly", "of course") and unattributed sources ("it is widely believed
that", "studies show"). The same words are not weasels when the text does give the
figure ("many of the 12 services", "significantly (p < 0.01)"), when they are mentioned
in quotes, in fixed expressions and technical terms ("too many", "many-to-many",
"rather than", "huge pages", "highly available"), as manner adverbs ("write clearly"),
and in names ("Vast Data"). benchmarks/data/weasel_sentences.tsv holds the full
definition and the labelled examples it was checked on.
"""

from __future__ import annotations

import re

from mechanisms.docs import lexicon as lex
from mechanisms.docs.lexicon import DETERMINERS, MANNER_FOLLOW
from mechanisms.docs.quotes import quoted
from mechanisms.docs.spans import Span

QUANTITIES = (
    "a large number of",
    "a number of",
    "a lot of",
    "lots of",
    "plenty of",
    "a handful of",
    "a few",
    "many",
    "few",
    "several",
    "various",
    "numerous",
    "countless",
    "much",
)
INTENSIFIERS = (
    "very",
    "extremely",
    "exceedingly",
    "remarkably",
    "significantly",
    "substantially",
    "considerably",
    "quite",
    "fairly",
    "relatively",
    "rather",
    "somewhat",
    "pretty",
    "really",
    "truly",
    "completely",
    "totally",
    "entirely",
    "absolutely",
    "literally",
    "incredibly",
    "highly",
    "massively",
    "enormously",
    "vastly",
    "hugely",
    "largely",
    "mostly",
    "surprisingly",
    "interestingly",
    "huge",
    "tiny",
    "vast",
    "excellent",
)
HEDGES = ("arguably", "seemingly", "supposedly", "presumably", "virtually")
SELF_EVIDENCE = (
    "clearly",
    "obviously",
    "evidently",
    "undoubtedly",
    "certainly",
    "of course",
    "needless to say",
    "it goes without saying",
)
# Every single word and fixed phrase above; the unattributed-source patterns are below.
WEASEL_WORDS = QUANTITIES + INTENSIFIERS + HEDGES + SELF_EVIDENCE

_SAY = (
    r"(?:say|said|think|thought|believe|believed|argue|argued|feel|felt|claim|claimed|"
    r"agree|agreed|suggest|suggests|know|knew)"
)
# Unattributed sources: (the words one may start with, the whole pattern).
_AUTHORITY = (
    (
        ("it is",),
        r"it\s+is\s+(?:widely\s+|generally\s+|commonly\s+|often\s+|well\s+)?"
        r"(?:believed|known|said|thought|accepted|agreed|argued|assumed|understood|claimed)"
        r"(?=\s+(?:that|to)\b)",
    ),
    (
        ("widely", "generally", "commonly", "universally"),
        r"(?:widely|generally|commonly|universally)\s+(?:believed|known|accepted|regarded|"
        r"considered|agreed|thought|acknowledged|recogni[sz]ed)\b",
    ),
    (
        ("some", "many", "most"),
        rf"(?:some|many|most)\s+(?:people|users|engineers|experts|developers|critics|"
        rf"observers|teams|customers|folks)\s+{_SAY}\b",
    ),
    (
        ("experts", "studies", "research", "researchers", "analysts", "scientists", "sources"),
        r"(?:experts|studies|research|researchers|analysts|scientists|sources)\s+"
        r"(?:say|show|shows|suggest|suggests|agree|believe|indicate|indicates|claim|"
        r"ha(?:ve|s)\s+shown)\b",
    ),
    (("everyone",), r"everyone\s+knows\b"),
    (("as we",), r"as\s+we\s+all\s+know\b"),
)


def _phrase(words: str) -> str:
    return r"\s+".join(re.escape(w) for w in words.split()) + r"\b"


def _entries() -> dict[str, tuple[re.Pattern[str], ...]]:
    """What a weasel may start with (a listed word or phrase, or an unattributed source's
    first words), and the patterns to try there in order: the source first ("many
    engineers think" before "many")."""
    entries: dict[str, list[str]] = {}
    for starts, pattern in _AUTHORITY:
        for start in starts:
            entries.setdefault(start, []).append(pattern)
    for phrase in WEASEL_WORDS:
        entries.setdefault(phrase, []).append(_phrase(phrase))
    return {
        start: tuple(re.compile(p, re.IGNORECASE) for p in patterns)
        for start, patterns in entries.items()
    }


_ENTRIES = _entries()
# Where a weasel may start: one pass of a trie of the entries, as written and
# capitalised (much faster than re.IGNORECASE over the whole text); the entry's patterns
# are then tried at that position only.
_STARTS = re.compile(r"\b" + lex.trie_pattern(lex.cased(_ENTRIES)) + r"(?![A-Za-z])")

_NUMBER = (
    r"(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"fifteen|twenty|thirty|forty|fifty|hundred|thousand|dozen)\b"
)
# The figure that anchors a vague amount: "many of the 12", "several (three)",
# "as many as 40", "few: 2 of 40".
_ANCHOR = re.compile(
    rf"\s*(?:\(\s*{_NUMBER}|of\s+(?:the|these|those|our|its|their|all)\s+{_NUMBER}"
    rf"|as\s+{_NUMBER}|:\s*{_NUMBER})",
    re.IGNORECASE,
)
_STATISTIC = re.compile(r"[^.;]{0,40}?\(?\bp\s*[<=≤]", re.IGNORECASE)
_NEXT_WORD = re.compile(r"\s*([A-Za-z]+|\S)?")
_WORD_BEFORE = re.compile(r"([A-Za-z']+)\s*$")

_AMOUNTS = frozenset(("many", "few", "several", "various", "numerous", "much"))
_NOT_AMOUNT_AFTER = frozenset(("too", "how", "as"))  # "as many workers as you like"
_MANNER = frozenset(("clearly", "fairly"))
# Technical terms built on an intensifier: "huge pages", "highly available".
_TERMS = {"huge": ("page", "pages"), "tiny": ("page", "pages"), "highly": ("available",)}


def find_weasels(text: str) -> list[Span]:
    spans: list[Span] = []
    consumed = 0
    for start in _STARTS.finditer(text):
        at = start.start()
        if at < consumed:
            continue
        for pattern in _ENTRIES[" ".join(start.group().lower().split())]:
            m = pattern.match(text, at)
            if m is not None:
                if _counts(text, m):
                    spans.append(Span(m.start(), m.end(), m.group()))
                    consumed = m.end()
                break
    return spans


def _counts(text: str, m: re.Match[str]) -> bool:
    """Whether a matched word is a weasel in its context (see the module's docstring)."""
    start, end = m.start(), m.end()
    word = " ".join(m.group(0).lower().split())
    before = text[max(0, start - 40) : start]
    prev_char = text[start - 1 : start]
    next_char = text[end : end + 1]
    if "-" in (prev_char, next_char) or quoted(text, start, end):
        return False  # part of "many-to-many"; or mentioned, not used
    sentence_start = not _mid_sentence(before)
    if m.group(0)[0].isupper() and not sentence_start:
        return False  # a name: "Vast Data"
    previous = _previous_word(before)
    following = _next_word(text, end)
    if word in _AMOUNTS:
        return previous not in _NOT_AMOUNT_AFTER and not _ANCHOR.match(text, end)
    if word == "very":  # "the very first" is an adjective; "a very good plan" is not
        return not (previous in lex.POINTING and following in lex.VERY_AS_ADJECTIVE_BEFORE)
    if word == "rather":
        return following != "than" and previous not in ("would", "or", "'d")
    if word == "pretty":
        return previous not in DETERMINERS
    if word in _TERMS:
        return following not in _TERMS[word]
    if word == "significantly":
        return previous != "statistically" and not _STATISTIC.match(text, end)
    if word in _MANNER and not sentence_start:
        return not (
            following in MANNER_FOLLOW or not following.isalpha() or following in lex.SET_OUT
        )
    return True


def _mid_sentence(before: str) -> bool:
    """After a word or a comma in the same paragraph: not where a sentence, a list item
    or a heading starts."""
    text = before.rstrip()
    last = text[-1:]
    return bool(last) and (last.isalnum() or last in ",;") and "\n\n" not in before[len(text) :]


def _previous_word(before: str) -> str:
    m = _WORD_BEFORE.search(before)
    return m.group(1).lower() if m else ""


def _next_word(text: str, pos: int) -> str:
    m = _NEXT_WORD.match(text, pos)
    return (m.group(1) or "").lower() if m else ""
