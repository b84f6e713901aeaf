"""The editor's preview: the document's own text with each finding marked inline, as
Hemingway Editor shows it. Every character of the text is escaped; only the marks are
markup."""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup, escape

from mechanisms.docs.check import Finding


def _mark(finding: Finding) -> str:
    title = escape(f"{finding.rule}: {finding.message} → {finding.suggestion}")
    return f'<mark class="doc-hl doc-{finding.kind}" data-rule="{finding.rule}" title="{title}">'


def highlight(text: str, findings: Iterable[Finding]) -> Markup:
    """``text`` as HTML with nested ``<mark>`` elements. A finding that starts inside
    another and runs past its end is cut at that end, so the marks always nest."""
    spans = sorted(
        (f for f in findings if f.end > f.start), key=lambda f: (f.start, -f.end, f.rule)
    )
    out: list[str] = []
    open_ends: list[int] = []  # ends of the marks now open, innermost last
    at = 0

    def advance(to: int) -> None:
        nonlocal at
        # Close every mark that ends before ``to`` on the way there.
        while open_ends and open_ends[-1] <= to:
            end = open_ends.pop()
            out.append(str(escape(text[at:end])))
            out.append("</mark>")
            at = end
        out.append(str(escape(text[at:to])))
        at = to

    for finding in spans:
        advance(finding.start)
        end = min(finding.end, open_ends[-1]) if open_ends else finding.end
        out.append(_mark(finding))
        open_ends.append(end)
    advance(len(text))
    return Markup("".join(out))
