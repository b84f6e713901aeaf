"""Differences between two versions of a doc: the unified diff machines read, and rows
for the side-by-side and inline views people read. Pure functions over difflib."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


def unified(old: str, new: str, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )


@dataclass(frozen=True)
class Row:
    """One row of a side-by-side diff. ``kind``: equal, delete, insert or replace; the
    line numbers are 1-based, None where that side has no line."""

    kind: str
    old_no: int | None
    old: str
    new_no: int | None
    new: str


def side_by_side(old: str, new: str) -> list[Row]:
    a, b = old.splitlines(), new.splitlines()
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [
                Row("equal", i + 1, a[i], j + 1, b[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        left, right = list(range(i1, i2)), list(range(j1, j2))
        for k in range(max(len(left), len(right))):
            i = left[k] if k < len(left) else None
            j = right[k] if k < len(right) else None
            kind = (
                "replace"
                if i is not None and j is not None
                else ("delete" if j is None else "insert")
            )
            rows.append(
                Row(
                    kind,
                    None if i is None else i + 1,
                    "" if i is None else a[i],
                    None if j is None else j + 1,
                    "" if j is None else b[j],
                )
            )
    return rows


def inline(old: str, new: str) -> list[tuple[str, str]]:
    """(kind, line) in reading order: a replaced line shows as its deletion, then its insertion."""
    lines: list[tuple[str, str]] = []
    for row in side_by_side(old, new):
        if row.kind == "equal":
            lines.append(("equal", row.new))
            continue
        if row.old_no is not None:
            lines.append(("delete", row.old))
        if row.new_no is not None:
            lines.append(("insert", row.new))
    return lines


def stats(old: str, new: str) -> dict[str, int]:
    rows = side_by_side(old, new)
    return {
        "added": sum(1 for r in rows if r.kind in ("insert", "replace")),
        "removed": sum(1 for r in rows if r.kind in ("delete", "replace")),
    }
