"""The trie-shaped pattern the prose finders scan with matches exactly its words."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from mechanisms.docs.lexicon import cased, trie_pattern

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
