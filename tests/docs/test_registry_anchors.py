"""Anchors re-locate their paragraph across edits, or orphan, and never attach a comment to
another paragraph: examples, then a property over random edits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mechanisms.docs import anchors

DOC = [
    "Why now: checkout latency doubled in the peak season.",
    "The checkout service gains a read-through cache in front of the catalog.",
    "A bigger database was discarded because it costs four times as much.",
    "Pages load in half the time.",
]


def test_an_unchanged_paragraph_is_found_exactly_and_a_moved_one_as_moved():
    anchor = anchors.anchor_at(DOC, 1)
    assert anchors.relocate(anchor, DOC, 1) == anchors.Located(1, "exact")
    moved = ["A new first paragraph about scope.", *DOC]
    assert anchors.relocate(anchor, moved, 1) == anchors.Located(2, "moved")


def test_an_edited_paragraph_keeps_its_anchor_and_a_deleted_one_orphans():
    anchor = anchors.anchor_at(DOC, 2)
    edited = [*DOC[:2], DOC[2].replace("four times", "three times"), DOC[3]]
    assert anchors.relocate(anchor, edited, 2) == anchors.Located(2, "changed")
    assert anchors.relocate(anchor, [*DOC[:2], DOC[3]], 2) == anchors.Located(None, "orphaned")


def test_identical_paragraphs_are_told_apart_by_their_neighbours_or_not_at_all():
    paras = ["Intro.", "Same words here.", "Middle.", "Same words here.", "End."]
    second = anchors.anchor_at(paras, 3)
    assert anchors.relocate(second, ["New.", *paras], 3).index == 4
    # Both neighbours gone: no way to tell which copy was meant.
    assert anchors.relocate(second, ["Same words here.", "Same words here."], 3).index is None


def test_markdown_blocks_are_paragraphs_and_fenced_code_stays_whole():
    body = "# Title\n\nOne\nline.\n\n```\ncode\n\nmore code\n```\n\nLast."
    assert anchors.paragraphs(body) == ["# Title", "One line.", "``` code more code ```", "Last."]


# --- property: random edits ---------------------------------------------------------------

# Each paragraph has words of its own, so a paragraph's identity is clear: what a reader
# would call "the same paragraph" after an edit is the one that grew from it.


def _paragraph(pid: int, length: int) -> list[str]:
    return [f"p{pid}w{i}" for i in range(length)]


@st.composite
def edited_documents(draw):
    count = draw(st.integers(2, 8))
    doc = [(pid, _paragraph(pid, draw(st.integers(1, 12)))) for pid in range(count)]
    original = [list(words) for _, words in doc]
    # A duplicate grew from the paragraph it copies: once the original is deleted and the
    # copy edited, a reader cannot tell it from the original edited in place.
    grew_from = {pid: pid for pid in range(count)}
    next_pid = count
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["insert", "delete", "edit", "move", "duplicate"]))
        if op == "insert":
            at = draw(st.integers(0, len(doc)))
            doc.insert(at, (next_pid, _paragraph(next_pid, draw(st.integers(1, 12)))))
            grew_from[next_pid] = next_pid
            next_pid += 1
        elif op == "delete" and doc:
            doc.pop(draw(st.integers(0, len(doc) - 1)))
        elif op == "edit" and doc:
            at = draw(st.integers(0, len(doc) - 1))
            pid, words = doc[at]
            words = list(words)
            for _ in range(draw(st.integers(1, 3))):
                how = draw(st.sampled_from(["replace", "append", "drop"]))
                if how == "append" or not words:
                    words.append(f"p{pid}new{draw(st.integers(0, 99))}")
                elif how == "replace":
                    words[draw(st.integers(0, len(words) - 1))] = (
                        f"p{pid}x{draw(st.integers(0, 99))}"
                    )
                elif len(words) > 1:
                    words.pop(draw(st.integers(0, len(words) - 1)))
            doc[at] = (pid, words)
        elif op == "move" and len(doc) > 1:
            item = doc.pop(draw(st.integers(0, len(doc) - 1)))
            doc.insert(draw(st.integers(0, len(doc))), item)
        elif op == "duplicate" and doc:
            # A copy of a paragraph under a new identity: the anchor may go to either
            # copy only if it can tell them apart, or orphan.
            at = draw(st.integers(0, len(doc) - 1))
            source_pid, words = doc[at]
            doc.insert(draw(st.integers(0, len(doc))), (next_pid, list(words)))
            grew_from[next_pid] = grew_from[source_pid]
            next_pid += 1
    anchored = draw(st.integers(0, count - 1))
    return original, doc, anchored, grew_from


@settings(max_examples=400, deadline=None)
@given(edited_documents())
def test_an_anchor_finds_its_own_paragraph_or_orphans_never_another(case):
    original, edited, anchored, grew_from = case
    before = [" ".join(words) for words in original]
    after = [" ".join(words) for _, words in edited]
    located = anchors.relocate(anchors.anchor_at(before, anchored), after, anchored)
    if located.index is None:
        assert located.state == "orphaned"
        return
    pid, words = edited[located.index]
    if grew_from[pid] == anchored:
        return
    # Another paragraph is acceptable only as an exact copy of what the comment was on.
    assert " ".join(words) == before[anchored] and located.state in ("exact", "moved"), (
        f"attached to paragraph {pid} instead of {anchored}"
    )
