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
from collections.abc import Iterator
from dataclasses import dataclass

from mechanisms.docs import lexicon as lex
from mechanisms.docs.spans import Span

_PRONOUNS_WITH_IS = (
    "it|that|what|who|he|she|there|here|where|this|everything|nothing|something|someone|"
    "everyone|nobody"
)
# A form of "be" or "get" standing as its own word. "'s" counts only after a pronoun: after
# a noun it is nearly always the possessive ("the team's tired engineers").
_AUX = re.compile(
    r"(?<![\w'’-])(?:"
    r"(?P<be>am|is|are|was|were|be|being|been|(?:is|are|was|were|ai)n['’]t)"
    r"|(?P<get>get|gets|got|gotten|getting)"
    r")(?![\w'’-])"
    rf"|\b(?:{_PRONOUNS_WITH_IS})(?P<s>['’]s)(?![\w'’-])"
    r"|(?<=[A-Za-z])(?P<re>['’](?:re|m))(?![\w'’-])",
    re.IGNORECASE,
)
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
        if aux.start() < consumed:
            continue
        end = _passive_end(text, aux)
        if end is not None:
            start = aux.start(aux.lastgroup or 0)
            spans.append(Span(start, end, text[start:end]))
            consumed = end
    return spans


def _passive_end(text: str, aux: re.Match[str]) -> int | None:
    """Where the participle of a passive led by ``aux`` ends, or None."""
    form = aux.group(aux.lastgroup or 0).lower().replace("’", "'")
    is_get = aux.lastgroup == "get"
    tokens = list(_tokens(text, aux.end()))
    end = _declarative(tokens, form, is_get)
    if end is None and not is_get and _opens_question(text, aux.start(), aux.end()):
        end = _question(tokens, form)
    return end


def _tokens(text: str, pos: int) -> Iterator[_Token]:
    for _ in range(_LOOKAHEAD):
        m = _TOKEN.match(text, pos)
        if m is None:
            return
        word = m.group(2)
        yield _Token(
            word.lower() if word else "",
            m.group(3) or "",
            m.start(2) if word else m.start(3),
            m.end(),
            bool(m.group(1)),
            bool(word) and word[0].isupper() and not word.isupper(),
        )
        pos = m.end()


def _declarative(tokens: list[_Token], form: str, is_get: bool) -> int | None:
    """Aux, then inserted words or a parenthesis, then the participle."""
    i, inserted, degree = 0, 0, False
    while i < len(tokens):
        tok = tokens[i]
        if not tok.spaced and tok.char != ",":
            return None  # "was/fixed", "is-deployed": not prose
        if tok.char == ",":
            i = _skip_parenthesis(tokens, i)
            if i is None:
                return None
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
            return tok.end if _is_passive(tok.word, form, is_get, tokens[i + 1 :]) else None
        i += 1
    return None


def _skip_parenthesis(tokens: list[_Token], i: int) -> int | None:
    """Index after ", in the end," (a comma, at most four words, a comma), or None."""
    for j in range(i + 1, min(i + 6, len(tokens))):
        if tokens[j].char == ",":
            return j + 1
        if tokens[j].char:
            return None
    return None


def _question(tokens: list[_Token], form: str) -> int | None:
    """ "Was the bug fixed?": the participle after a subject of a few words."""
    for i, tok in enumerate(tokens[: _MAX_SUBJECT + 1]):
        if tok.char and tok.char not in "'’":
            return None
        if i == 0 or tok.char or not _is_participle(tok):
            continue
        rest = tokens[i + 1 :]
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
