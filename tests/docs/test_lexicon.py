"""The trie-shaped pattern the prose finders scan with matches exactly its words, and the
finders give exact, ordered spans on any text."""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from mechanisms.docs.lexicon import cased, trie_pattern
from mechanisms.docs.passive import find_passive
from mechanisms.docs.weasel import find_weasels

words = st.text(alphabet="abcde ", min_size=1, max_size=6).map(lambda w: " ".join(w.split()))


@given(st.lists(words.filter(bool), min_size=1, max_size=12), st.text("abcde ", max_size=6))
def test_trie_matches_exactly_the_words(listed: list[str], other: str) -> None:
    pattern = re.compile(trie_pattern(listed))
    for word in listed:
        assert pattern.fullmatch(word)
        assert pattern.fullmatch(word.replace(" ", " \n\t "))  # a space is any whitespace
    normal = " ".join(other.split())
    assert bool(pattern.fullmatch(normal)) == (normal in listed)


def test_cased_adds_the_capitalised_form() -> None:
    assert cased(["is", "a few", "I"]) == ["is", "Is", "a few", "A few", "I"]


# Sentences made of the pieces the finders react to, in any order.
pieces = st.sampled_from(
    [
        *"abdefgimnorstuwy ISWG'’\"“”,.?!-\n",
        "was ",
        "Was ",
        "is ",
        "it's ",
        "got ",
        "being ",
        "fixed",
        "tired ",
        "very ",
        "many ",
        "a lot of ",
        "of the 12 ",
        "it is widely believed that ",
    ]
)
prose = st.lists(pieces, max_size=30).map("".join)


@given(st.one_of(prose, st.text(max_size=60)))
def test_finders_return_ordered_exact_spans_on_any_text(text: str) -> None:
    for finder in (find_passive, find_weasels):
        spans = finder(text)
        assert all(text[s.start : s.end] == s.text and s.start < s.end for s in spans)
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
