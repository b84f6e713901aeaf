"""Only prose is checked, and every position points at the exact place in the file."""

from __future__ import annotations

import pytest

from mechanisms.docs import markdown
from mechanisms.docs.check import CheckConfig, check_document

NO_TEMPLATE = CheckConfig(template=None)


def _findings(text: str, rule: str | None = None) -> list:
    report = check_document(text, NO_TEMPLATE)
    return [f for f in report.findings if rule is None or f.rule == rule]


def _at(text: str, line: int, column: int, length: int) -> str:
    return text.splitlines()[line - 1][column - 1 : column - 1 + length]


DOC = """---
title: It is very important
tags: [many, various]
---
# Title

Intro line one.
> The quote was written by many people, **really**.

- First item is *clearly* fixed.
  It is continued by the second line.
- `code is very quiet` and [many links](https://very.example.com/many) here.

```python
x = "it was written by very many"
```

    indented code is very many

| many | very |
| --- | --- |
| clearly | quite |

<div>
many very
</div>

Text with <span title="many">inline html</span> and <!-- very --> a comment, see <https://many.example.org>.
"""


def test_only_prose_is_checked() -> None:
    weasels = [(f.line, f.text) for f in _findings(DOC, "weasel")]
    assert weasels == [(8, "many"), (8, "really"), (10, "clearly"), (12, "many")]


def test_positions_point_at_the_matched_text() -> None:
    findings = _findings(DOC)
    assert findings
    for f in findings:
        original = DOC[f.start : f.end]
        if f.line == f.end_line:
            assert _at(DOC, f.line, f.column, f.end_column - f.column) == original
        # The reported text is the prose: the file's words, without inline markup.
        words = f.text.split()
        assert original.startswith(words[0]) and original.endswith(words[-1])
        assert markdown.parse(DOC).masked[f.start : f.end].split() == words


def test_passive_in_a_quote_and_across_a_list_items_lines() -> None:
    passive = {(f.line, f.column, f.text) for f in _findings(DOC, "passive")}
    assert (8, 13, "was written") in passive
    assert (10, 14, "is clearly fixed") in passive
    assert (11, 6, "is continued") in passive


def test_crlf_tabs_and_wide_characters_keep_columns() -> None:
    text = "# T\r\n\r\nCafé ☕ — naïve 🙂 prose is written here.\r\n\tIt was clearly done.\r\n"
    found = {f.text: (f.line, f.column) for f in _findings(text)}
    line3 = "Café ☕ — naïve 🙂 prose is written here."
    assert found["is written"] == (3, line3.index("is written") + 1)
    assert found["clearly"] == (4, "\tIt was clearly done.".index("clearly") + 1)


def test_a_byte_order_mark_is_not_a_column() -> None:
    from mechanisms.docs.source import decode

    text = decode("\ufeffIt is very good.\n".encode(), "bom.md")
    (weasel,) = _findings(text, "weasel")
    assert (weasel.line, weasel.column) == (1, 7)


def test_masked_text_keeps_length_and_line_breaks() -> None:
    doc = markdown.parse(DOC)
    assert len(doc.masked) == len(DOC)
    assert [i for i, ch in enumerate(doc.masked) if ch == "\n"] == [
        i for i, ch in enumerate(DOC) if ch == "\n"
    ]


def test_headings_are_structure_not_prose() -> None:
    doc = markdown.parse("# It was written by many\n\nText.\n\nSetext\n===\n")
    assert [(h.level, h.text, h.line) for h in doc.headings] == [
        (1, "It was written by many", 1),
        (1, "Setext", 5),
    ]
    assert not _findings("# It was written by many\n\nText.\n")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Use `it is very quiet` here.\n", "weasel"),
        ("See [docs](https://x.example/was-written) now.\n", "passive"),
        ("![it was written by many](img.png)\n", "weasel"),
        ("Call <https://was.written.example> now.\n", "passive"),
        ("Visit https://example.com/many/very today.\n", "weasel"),
    ],
)
def test_inline_code_urls_and_images_are_not_prose(text: str, rule: str) -> None:
    assert not _findings(text, rule)


def test_link_text_is_prose() -> None:
    (weasel,) = _findings("See [the many docs](https://x.example) now.\n", "weasel")
    assert (weasel.line, weasel.column) == (1, 10)


def test_front_matter_only_gives_an_empty_report() -> None:
    report = check_document("---\ntitle: x\n---\n", NO_TEMPLATE)
    assert report.stats.words == 0
    assert report.notes and "no prose" in report.notes[0]
    assert report.passed


def test_html_only_gives_an_empty_report() -> None:
    report = check_document("<div>\n<p>It was very many.</p>\n</div>\n", NO_TEMPLATE)
    assert report.stats.words == 0
    assert not report.findings


def test_code_spans_close_on_the_same_number_of_backticks() -> None:
    text = "It is `very` and ``many ` very`` but ```very stays and `` is literal, very."
    masked = markdown.parse(text).masked
    assert "`very`" not in masked and "many" not in masked
    assert masked.count("very") == 2, "an opener with no closer is literal text"


def test_comments_close_at_the_first_end_and_an_unclosed_one_is_text() -> None:
    text = "Many <!-- very --> words <!-- many --> here <!-- very"
    masked = markdown.parse(text).masked
    assert masked.split() == ["Many", "words", "here", "<!--", "very"]


def test_link_targets_with_titles_and_parentheses_are_not_prose() -> None:
    text = 'See [a](https://x.example/Foo_(bar) "very many") and [b](<a very b>) now.'
    assert markdown.parse(text).masked.split() == ["See", "a", "and", "b", "now."]
