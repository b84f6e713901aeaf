"""Escalation policies: who gets paged, and when, until someone acknowledges.

Pure: the page's creation, its acknowledgement and "now" are parameters, and who is on call
comes from a function the caller passes, so a worker can replay any page at any instant.

Rules (PagerDuty's escalation policies):

- Level 0 is due when the page is created; each later level is due when the previous level's
  ``timeout_minutes`` have run out. After the last level's timeout the whole policy starts
  again, ``repeat`` more times (``repeat=0``: one pass). After the last pass's last timeout
  the page is *exhausted*: nobody further is due.
- A schedule target notifies whoever is on call on that schedule at the instant the level is
  due (not when the page was created); a user target notifies that user. A schedule with
  nobody on call yields a notification with ``person=None`` so the gap is visible.
- An acknowledgement stops everything due at or after it. An ``acknowledged_at`` later than
  ``now`` has not happened yet as far as ``now`` is concerned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from mechanisms.ops import oncall

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]

# (schedule name, instant) → the person on call there then, or None.
WhoIsOnCall = Callable[[str, datetime], str | None]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(Strict):
    kind: Literal["schedule", "user"]
    name: Name


class Level(Strict):
    targets: tuple[Target, ...]
    timeout_minutes: StrictInt = Field(ge=1, le=7 * 24 * 60)

    @field_validator("targets")
    @classmethod
    def _someone(cls, value: tuple[Target, ...]) -> tuple[Target, ...]:
        if not value:
            raise ValueError("a level needs at least one target")
        return value


class Policy(Strict):
    name: Name
    levels: tuple[Level, ...]
    repeat: StrictInt = Field(default=0, ge=0, le=9)

    @field_validator("levels")
    @classmethod
    def _some_level(cls, value: tuple[Level, ...]) -> tuple[Level, ...]:
        if not value:
            raise ValueError("a policy needs at least one level")
        return value


@dataclass(frozen=True)
class Notification:
    due_at: datetime
    loop: int  # 0 on the first pass through the policy
    level: int
    target: Target
    person: str | None  # None: the target schedule had nobody on call


@dataclass(frozen=True)
class Escalation:
    """Where a page stands at ``now``."""

    level: int | None  # the level reached (None before the page exists)
    loop: int | None
    notifications: tuple[Notification, ...]  # everything due so far, in order
    acknowledged: bool
    exhausted: bool  # every level of every pass notified and the last timeout over, unacked
    next_escalation_at: datetime | None  # when the next level is due; None if none will be


_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = _LATEST
    if not _EARLIEST <= value < _LATEST:  # timeouts are added to it; far out is a typo
        raise ValueError(f"{name}: must be between 1900 and 2999")
    return value


def _steps(policy: Policy, created: datetime) -> Iterator[tuple[datetime, int, int]]:
    """(due_at, loop, level) for every level of every pass, in order."""
    due = created
    for loop in range(policy.repeat + 1):
        for index, level in enumerate(policy.levels):
            yield due, loop, index
            due += timedelta(minutes=level.timeout_minutes)


def exhausted_at(policy: Policy, page_created_at: datetime) -> datetime:
    """When the last pass's last timeout runs out."""
    created = _aware("page_created_at", page_created_at)
    per_pass = sum(level.timeout_minutes for level in policy.levels)
    return created + timedelta(minutes=per_pass * (policy.repeat + 1))


def _inputs(
    page_created_at: datetime, acknowledged_at: datetime | None, now: datetime
) -> tuple[datetime, datetime | None, datetime]:
    created = _aware("page_created_at", page_created_at)
    now = _aware("now", now)
    ack = None if acknowledged_at is None else _aware("acknowledged_at", acknowledged_at)
    if ack is not None and ack < created:
        raise ValueError("acknowledged_at: before the page was created")
    # An acknowledgement after ``now`` has not happened yet as seen from ``now``.
    return created, (ack if ack is not None and ack <= now else None), now


def targets_at(
    policy: Policy,
    page_created_at: datetime,
    acknowledged_at: datetime | None,
    now: datetime,
    who_is_on_call: WhoIsOnCall,
) -> Escalation:
    """The level reached at ``now`` and every notification due by then (each with its due
    instant), stopping at the acknowledgement."""
    created, ack, now = _inputs(page_created_at, acknowledged_at, now)
    notifications: list[Notification] = []
    level: int | None = None
    loop: int | None = None
    next_at: datetime | None = None
    for due, step_loop, step_level in _steps(policy, created):
        if ack is not None and due >= ack:
            break
        if due > now:
            next_at = due
            break
        level, loop = step_level, step_loop
        notifications.extend(_notify(policy, step_loop, step_level, due, who_is_on_call))
    done = exhausted_at(policy, created)
    return Escalation(
        level=level,
        loop=loop,
        notifications=tuple(notifications),
        acknowledged=ack is not None,
        exhausted=ack is None and now >= done,
        next_escalation_at=next_at,
    )


def next_escalation_at(
    policy: Policy,
    page_created_at: datetime,
    acknowledged_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """When the next level becomes due after ``now``; None once acknowledged or when no level
    is left. A worker sleeps until this instant, then asks :func:`due_between`."""
    created, ack, now = _inputs(page_created_at, acknowledged_at, now)
    if ack is not None:
        return None
    for due, _, _ in _steps(policy, created):
        if due > now:
            return due
    return None


def due_between(
    policy: Policy,
    page_created_at: datetime,
    acknowledged_at: datetime | None,
    since: datetime | None,
    now: datetime,
    who_is_on_call: WhoIsOnCall,
) -> tuple[Notification, ...]:
    """The notifications due in (since, now] — what a worker that last handled the page at
    ``since`` (None: never) must send now. Consecutive calls with ``since`` = the previous
    ``now`` send each notification exactly once."""
    state = targets_at(policy, page_created_at, acknowledged_at, now, who_is_on_call)
    if since is None:
        return state.notifications
    since = _aware("since", since)
    return tuple(n for n in state.notifications if n.due_at > since)


def _notify(
    policy: Policy, loop: int, index: int, due: datetime, who_is_on_call: WhoIsOnCall
) -> Iterator[Notification]:
    for target in policy.levels[index].targets:
        person = who_is_on_call(target.name, due) if target.kind == "schedule" else target.name
        yield Notification(due, loop, index, target, person)


def on_call_lookup(
    schedules: Mapping[str, oncall.Schedule] | Iterable[oncall.Schedule],
) -> WhoIsOnCall:
    """A ``who_is_on_call`` function over the given schedules (by name)."""
    by_name = dict(schedules) if isinstance(schedules, Mapping) else {s.name: s for s in schedules}

    def lookup(name: str, at: datetime) -> str | None:
        schedule = by_name.get(name)
        if schedule is None:
            raise ValueError(f"target: no schedule named {name!r}")
        return oncall.who_is_on_call(schedule, at).person

    return lookup
