"""Whether a stretch of prose stands inside quotation marks.

Words in quotes are mentioned or cited, not the author's own: "the word "very"", a
customer's "the data was lost". The prose finders leave them alone.
"""

from __future__ import annotations

import re

_LOOKBACK = 600  # how far back to look for the start of the paragraph or list item
# A blank line, or the start of a list item: quotes are paired within one of these.
_BLOCK_START = re.compile(r"\n[ \t]*\n|\n[ \t]*(?:[-*+]|\d+[.)])[ \t]")
# Failing that (a long list, or Markdown whose markers are blanked out), a sentence's end.
_SENTENCE_END = re.compile(r"[.!?][)\]]?\s")


def quoted(text: str, start: int, end: int) -> bool:
    """Inside a pair of double quotes (straight or curly) opened earlier in the paragraph
    or list item, or between single quotes that touch it ('very')."""
    if text[start - 1 : start] in ("'", "‘") and text[end : end + 1] in ("'", "’"):
        return True
    before = text[_block_start(text, start) : start]
    return before.count('"') % 2 == 1 or before.rfind("“") > before.rfind("”")


def _block_start(text: str, start: int) -> int:
    """Where the paragraph or list item holding ``start`` begins; failing that within
    the look-back, its sentence; failing that, its line."""
    low = max(0, start - _LOOKBACK)
    for pattern in (_BLOCK_START, _SENTENCE_END):
        found = list(pattern.finditer(text, low, start))
        if found:
            return found[-1].end()
    return 0 if low == 0 else text.rfind("\n", low, start) + 1
