"""What the `mech ops` commands read: a file or stdin, JSON, label matches, durations.
Bad input ends the command with a message and exit code 2 (``core.cli.fail``)."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mechanisms.core import inputs
from mechanisms.core.cli import fail
from mechanisms.ops import metrics

_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def read_text(source: str) -> str:
    """The text of a file, or of stdin when ``source`` is ``-``."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{source}: no such file")
    except UnicodeDecodeError:
        fail(f"{source}: not UTF-8 text")
    except OSError as exc:
        fail(f"{source}: {exc.strerror or exc}")


def parse_json(text: str, source: str) -> Any:
    try:
        return inputs.parse_json(text)
    except json.JSONDecodeError as exc:
        fail(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
    except ValueError as exc:
        fail(f"{source}: {exc}")


def read_json(source: str) -> Any:
    return parse_json(read_text(source), source)


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """``["service=checkout", "region=eu"]`` → a label match."""
    labels: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not metrics.LABEL_RE.match(key):
            fail(f"--match takes label=value, got {item!r}")
        labels[key] = value
    return labels


def parse_duration(text: str, option: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``7d``."""
    found = _DURATION.match(text.strip())
    if not found or int(found.group(1)) == 0:
        fail(f"{option} takes a duration such as 15m, 6h or 7d, got {text!r}")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def parse_instant(text: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} takes an ISO 8601 date-time, got {text!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
