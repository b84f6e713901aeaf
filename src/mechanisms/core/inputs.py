"""The rules every input obeys, one rule each, shared by the API, the pages and the CLI.

Each rule raises ``ValueError`` with a message for people (so it can serve as a pydantic
validator); ``invalid`` turns that into the 422 ``InvalidInput`` naming the field.

- zone: an IANA time zone name. ``ZoneInfo("America")`` raises IsADirectoryError (an
  OSError), not ZoneInfoNotFoundError, and ``ZoneInfo("../x")`` a ValueError.
- instant: ISO 8601 text with an offset, as a UTC datetime.
- key: a name a user chooses and later finds again in a URL: no ``/``, ``..``, NUL or other
  control characters, bounded length, so nothing can be created that cannot be deleted.
- text: no NUL (PostgreSQL refuses it where SQLite stores it) and no lone UTF-16 surrogate
  (JSON may escape one as ``\\ud800``; no database, and no UTF-8 encoder, takes it).
- JSON: nesting at most ``MAX_JSON_DEPTH`` deep, checked before Python's recursive parser
  (and pydantic, and the error handler) ever sees the document.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mechanisms.core.errors import InvalidInput

MAX_KEY_LENGTH = 200
MAX_JSON_DEPTH = 64


def invalid(exc: ValueError, field: str) -> InvalidInput:
    """The 422 answer for a value that broke one of these rules."""
    return InvalidInput(f"{field}: {exc}", details={"field": field})


# --- zone and instant ---------------------------------------------------------------


def zone(name: Any) -> ZoneInfo:
    """The IANA time zone called ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError("expected an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(text(name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown IANA time zone {name!r}; use a name such as Europe/Berlin"
        ) from None


def checked_zone(name: Any, field: str = "tz") -> ZoneInfo:
    """``zone`` for services and routes: InvalidInput (code unknown_time_zone) naming the field."""
    try:
        return zone(name)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), code="unknown_time_zone", details={"field": field, "value": str(name)}
        ) from None


def parse_instant(value: Any) -> Any:
    """ISO 8601 text (or a datetime from a Python caller) as a datetime; lax parsers read
    "0.5" as a Unix time, so nothing else is accepted."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date-time with a time zone, e.g. 2030-01-31T12:00:00Z")


def to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


# --- text and keys ------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def text(value: str) -> str:
    """``value`` if a database can store it the same on SQLite and PostgreSQL."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def key(value: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """``value`` if it can name an object in a URL path and be found again there."""
    text(value)
    if not value:
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    if "/" in value or "\\" in value:
        raise ValueError("must not contain '/' or '\\'")
    if ".." in value or value == ".":
        raise ValueError("must not contain '..' or be '.'")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


def checked_key(value: Any, field: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """``key`` for services: InvalidInput naming the field."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be text", details={"field": field})
    try:
        return key(value, max_length)
    except ValueError as exc:
        raise invalid(exc, field) from None


# --- JSON ---------------------------------------------------------------------------

_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _NESTING)
# The escapes that may put NUL or a lone surrogate in a string (a parse tells for sure).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of the JSON document ``raw`` nest, found without
    parsing it (so without recursion): escapes are dropped, the text between quotes is
    dropped, and what remains of the brackets is counted. Malformed documents get a depth
    too; the parser refuses them afterwards."""
    # A backslash always escapes the next character, read left to right: dropping "\\"
    # first, then '\"', leaves every remaining quote a string's start or end.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    brackets = outside_strings.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0)


class JsonInputError(ValueError):
    """A JSON document that breaks a rule; ``field`` is the dotted path to the bad part."""

    def __init__(self, problem: str, field: str = "body") -> None:
        super().__init__(problem)
        self.field = field


def check_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """JsonInputError if the JSON document ``raw`` nests too deep, or a string in it holds
    NUL or a lone surrogate."""
    if json_depth(raw) > max_depth:
        raise JsonInputError(f"JSON nests deeper than {max_depth} levels")
    # Only an escape can put NUL or a lone surrogate in a JSON string, and only a parse tells
    # a lone surrogate from half of an escaped pair (an emoji from an ASCII-only encoder),
    # so only documents with such an escape pay for a parse here.
    if _SUSPECT_ESCAPE.search(raw):
        try:
            value = json.loads(raw)
        except ValueError:
            return  # malformed: the parser behind this check says so in its own words
        json_text(value)


def parse_json(raw: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses too-deep nesting, NUL and lone surrogates with
    JsonInputError (json.JSONDecodeError, also a ValueError, for malformed text)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    check_json(data, max_depth)
    return json.loads(data)


def json_text(value: Any) -> Any:
    """``value`` (already parsed) if every string and key in it obeys ``text``; else
    JsonInputError naming where. Walks without recursion, so any depth is safe."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            _text_at(item, path)
        elif isinstance(item, dict):
            for name, child in item.items():
                child_path = f"{path}.{name}" if path else str(name)
                if isinstance(name, str):
                    _text_at(name, child_path)
                pending.append((child, child_path))
        elif isinstance(item, list):
            pending.extend(
                (child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(item)
            )
    return value


def _text_at(value: str, path: str) -> None:
    try:
        text(value)
    except ValueError as exc:
        # The path itself may hold the bad character: show it escaped.
        raise JsonInputError(str(exc), _printable(path) or "body") from None


def _printable(path: str) -> str:
    return path.encode("ascii", "backslashreplace").decode("ascii")


def value_depth(value: Any) -> int:
    """How deep lists and dicts nest in ``value``, without recursion."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            level.extend((child, depth) for child in _children(item))
    return deepest


def _children(item: dict[Any, Any] | list[Any]) -> Any:
    return item.values() if isinstance(item, dict) else item


def json_value(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``value`` (already parsed, e.g. a flag's object variant) if it nests at most
    ``max_depth`` deep and all its strings are valid Unicode."""
    if value_depth(value) > max_depth:
        raise ValueError(f"nests deeper than {max_depth} levels")
    return json_text(value)
