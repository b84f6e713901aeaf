"""A decision doc as Markdown: front matter, the default template and its sections, safe
rendering, and the measures the registry keeps (length, reading time, search terms).

Pure functions; rendering never passes raw HTML through (a doc is shown to everyone)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml
from markdown_it import MarkdownIt

from mechanisms.core.errors import InvalidInput
from mechanisms.docs import readability

# The most a doc's body may hold (a 2–3 page doc is ~1,500 words; this leaves room).
MAX_BODY_CHARS = 200_000

DEFAULT_TEMPLATE = """# {title}

## Why now

What changed, and why deciding this now is worth the org's time.

## Components affected and how

Each component this changes, and how it changes.

## Alternatives considered

### Alternative: …

What it is, and why it was discarded.

## Customer impact

What customers notice, when, and how we will know.

## Decision

What we decide, and whether it is a one-way door (hard to undo) or a two-way door
(cheap to undo).
"""

_SECTION = re.compile(r"^##\s+(.+?)\s*#*\s*$", re.MULTILINE)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_SLUG_BAD = re.compile(r"[^a-z0-9]+")


def reading_seconds(words: int) -> int:
    """The silent-reading time of a meeting, rounded up to the whole minute."""
    return max(60, math.ceil(readability.reading_minutes(words)) * 60)


def sections(text: str) -> list[str]:
    return _SECTION.findall(text)


def from_template(template: str | None, title: str) -> str:
    """A new doc's body from a template (the default decision-doc one when None)."""
    template = DEFAULT_TEMPLATE if template is None else template
    if not sections(template):
        raise InvalidInput(
            "the template has no sections; give it '## ' headings such as '## Why now'",
            details={"field": "template"},
        )
    return template.replace("{title}", title)


def title_of(body: str) -> str | None:
    found = _H1.search(body)
    return found.group(1).strip() if found else None


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _SLUG_BAD.sub("-", ascii_text.lower()).strip("-")[:80].strip("-")


def check_text(value: str, field_name: str, max_chars: int = MAX_BODY_CHARS) -> str:
    if "\x00" in value:
        raise InvalidInput(
            f"{field_name} must not contain NUL characters", details={"field": field_name}
        )
    if len(value) > max_chars:
        raise InvalidInput(
            f"{field_name} is {len(value)} characters; the most is {max_chars}",
            details={"field": field_name},
        )
    return value


def decode(raw: bytes, name: str = "the file") -> str:
    """Uploaded bytes as text: UTF-8 only (a BOM is dropped), never a guess."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{name} is not UTF-8 text (byte {exc.start} is not valid UTF-8)",
            code="not_utf8",
            details={"field": "file", "byte": exc.start},
        ) from None
    return check_text(text, name)


@dataclass
class Parsed:
    """A Markdown file: what its front matter says and the body after it."""

    body: str
    key: str | None = None
    title: str | None = None
    slug: str | None = None
    team: str | None = None
    tags: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    supersedes: str | None = None


def _strings(meta: dict[str, Any], key: str) -> list[str]:
    value = meta.get(key) or []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise InvalidInput(f"front matter {key!r} must be a list of names", details={"field": key})
    return [str(v) for v in value]


def _scalar(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise InvalidInput(f"front matter {key!r} must be text", details={"field": key})
    return str(value)


def parse(text: str) -> Parsed:
    """Split YAML front matter (``id``, ``title``, ``slug``, ``team``, ``tags``, ``owners``,
    ``reviewers``, ``links`` as ``kind:ref``) from the body."""
    match = _FRONT.match(text)
    if not match:
        return Parsed(body=text)
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"the front matter is not valid YAML: {exc}", details={"field": "front_matter"}
        ) from None
    if not isinstance(meta, dict):
        raise InvalidInput(
            "the front matter must be a YAML mapping", details={"field": "front_matter"}
        )
    links = []
    for link in _strings(meta, "links"):
        kind, sep, ref = link.partition(":")
        if not sep or not ref.strip():
            raise InvalidInput(
                f"link {link!r} must be kind:reference, e.g. flag:new-checkout",
                details={"field": "links"},
            )
        links.append((kind.strip(), ref.strip()))
    return Parsed(
        body=text[match.end() :].lstrip("\n"),
        key=_scalar(meta, "id"),
        title=_scalar(meta, "title"),
        slug=_scalar(meta, "slug"),
        team=_scalar(meta, "team"),
        tags=_strings(meta, "tags"),
        owners=_strings(meta, "owners"),
        reviewers=_strings(meta, "reviewers"),
        links=links,
        supersedes=_scalar(meta, "supersedes"),
    )


# --- rendering ---------------------------------------------------------------------

# CommonMark with tables and strikethrough; "html": False makes raw HTML in a doc plain
# text, and markdown-it refuses javascript:/vbscript:/data: link targets by itself.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render(text: str) -> str:
    return _md.render(text)


# --- search terms --------------------------------------------------------------------

_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ers", "er", "es", "ed", "s")
TITLE_WEIGHT = 3.0
TAG_WEIGHT = 2.0


def stem(word: str) -> str:
    """A light suffix rule so 'rollouts' finds 'rollout' and 'deploying' finds 'deploy';
    the same on every backend (decision 0016)."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    return [stem(w)[:64] for w in _WORD.findall(text)]


def term_weights(title: str, tags: list[str], body: str) -> dict[str, float]:
    """Each term's weight in a doc: log-scaled frequency, title and tag words counting more."""
    counts: Counter[str] = Counter()
    for term in terms(body):
        counts[term] += 1.0
    for term in terms(title):
        counts[term] += TITLE_WEIGHT
    for term in terms(" ".join(tags)):
        counts[term] += TAG_WEIGHT
    return {t: round(1 + math.log(c), 4) for t, c in counts.items()}


@dataclass
class Query:
    """A search as people type it (web-search style): words, "quoted phrases", -excluded."""

    required: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.required or self.phrases)


_QUERY_PART = re.compile(r'(-?)"([^"]*)"|(-?)(\S+)')


def parse_query(text: str) -> Query:
    query = Query()
    for neg_phrase, phrase, neg, word in _QUERY_PART.findall(text):
        if phrase:
            words = terms(phrase)
            (query.excluded if neg_phrase else query.required).extend(words)
            if not neg_phrase and len(words) > 1:
                query.phrases.append(normalise_phrase(phrase))
        elif word:
            (query.excluded if neg else query.required).extend(terms(word))
    query.required = list(dict.fromkeys(query.required))
    return query


def normalise_phrase(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))
