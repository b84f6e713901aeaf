"""Where the prose is in a Markdown file, character for character.

markdown-it-py (CommonMark, tables, front matter) finds the blocks: paragraphs, list
items and quotes are prose; headings are kept apart (they name the sections); code
blocks, HTML blocks, tables and front matter are not prose. Inside a prose block, inline
code, comments, link and image targets, autolinks, bare URLs, inline HTML, entities and
emphasis markers are blanked out.

The result is a *masked* copy of the source: the same length, every non-prose character
replaced by a space and every line break kept. An offset in the masked text is therefore
the same offset in the file, so every rule reports an exact line and column without
mapping tables (the approach of decision doc 0015).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin

# markdown-it counts lines the same way (\r\n, \r or \n), so its token maps line up.
_LINE_BREAK = re.compile(r"\r\n?|\n")
_NOT_BREAK = re.compile(r"[^\r\n]")

# A link's destination and optional title: "(url)", "(<url with spaces>)", '(url "t")'.
_DESTINATION = (
    r"\(\s*+(?:<[^<>\n]{0,2000}+>|(?:[^\s()<>]|\([^\s()<>]{0,200}+\)){0,2000}+)"
    r"(?:\s++(?:\"[^\"\n]{0,500}+\"|'[^'\n]{0,500}+'|\([^()\n]{0,500}+\)))?\s*+\)"
)
# Inline stretches that are not prose (after comments and code spans, which
# _comments_and_code finds), tried in this order. The lookahead names every character one
# can start with, so the engine skips plain prose quickly.
_INLINE_NOISE = re.compile(
    r"(?=[<!\]\[&*_~\\hwHW])(?:"
    # Lengths are bounded, quantifiers possessive (no backtracking) and destinations hold
    # no spaces (as in CommonMark), so text full of unclosed brackets stays linear.
    r"!\[[^\]\n]{0,500}+\]" + _DESTINATION + r"?"  # image, alt text included
    r"|\]" + _DESTINATION + r"|\]\[[^\]\n]{0,999}+\]"  # a link's target or label
    r"|<(?:[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*|[^\s<>@]+@[^\s<>]+)>"  # autolink
    r"|</?[A-Za-z][A-Za-z0-9\-]*(?:\s[^<>]*)?/?>"  # inline HTML tag
    r"|\b(?:https?://|www\.)[^\s<>()\[\]]+"  # bare URL
    r"|&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"  # entity
    r"|(?<!\w)[*_~]+|[*_~]+(?!\w)"  # emphasis markers (not snake_case's underscore)
    r"|\\(?=[!-/:-@\[-`{-~])"  # backslash escape
    r"|[\[\]]"  # link text brackets
    r")"
)
_DIRECTIVE = re.compile(
    r"<!--\s*mech-doc-(?P<verb>disable-next-line|disable|enable)\b(?P<names>[^>]*?)\s*-->"
)

PROSE_PARENTS = frozenset({"paragraph_open", "heading_open"})
NOT_PROSE = frozenset({"fence", "code_block", "front_matter"})


@dataclass(frozen=True)
class Block:
    """A paragraph of prose (a list item's or a quote's paragraph too): ``[start, end)``."""

    start: int
    end: int
    # How many list items enclose it: 0 for a paragraph, 1 for a list item, 2 for an item
    # of a nested list (the structure check reads sub-items as part of their item).
    list_depth: int = 0


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    line: int  # 1-based
    start: int
    end: int


@dataclass(frozen=True)
class Directive:
    """An inline ``<!-- mech-doc-… -->`` comment that switches rules off or on."""

    verb: str  # disable | enable | disable-next-line
    names: tuple[str, ...]  # empty: every rule
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class ParsedDoc:
    source: str
    masked: str
    blocks: list[Block]
    headings: list[Heading]
    directives: list[Directive]
    line_starts: list[int] = field(repr=False)
    front_matter: bool = False

    def line_of(self, offset: int) -> int:
        """1-based line of a character offset."""
        return bisect_right(self.line_starts, offset)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset; columns count code points."""
        line = bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Blocks only: the inline content is masked by _INLINE_NOISE on the source itself,
    # which keeps positions, and skipping markdown-it's inline pass halves the time.
    md = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
    return md.disable(["inline", "text_join"])


def line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _blank(text: str) -> str:
    return _NOT_BREAK.sub(" ", text)


def _blank_match(match: re.Match[str]) -> str:
    return _blank(match.group(0))


def _line_end(source: str, starts: list[int], index: int) -> int:
    """Offset just past line ``index``'s text (before its line break)."""
    end = starts[index + 1] if index + 1 < len(starts) else len(source)
    while end > starts[index] and source[end - 1] in "\r\n":
        end -= 1
    return end


def _content_columns(
    source: str, starts: list[int], first_line: int, content: str
) -> list[tuple[int, int]]:
    """(start, end) offsets in the file of each line of an inline token's content.

    markdown-it strips container prefixes (``>``, list indentation) from the content's
    lines, so each content line is the tail of its source line."""
    spans = []
    for i, piece in enumerate(content.split("\n")):
        index = first_line + i
        if index >= len(starts):
            break
        line_start, line_end = starts[index], _line_end(source, starts, index)
        piece = piece.rstrip()
        text_end = line_end
        while text_end > line_start and source[text_end - 1] in " \t":
            text_end -= 1
        if source.endswith(piece, line_start, text_end):
            spans.append((text_end - len(piece), text_end))
        else:
            # Tabs expanded by the parser: fall back to the first match on the line.
            found = source.find(piece, line_start, line_end) if piece else -1
            if found >= 0:
                spans.append((found, found + len(piece)))
    return spans


def parse(source: str) -> ParsedDoc:
    starts = line_starts(source)
    tokens = _parser().parse(source)
    pieces: list[tuple[int, int]] = []  # file spans copied into the masked text
    blocks: list[Block] = []
    headings: list[Heading] = []
    code_lines: set[int] = set()
    front_matter = False
    parent = ""
    level = 0
    list_depth = 0
    for token in tokens:
        if token.type == "list_item_open":
            list_depth += 1
        elif token.type == "list_item_close":
            list_depth -= 1
        if token.type in NOT_PROSE and token.map:
            code_lines.update(range(token.map[0], token.map[1]))
            front_matter = front_matter or token.type == "front_matter"
            continue
        if token.nesting == 1:
            parent = token.type
            if token.type == "heading_open":
                level = int(token.tag[1:])
            continue
        if token.type != "inline" or parent not in PROSE_PARENTS or not token.map:
            continue
        spans = _content_columns(source, starts, token.map[0], token.content)
        if not spans:
            continue
        pieces.extend(spans)
        start, end = spans[0][0], spans[-1][1]
        if parent == "heading_open":
            text = _clean(source[start:end])
            headings.append(Heading(level, " ".join(text.split()), token.map[0] + 1, start, end))
        else:
            blocks.append(Block(start, end, list_depth))
    masked = _mask(source, pieces)
    return ParsedDoc(
        source=source,
        masked=masked,
        blocks=blocks,
        headings=headings,
        directives=_directives(source, starts, code_lines),
        line_starts=starts,
        front_matter=front_matter,
    )


_BACKTICKS = re.compile(r"`+")
_COMMENT_OPEN = "<!--"
_COMMENT_CLOSE = "-->"


def _comments_and_code(text: str) -> list[tuple[int, int]]:
    """Inline HTML comments and code spans, in one linear pass: whichever opens first
    wins (as in CommonMark); a code span closes at the next run of exactly as many
    backticks, and an opener with no closer is literal text."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    by_length: dict[int, list[int]] = {}
    for i, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(i)
    spans = []
    at = 0
    run = 0
    comment = text.find(_COMMENT_OPEN)
    while True:
        while run < len(runs) and runs[run][0] < at:
            run += 1
        while comment != -1 and comment < at:
            comment = text.find(_COMMENT_OPEN, at)
        tick = runs[run][0] if run < len(runs) else -1
        if comment == -1 and tick == -1:
            return spans
        if comment != -1 and (tick == -1 or comment < tick):
            close = text.find(_COMMENT_CLOSE, comment + len(_COMMENT_OPEN))
            if close == -1:
                comment = -1  # no comment after this one can close either
                continue
            spans.append((comment, close + len(_COMMENT_CLOSE)))
            at = close + len(_COMMENT_CLOSE)
            continue
        start, end = runs[run]
        same = by_length[end - start]
        k = bisect_right(same, run)
        if k < len(same):
            closer = runs[same[k]]
            spans.append((start, closer[1]))
            at = closer[1]
        else:
            at = end
        run += 1


def _blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    out = []
    at = 0
    for start, end in spans:
        out.append(text[at:start])
        out.append(_blank(text[start:end]))
        at = end
    out.append(text[at:])
    return "".join(out)


def _mask(source: str, pieces: list[tuple[int, int]]) -> str:
    """The source with everything outside ``pieces`` and all inline noise blanked."""
    out = []
    at = 0
    for start, end in sorted(pieces):
        if start < at:
            continue
        out.append(_blank(source[at:start]))
        out.append(source[start:end])
        at = end
    out.append(_blank(source[at:]))
    # Comments and code spans may span the line breaks inside a block.
    return _clean("".join(out))


def _clean(text: str) -> str:
    """``text`` with inline comments, code spans and other inline noise blanked."""
    text = _blank_spans(text, _comments_and_code(text))
    return _INLINE_NOISE.sub(_blank_match, text)


def _directives(source: str, starts: list[int], code_lines: set[int]) -> list[Directive]:
    found = []
    for match in _DIRECTIVE.finditer(source):
        line = bisect_right(starts, match.start())
        if line - 1 in code_lines:
            continue
        names = tuple(n for n in re.split(r"[\s,]+", match.group("names")) if n)
        found.append(
            Directive(match.group("verb"), names, line, match.start() - starts[line - 1] + 1)
        )
    return found
