"""Protected changes: which edits of a block window or a pipeline weaken a control (issue #14).

A freeze or a stage requirement is only as strong as the weakest path around it, so the edits
that weaken one need more than the engineer role that created it:

- FREE: adding a window, raising a requirement, or touching a window that is neither in force
  nor starting within ``LOOKAHEAD`` (a freeze must stay cheap to add).
- LEADER: a window in force or starting soon that would block less (deleted, ending sooner,
  starting later, fewer occurrences, a narrower scope), or a stage that would ask less (fewer
  or other suites, fewer approvals or lower approver roles, a shorter bake, fewer alarms, a
  stage removed or moved).
- TWO_PERSON: such a change that lifts a block in force now: part of the occurrence holding the
  gate now would go, or a lowered requirement is what blocks the newest version now.

Pure: the caller passes the current state, the proposal and ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from mechanisms.deploys import calendar
from mechanisms.deploys.calendar import BlockWindow, Interval

LOOKAHEAD = timedelta(hours=24)
# How far ahead an edited window must still cover what it covered: a year and a day, so a
# yearly freeze moved or dropped is seen.
HORIZON = timedelta(days=367)
ROLE_RANK = {"engineer": 1, "leader": 2, "admin": 3}


class Level(IntEnum):
    FREE = 0
    LEADER = 1
    TWO_PERSON = 2


@dataclass(frozen=True)
class Verdict:
    level: Level
    reasons: tuple[str, ...] = ()

    @property
    def protected(self) -> bool:
        return self.level > Level.FREE

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level.name.lower(), "reasons": list(self.reasons)}


FREE = Verdict(Level.FREE)


# --- windows ----------------------------------------------------------------------------


def _union(intervals: Iterable[Interval]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for iv in sorted(intervals, key=lambda i: i.start):
        if merged and iv.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], iv.end))
        else:
            merged.append((iv.start, iv.end))
    return merged


def _uncovered(span: tuple[datetime, datetime], cover: Sequence[tuple[datetime, datetime]]) -> bool:
    """Whether some part of ``span`` lies outside the merged intervals ``cover``."""
    start, end = span
    for c_start, c_end in cover:
        if c_end <= start:
            continue
        if c_start > start:
            return True
        start = c_end
        if start >= end:
            return False
    return start < end


def _lost(
    before: BlockWindow, after: BlockWindow | None, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The spans (clipped to [start, end)) that ``before`` blocks and ``after`` would not."""
    spans = [
        (max(iv.start, start), min(iv.end, end))
        for iv in calendar.validate(before).between(start, end)
    ]
    if after is None or not after.scope.covers(before.scope):
        return spans
    cover = _union(calendar.validate(after).between(start, end))
    return [s for s in spans if _uncovered(s, cover)]


def classify_window(
    before: BlockWindow | None, after: BlockWindow | None, now: datetime
) -> Verdict:
    """How protected replacing ``before`` by ``after`` is (None: created, or deleted)."""
    if before is None:
        return FREE
    compiled = calendar.validate(before)
    holding = compiled.active(now)
    if not holding and compiled.next_start(now, now + LOOKAHEAD) is None:
        return FREE
    lost = _lost(before, after, now, now + HORIZON)
    if not lost:
        return FREE
    state = "in force" if holding else f"starting within {int(LOOKAHEAD.total_seconds()) // 3600} h"
    change = "deleting" if after is None else "narrowing"
    if after is not None and not after.scope.covers(before.scope):
        change = "narrowing the scope of"
    reasons = [f"{change} window {before.id}, which is {state}"]
    if any(start <= now for start, _ in lost):
        reasons.append(f"it lifts the block window {before.id} holds now")
        return Verdict(Level.TWO_PERSON, tuple(reasons))
    return Verdict(Level.LEADER, tuple(reasons))


# --- pipelines --------------------------------------------------------------------------

# The gate's blocker codes that each requirement causes: a lowered requirement lifts a block
# in force now when its code blocks the newest version. Bakes and alarms of a stage block the
# promotion into the stage after it.
BLOCKED_BY = {
    # requirement: (the codes it causes, on the stage itself or the stage after it)
    "suites": (frozenset({"tests_missing", "tests_empty", "tests_failed"}), False),
    "approvals": (frozenset({"approval_required"}), False),
    "bake": (frozenset({"baking"}), True),
    "alarms": (frozenset({"bake_alarm", "stage_alarm"}), True),
    "stage": (
        frozenset({"baking", "bake_alarm", "stage_alarm", "previous_stage_missing"}),
        True,
    ),
}


@dataclass(frozen=True)
class StageRequirements:
    name: str
    required_suites: frozenset[str]
    bake_seconds: int
    alarms: frozenset[str]
    approval_roles: frozenset[str]
    approval_count: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> StageRequirements:
        """From a stage spec or row snapshot (``bake_seconds`` or ``bake_minutes``)."""
        bake = spec.get("bake_seconds")
        if bake is None:
            bake = int(spec.get("bake_minutes") or 0) * 60
        approval = spec.get("approval") or {}
        roles = spec.get("approval_roles", approval.get("roles")) or ()
        count = spec.get("approval_count", approval.get("count", 0)) if roles else 0
        return cls(
            spec["name"],
            frozenset(spec.get("required_suites") or ()),
            int(bake),
            frozenset(spec.get("alarms") or ()),
            frozenset(roles),
            int(count or 0),
        )


def _lowest_rank(roles: frozenset[str]) -> int:
    return min((ROLE_RANK.get(r, 0) for r in roles), default=0)


def _stage_lowered(old: StageRequirements, new: StageRequirements) -> dict[str, str]:
    """Each requirement of ``old`` that ``new`` asks less of, with what changed."""
    found: dict[str, str] = {}
    if missing := old.required_suites - new.required_suites:
        found["suites"] = f"no longer requires suite(s) {', '.join(sorted(missing))}"
    if new.approval_count < old.approval_count:
        found["approvals"] = f"{new.approval_count} approval(s) instead of {old.approval_count}"
    elif old.approval_roles and _lowest_rank(new.approval_roles) < _lowest_rank(old.approval_roles):
        found["approvals"] = "lower roles may approve"
    if new.bake_seconds < old.bake_seconds:
        found["bake"] = f"bakes {new.bake_seconds // 60} min instead of {old.bake_seconds // 60}"
    if dropped := old.alarms - new.alarms:
        found["alarms"] = f"no longer watches alarm(s) {', '.join(sorted(dropped))}"
    return found


def _lifts_now(
    stage: str, following: str | None, what: Iterable[str], blocked: Mapping[str, frozenset[str]]
) -> bool:
    """Whether lowering ``what`` of ``stage`` clears a blocker the newest version has now."""
    for requirement in what:
        codes, on_next = BLOCKED_BY[requirement]
        where = following if on_next else stage
        if where is not None and blocked.get(where, frozenset()) & codes:
            return True
    return False


def classify_pipeline(
    before: Sequence[Mapping[str, Any]] | None,
    after: Sequence[Mapping[str, Any]],
    blocked_now: Mapping[str, frozenset[str]],
) -> Verdict:
    """How protected replacing the stages ``before`` by ``after`` is. ``blocked_now`` maps a
    stage to the gate's blocker codes for the newest version there now."""
    if not before:
        return FREE
    old = [StageRequirements.of(s) for s in before]
    new_stages = [StageRequirements.of(s) for s in after]
    new = {s.name: s for s in new_stages}
    old_names = [s.name for s in old]
    moved = [n for n in old_names if n in new] != [
        s.name for s in new_stages if s.name in old_names
    ]
    reasons: list[str] = []
    lifts = False
    for i, stage in enumerate(old):
        following = old_names[i + 1] if i + 1 < len(old_names) else None
        if stage.name not in new:
            reasons.append(f"removes stage {stage.name}")
            lifts |= bool(
                (blocked_now.get(stage.name, frozenset()) - {"block_window"})
                or _lifts_now(stage.name, following, ["stage"], blocked_now)
            )
            continue
        lowered = _stage_lowered(stage, new[stage.name])
        reasons += [f"stage {stage.name} {text}" for text in lowered.values()]
        lifts |= _lifts_now(stage.name, following, lowered, blocked_now)
    if moved:
        reasons.append("changes the order of the stages")
        lifts |= any(
            _lifts_now(n, following, ["stage"], blocked_now)
            for n, following in zip(old_names, old_names[1:], strict=False)
        )
    if not reasons:
        return FREE
    if lifts:
        reasons.append("it lifts a block in force now")
        return Verdict(Level.TWO_PERSON, tuple(reasons))
    return Verdict(Level.LEADER, tuple(reasons))
