"""Whatever the text, the check answers a report, and every finding points inside it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mechanisms.docs import markdown
from mechanisms.docs.check import CheckConfig, check_document
from mechanisms.docs.highlight import highlight

# Markdown's own characters and words the rules look for, so that generated text
# exercises code spans, links, lists, quotes, comments and the word lists.
PIECES = st.sampled_from(
    [
        "`",
        "``",
        "*",
        "_",
        "[",
        "](",
        ")",
        "<",
        ">",
        "<!--",
        "-->",
        "#",
        "- ",
        "> ",
        "|",
        "---",
        "```",
        "\n",
        "\r\n",
        "\r",
        "\t",
        "  ",
        ".",
        "!",
        "?",
        "\\",
        "&amp;",
        "http://x.y/",
        "It",
        "was",
        "written",
        "very",
        "many",
        "there",
        "is",
        "I think",
        "much",
        "faster",
        "low-hanging fruit",
        "<!-- mech-doc-disable -->",
        "<!-- mech-doc-enable weasel -->",
        "<!-- mech-doc-disable-next-line nope -->",
        "é",
        "🙂",
        "\u2028",
        "\x0c",
    ]
)
TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=80).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_any_text_gives_a_report_with_findings_inside_it(text: str) -> None:
    report = check_document(text, CheckConfig())
    lines = markdown.line_starts(text)
    for f in report.findings:
        assert 0 <= f.start <= f.end <= len(text)
        assert 1 <= f.line <= f.end_line <= len(lines)
        assert (f.line, f.column) == markdown.parse(text).position(f.start)
        line_end = lines[f.line] if f.line < len(lines) else len(text)
        assert 1 <= f.column <= line_end - lines[f.line - 1] + 1
    assert report.to_json()
    assert report.stats.words >= 0 and report.stats.sentences <= report.stats.words


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_the_masked_text_has_the_same_length_and_line_breaks(text: str) -> None:
    masked = markdown.parse(text).masked
    assert len(masked) == len(text)
    assert all((a in "\r\n") == (b in "\r\n") for a, b in zip(text, masked, strict=True))


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_the_preview_shows_exactly_the_text(text: str) -> None:
    import html
    import re

    report = check_document(text, CheckConfig(template=None))
    shown = str(highlight(text, report.findings))
    assert html.unescape(re.sub(r"<mark [^>]*>|</mark>", "", shown)) == text
    assert shown.count("<mark ") == shown.count("</mark>")
