"""Passive-voice detection in English prose.

``find_passive(text)`` returns one span per passive construction, from the form of
"be" (or "get") to the past participle, in plain prose (Markdown already removed).

A small analyser instead of one regular expression: a compiled pattern finds each form
of "be" and "get"; from there a short walk over the next words skips what may stand in
between ("was quickly fixed", "wasn't ever reviewed", "was, in the end, rolled back"),
follows a chain of auxiliaries ("is being deployed"), or, in a question, steps over the
subject ("Was the bug fixed?"). The word it lands on must be a past participle (the
irregular list, or a regular -ed form that is not a noun or an adjective, see
``lexicon.py``), and the context decides between a passive and an adjective: a
degree adverb ("very tired"), a feeling or a state with no agent ("is interested in",
"the door is locked"), an idiom ("got started", "are used to deploying", "is supposed
to"). See docs/decisions/0017-passive-voice-and-weasel-words.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mechanisms.docs import lexicon as lex
from mechanisms.docs.quotes import quoted
from mechanisms.docs.spans import Span

_BE_FORMS = ("am", "is", "are", "was", "were", "be", "being", "been")
_NEGATED = tuple(f"{v}n{q}t" for v in ("is", "are", "was", "were", "ai") for q in "'’")
_GET_FORMS = frozenset(("get", "gets", "got", "gotten", "getting"))
_CONTRACTED = tuple(q + suffix for q in "'’" for suffix in ("s", "re", "m"))
# A form of "be" or "get" standing as its own word, or a contracted one. What stands
# before it is checked in ``_standalone``: a look-behind here would stop the engine from
# skipping ahead to the next possible first letter, which is most of its speed.
_AUX = re.compile(
    lex.trie_pattern([*lex.cased((*_BE_FORMS, *_NEGATED, *_GET_FORMS)), *_CONTRACTED])
    + r"(?![\w'’-])"
)
_WORD_BEFORE = re.compile(r"([A-Za-z]+)$")
# One word (letters, inner hyphens and apostrophes) or one other character, after spaces.
_TOKEN = re.compile(r"(\s*)(?:([A-Za-z]+(?:[-'’][A-Za-z]+)*)|(\S))")
_SENTENCE_END = re.compile(r"[.?!]")

_PRESENT_BE = frozenset(("am", "is", "are", "'s", "'re", "'m", "isn't", "aren't", "ain't"))
_CHAIN = frozenset(("be", "being", "been"))
_MAX_INSERTED = 4  # words between the auxiliary and the participle
_MAX_SUBJECT = 6  # words of a question's subject
_LOOKAHEAD = 14  # tokens read after an auxiliary


@dataclass(frozen=True, slots=True)
class _Token:
    word: str  # lower case; "" for punctuation
    char: str  # the punctuation character, "" for a word
    start: int
    end: int
    spaced: bool  # whitespace before it
    capital: bool  # "Ted", not "TLS": a name in the middle of a sentence


def find_passive(text: str) -> list[Span]:
    spans: list[Span] = []
    consumed = 0
    for aux in _AUX.finditer(text):
        if aux.start() < consumed or not _standalone(text, aux.start()):
            continue
        start, form = aux.start(), aux.group().lower().replace("’", "'")
        end = _passive_end(text, aux, form)
        if end is not None and not quoted(text, start, end):
            spans.append(Span(start, end, text[start:end]))
            consumed = end
    return spans


def _standalone(text: str, start: int) -> bool:
    """A whole word, or a contraction: "'s" after a pronoun ("it's", not "the team's"),
    "'re" and "'m" after any word."""
    before = text[start - 1 : start]
    if text[start] not in "'’":
        return not (before.isalnum() or before in ("_", "'", "’", "-"))
    if text[start + 1] != "s":
        return before.isalpha()
    word = _WORD_BEFORE.search(text, max(0, start - 12), start)
    return word is not None and word.group().lower() in lex.PRONOUNS_WITH_IS


def _passive_end(text: str, aux: re.Match[str], form: str) -> int | None:
    """Where the participle of a passive led by ``aux`` ends, or None."""
    is_get = form in _GET_FORMS
    tokens = _Tokens(text, aux.end())
    end = _declarative(tokens, form, is_get)
    if end is None and not is_get and _opens_question(text, aux.start(), aux.end()):
        end = _question(tokens, form)
    return end


class _Tokens:
    """The words after an auxiliary, read only as far as a rule looks."""

    __slots__ = ("_text", "_pos", "_read")

    def __init__(self, text: str, pos: int) -> None:
        self._text, self._pos, self._read = text, pos, []

    def __getitem__(self, i: int) -> _Token | None:
        while len(self._read) <= i:
            if len(self._read) >= _LOOKAHEAD or not self._next():
                return None
        return self._read[i]

    def _next(self) -> bool:
        m = _TOKEN.match(self._text, self._pos)
        if m is None:
            return False
        word = m.group(2)
        self._read.append(
            _Token(
                word.lower() if word else "",
                m.group(3) or "",
                m.start(2) if word else m.start(3),
                m.end(),
                bool(m.group(1)),
                bool(word) and word[0].isupper() and not word.isupper(),
            )
        )
        self._pos = m.end()
        return True

    def after(self, i: int, n: int) -> list[_Token]:
        return [t for t in (self[j] for j in range(i + 1, i + 1 + n)) if t is not None]


def _declarative(tokens: _Tokens, form: str, is_get: bool) -> int | None:
    """Aux, then inserted words or a parenthesis, then the participle."""
    i, inserted, degree = 0, 0, False
    while (tok := tokens[i]) is not None:
        if not tok.spaced and tok.char != ",":
            return None  # "was/fixed", "is-deployed": not prose
        if tok.char == ",":
            after = _skip_parenthesis(tokens, i)
            if after is None:
                return None
            i = after
            continue
        if tok.char:
            return None
        if tok.word in _CHAIN and not is_get:
            form, degree = tok.word, False
        elif _is_inserted(tok.word) and inserted < _MAX_INSERTED:
            inserted += 1
            degree = tok.word in lex.DEGREE
        else:
            if degree or not _is_participle(tok):
                return None
            return tok.end if _is_passive(tok.word, form, is_get, tokens.after(i, 2)) else None
        i += 1
    return None


def _skip_parenthesis(tokens: _Tokens, i: int) -> int | None:
    """Index after ", in the end," (a comma, at most four words, a comma), or None."""
    for j in range(i + 1, i + 6):
        tok = tokens[j]
        if tok is None or (tok.char and tok.char != ","):
            return None
        if tok.char == ",":
            return j + 1
    return None


def _question(tokens: _Tokens, form: str) -> int | None:
    """ "Was the bug fixed?": the participle after a subject of a few words."""
    for i in range(_MAX_SUBJECT + 1):
        tok = tokens[i]
        if tok is None or (tok.char and tok.char not in "'’"):
            return None
        if i == 0 or tok.char or not _is_participle(tok):
            continue
        rest = tokens.after(i, 2)
        follower = rest[0] if rest else None
        if follower is None or follower.char or _ends_question_participle(follower.word):
            return tok.end if _is_passive(tok.word, form, False, rest) else None
    return None


def _ends_question_participle(word: str) -> bool:
    return word in lex.AFTER_QUESTION_PARTICIPLE or word.endswith("ly")


def _opens_question(text: str, start: int, end: int) -> bool:
    """The auxiliary leads its sentence (after at most a question word and one more word)
    and the sentence ends in a question mark."""
    before = text[max(0, start - 40) : start]
    cut = max(before.rfind(c) for c in ".?!\n")
    lead = before[cut + 1 :].split()
    if lead and (len(lead) > 2 or lead[0].lower() not in lex.QUESTION_WORDS):
        return False
    stop = _SENTENCE_END.search(text, end)
    return stop is not None and stop.group() == "?"


def _is_inserted(word: str) -> bool:
    return word in lex.INSERTED or (word.endswith("ly") and len(word) > 3)


def _is_participle(tok: _Token) -> bool:
    return not tok.capital and is_participle(tok.word)


def is_participle(word: str) -> bool:
    """Whether a lower-case word can be a past participle that takes an object."""
    if word in lex.IRREGULAR_PARTICIPLES:
        return True
    if "-" in word:
        prefix, _, rest = word.partition("-")
        return prefix in lex.VERB_PREFIXES and is_participle(rest)
    if len(word) < 4 or not word.endswith("ed"):
        return False
    if word in lex.NOT_PARTICIPLES or word in lex.INTRANSITIVE:
        return False
    if word.endswith("eed"):
        return word in lex.EED_PARTICIPLES
    if word.startswith("un") and not word.startswith("under"):
        return word in lex.UN_PARTICIPLES or _is_un_verb(word)
    return True


def _is_un_verb(participle: str) -> bool:
    stem = participle[:-2]
    return any(base in lex.UN_VERBS for base in (stem, participle[:-1], stem[:-1], stem[:-1] + "y"))


def _is_passive(participle: str, form: str, is_get: bool, after: list[_Token]) -> bool:
    """Passive or an adjective, from the words around the participle."""
    following = [t.word for t in after[:2]]
    nxt = following[0] if following else ""
    then = following[1] if len(following) > 1 else ""
    if nxt == "to" and participle in ("used", "supposed", "bound"):
        return _to_idiom_is_passive(participle, then)
    agent = nxt == "by"
    if is_get and participle in lex.GET_IDIOMS:
        return False
    if participle in lex.STATIVE:
        return agent
    if participle in lex.RESULTATIVE and form in _PRESENT_BE:
        return agent
    return True


def _to_idiom_is_passive(participle: str, then: str) -> bool:
    if participle == "supposed":
        return False  # "is supposed to": a modal
    if participle == "used":  # "used to it / to deploying" vs "used to gate"
        return not (then in lex.DETERMINERS or then.endswith("ing"))
    return then not in lex.BOUND_TO_VERBS  # "bound to fail" vs "bound to the socket"
