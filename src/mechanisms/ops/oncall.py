"""On-call schedules: layered rotations, restrictions, overrides, the final schedule, coverage
gaps, a fairness report and an iCalendar export.

Pure: no database, no clock reads (every instant is a parameter), no I/O. Instants are
timezone-aware and returned in UTC; rotations, handoffs and restrictions are wall-clock times
in the schedule's IANA time zone (or a layer's own zone, for follow-the-sun layers).

The model follows PagerDuty's schedule layers and GoAlert's rotations:

- A **schedule** has ordered layers. A later layer sits *above* the earlier ones: wherever it
  has someone on call, it wins; where it has nobody (outside its restrictions, before its
  start, after its end), the layers below show through.
- A **layer** rotates through its participants. The turn that contains the layer's ``start``
  is ``participants[0]``'s; each handoff passes to the next participant, wrapping around.
  Handoffs fall on a grid fixed by the rotation: the latest handoff (wall-clock time, and
  weekday for weekly rotations) at or before ``start``, then every rotation length.
- **Restrictions** mask a layer: with any restriction, the layer's person is on call only
  inside one of the windows (their union). The turns themselves are not shifted.
- A **roster change** replaces the participant list from its ``effective_at`` on: the new
  roster's first person takes over at that instant and later handoffs keep the layer's grid.
  Turns before the change are untouched, so history is never rewritten.
- **Overrides** apply on top of all layers, in list order (a later override wins where two
  overlap). An override without ``replaces`` gives its whole window to ``user``; one with
  ``replaces`` gives ``user`` only the parts of its window where ``replaces`` would be on call
  (GoAlert's "replace" override) — that is how a swap binds each override to one shift.

Wall-clock rules (how daylight-saving time is handled):

- Daily, weekly and custom *day* rotations hand off at the same wall-clock time every day:
  a 09:00 Europe/Berlin handoff stays at 09:00 local on the change days, so the shift that
  spans a change is 23 or 25 hours long.
- Custom *hour* rotations count elapsed hours (a 12-hour turn is always 12 real hours), from
  the first handoff at the wall-clock ``handoff_time`` at or before the layer's start.
- A wall-clock time that does not exist (spring forward) resolves to the instant the clocks
  jump, i.e. the first wall-clock moment after the gap: a 02:30 Berlin handoff on
  2026-03-29 happens at 03:00 CEST (01:00 UTC).
- A wall-clock time that happens twice (fall back) resolves to its first occurrence: a 02:30
  Berlin handoff on 2026-10-25 happens at 02:30 CEST (00:30 UTC).
- Restriction windows, night hours and weekends use the same two rules for their edges, so a
  window whose whole span falls in a spring-forward gap is empty.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from mechanisms.core import inputs

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
_WEEKDAY_INDEX = {name: i for i, name in enumerate(WEEKDAYS)}

# No whitespace and no NUL: PostgreSQL rejects NUL in text while SQLite stores it.
Username = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s\x00]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Calendar arithmetic looks a week or so around each instant; far outside this range it would
# overflow, and an on-call instant there is a typo.
_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = _LATEST
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("must be between 1900 and 2999")
    return value


def _wall_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a wall-clock time takes no offset; the schedule's time zone applies")
    return value


zone = inputs.zone


def _check_zone(value: str) -> str:
    zone(value)
    return value


# --- wall clock → instant ------------------------------------------------------------------


@lru_cache(maxsize=65_536)
def local_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of the naive wall-clock time ``wall`` in ``tz``.

    Ambiguous (fall back): the first occurrence. Nonexistent (spring forward): the instant the
    clocks jump, the first wall-clock moment after the gap (02:30 → 03:00 on a 02:00→03:00
    jump).
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first  # fold=0 is the earlier of two occurrences
    # Inside a gap, fold=0 reads the wall clock with the offset from before the jump (an
    # instant after it) and fold=1 with the offset from after it (an instant before it); the
    # jump lies between them. Transitions fall on whole seconds, so bisect over seconds.
    after_offset = first.astimezone(tz).utcoffset()
    lo = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    hi = int(first.timestamp()) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(tz).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _local(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware")
    try:
        return _utc(value)
    except ValueError:
        raise ValueError(f"{name}: must be between 1900 and 2999") from None


def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _aware("start", start), _aware("end", end)
    if end <= start:
        raise ValueError("end: must be after start")
    return start, end


# --- the model ----------------------------------------------------------------------------


class Rotation(Strict):
    """How often the layer hands off, and when.

    ``daily``: every ``length`` days; ``weekly``: every ``length`` weeks on ``handoff_weekday``;
    ``custom``: every ``length`` ``unit`` (hours elapse; days follow the wall clock).
    """

    type: Literal["daily", "weekly", "custom"]
    length: StrictInt = Field(default=1, ge=1, le=10_000)
    unit: Literal["hours", "days"] | None = Field(default=None, validate_default=True)
    handoff_time: time = time(9, 0)
    handoff_weekday: Weekday | None = Field(default=None, validate_default=True)

    @field_validator("length", mode="before")
    @classmethod
    def _length_positive(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError("a rotation's length must be at least 1")
        return value

    @field_validator("unit")
    @classmethod
    def _unit_only_for_custom(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if kind == "custom" and value is None:
            raise ValueError("a custom rotation needs a unit: 'hours' or 'days'")
        if kind in ("daily", "weekly") and value is not None:
            raise ValueError(f"a {kind} rotation takes no unit")
        return value

    @field_validator("handoff_time")
    @classmethod
    def _handoff_time_is_wall_clock(cls, value: time) -> time:
        return _wall_time(value)

    @field_validator("handoff_weekday")
    @classmethod
    def _weekday_only_for_weekly(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if kind == "weekly" and value is None:
            raise ValueError("a weekly rotation needs a handoff_weekday")
        if kind in ("daily", "custom") and value is not None:
            raise ValueError(f"a {kind} rotation takes no handoff_weekday")
        return value


class DailyWindow(Strict):
    """On each of ``weekdays``, from ``start`` to ``end`` local time (``end`` before ``start``
    runs past midnight into the next day), e.g. business hours 09:00–17:00 Monday–Friday."""

    kind: Literal["daily"] = "daily"
    start: time
    end: time
    weekdays: tuple[Weekday, ...] = WEEKDAYS

    @field_validator("start")
    @classmethod
    def _start_wall(cls, value: time) -> time:
        return _wall_time(value)

    @field_validator("end")
    @classmethod
    def _end_differs(cls, value: time, info: ValidationInfo) -> time:
        _wall_time(value)
        if info.data.get("start") == value:
            raise ValueError("a window's end must differ from its start")
        return value

    @field_validator("weekdays")
    @classmethod
    def _some_weekdays(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one weekday")
        if len(set(value)) != len(value):
            raise ValueError("each weekday at most once")
        return value

    def window_on(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        if WEEKDAYS[day.weekday()] not in self.weekdays:
            return None
        end_day = day if self.end > self.start else day + _DAY
        return _span(datetime.combine(day, self.start), datetime.combine(end_day, self.end), tz)


class WeeklyWindow(Strict):
    """Once a week, from ``start_weekday start_time`` to ``end_weekday end_time`` local time,
    e.g. Friday 17:00 → Monday 09:00, or Monday 00:00 → Saturday 00:00 (weekdays only)."""

    kind: Literal["weekly"] = "weekly"
    start_weekday: Weekday
    start_time: time
    end_weekday: Weekday
    end_time: time

    @field_validator("start_time")
    @classmethod
    def _start_wall(cls, value: time) -> time:
        return _wall_time(value)

    @field_validator("end_time")
    @classmethod
    def _end_differs(cls, value: time, info: ValidationInfo) -> time:
        _wall_time(value)
        same_day = info.data.get("start_weekday") == info.data.get("end_weekday")
        if same_day and info.data.get("start_time") == value:
            raise ValueError("a window's end must differ from its start")
        return value

    def window_on(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        first = _WEEKDAY_INDEX[self.start_weekday]
        if day.weekday() != first:
            return None
        days = (_WEEKDAY_INDEX[self.end_weekday] - first) % 7
        if days == 0 and self.end_time <= self.start_time:
            days = 7
        end = datetime.combine(day + timedelta(days=days), self.end_time)
        return _span(datetime.combine(day, self.start_time), end, tz)


Restriction = Annotated[DailyWindow | WeeklyWindow, Field(discriminator="kind")]


def business_hours(
    start: time = time(9), end: time = time(17), weekdays: Sequence[Weekday] = WORKDAYS
) -> DailyWindow:
    """A restriction to ``start``–``end`` local time on ``weekdays`` (default Monday–Friday)."""
    return DailyWindow(start=start, end=end, weekdays=tuple(weekdays))


def weekdays_only() -> WeeklyWindow:
    """A restriction to Monday 00:00 → Saturday 00:00 local time."""
    return WeeklyWindow(
        start_weekday="mon", start_time=time(0), end_weekday="sat", end_time=time(0)
    )


def _span(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    s, e = local_to_utc(start, tz), local_to_utc(end, tz)
    return (s, e) if e > s else None


class RosterChange(Strict):
    """From ``effective_at`` on, the layer rotates through ``participants`` instead."""

    effective_at: AwareDatetime
    participants: tuple[Username, ...]

    @field_validator("effective_at")
    @classmethod
    def _effective_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_validator("participants")
    @classmethod
    def _someone(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a roster needs at least one participant")
        return value


class Layer(Strict):
    name: Name | None = None
    participants: tuple[Username, ...]
    rotation: Rotation
    start: AwareDatetime
    end: AwareDatetime | None = None
    restrictions: tuple[Restriction, ...] = ()
    roster_changes: tuple[RosterChange, ...] = ()
    # A layer may keep its own calendar (follow-the-sun teams); the schedule's zone otherwise.
    time_zone: str | None = None

    @field_validator("participants")
    @classmethod
    def _someone(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a layer needs at least one participant")
        return value

    @field_validator("start")
    @classmethod
    def _start_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError("a layer's end must be after its start")
        return value

    @field_validator("roster_changes")
    @classmethod
    def _changes_in_order(
        cls, value: tuple[RosterChange, ...], info: ValidationInfo
    ) -> tuple[RosterChange, ...]:
        start, end = info.data.get("start"), info.data.get("end")
        previous = start
        for i, change in enumerate(value):
            if previous is not None and change.effective_at <= previous:
                what = "the layer's start" if i == 0 else f"roster change {i - 1}"
                raise ValueError(
                    f"roster change {i} ({change.effective_at.isoformat()}) must come after "
                    f"{what}; list roster changes in order, one per instant"
                )
            if end is not None and change.effective_at >= end:
                raise ValueError(f"roster change {i} takes effect at or after the layer's end")
            previous = change.effective_at
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class Override(Strict):
    """``user`` is on call over [start, end) — for the whole window, or, with ``replaces``,
    only where ``replaces`` would otherwise be on call."""

    id: Name | None = None
    start: AwareDatetime
    end: AwareDatetime
    user: Username
    replaces: Username | None = None

    @field_validator("start")
    @classmethod
    def _start_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        value = _utc(value)
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError("an override's end must be after its start")
        return value


class Schedule(Strict):
    name: Name
    time_zone: str
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("layers")
    @classmethod
    def _some_layer(cls, value: tuple[Layer, ...]) -> tuple[Layer, ...]:
        if not value:
            raise ValueError("a schedule needs at least one layer")
        return value

    def with_overrides(self, *overrides: Override) -> Schedule:
        return self.model_copy(update={"overrides": (*self.overrides, *overrides)})


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What decided who is on call: layer ``index`` of the schedule, or override ``index``."""

    kind: Literal["layer", "override"]
    index: int
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.index}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class OnCall:
    person: str | None
    source: Source | None


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime
    person: str
    source: Source

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Load:
    """One person's share of a period: time on call, of which at night and at weekends
    (both in the schedule's zone), and how many shifts."""

    person: str
    on_call: timedelta
    night: timedelta
    weekend: timedelta
    shifts: int

    @property
    def hours(self) -> float:
        return self.on_call / timedelta(hours=1)

    @property
    def night_hours(self) -> float:
        return self.night / timedelta(hours=1)

    @property
    def weekend_hours(self) -> float:
        return self.weekend / timedelta(hours=1)


# --- rotations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """The layer's handoff instants: boundary(k) for every integer k; turn k is
    [boundary(k), boundary(k + 1))."""

    tz: ZoneInfo
    anchor: datetime  # boundary(0), UTC
    anchor_wall: datetime  # its wall-clock time, naive
    step: timedelta
    elapsed: bool  # hour rotations add real time; day and week rotations add calendar days

    def boundary(self, k: int) -> datetime:
        if self.elapsed:
            return self.anchor + k * self.step
        return local_to_utc(self.anchor_wall + k * self.step, self.tz)

    def index(self, instant: datetime) -> int:
        if self.elapsed:
            return (instant - self.anchor) // self.step
        k = (_local(instant, self.tz) - self.anchor_wall) // self.step
        while self.boundary(k) > instant:
            k -= 1
        while self.boundary(k + 1) <= instant:
            k += 1
        return k


@lru_cache(maxsize=1024)
def _grid(rotation: Rotation, tz: ZoneInfo, start: datetime) -> _Grid:
    wall = datetime.combine(_local(start, tz).date(), rotation.handoff_time)
    back = _DAY
    if rotation.type == "weekly":
        assert rotation.handoff_weekday is not None
        wall -= timedelta(days=(wall.weekday() - _WEEKDAY_INDEX[rotation.handoff_weekday]) % 7)
        back = _WEEK
    if local_to_utc(wall, tz) > start:
        wall -= back
    if rotation.type == "weekly":
        step = rotation.length * _WEEK
    elif rotation.type == "custom" and rotation.unit == "hours":
        step = timedelta(hours=rotation.length)
    else:
        step = rotation.length * _DAY
    elapsed = rotation.type == "custom" and rotation.unit == "hours"
    return _Grid(tz, local_to_utc(wall, tz), wall, step, elapsed)


def _layer_zone(layer: Layer, default: ZoneInfo) -> ZoneInfo:
    return zone(layer.time_zone) if layer.time_zone else default


def _rosters(layer: Layer) -> list[tuple[datetime, datetime | None, tuple[str, ...]]]:
    """(from, until, participants) for the initial roster and each change."""
    starts = [layer.start, *(c.effective_at for c in layer.roster_changes)]
    rosters = [layer.participants, *(c.participants for c in layer.roster_changes)]
    untils: list[datetime | None] = [*starts[1:], layer.end]
    return list(zip(starts, untils, rosters, strict=True))


def _restriction_windows(
    restrictions: Sequence[DailyWindow | WeeklyWindow],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, datetime]]:
    """The union of the restrictions' windows, clipped to [start, end)."""
    day = _local(start, tz).date() - timedelta(days=8)  # a weekly window lasts ≤ 7 days
    last = _local(end, tz).date() + _DAY
    found: list[tuple[datetime, datetime]] = []
    while day <= last:
        for restriction in restrictions:
            window = restriction.window_on(day, tz)
            if window and window[0] < end and window[1] > start:
                found.append((max(window[0], start), min(window[1], end)))
        day += _DAY
    return _union(found)


def _union(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _layer_intervals(
    layer: Layer, default_tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """The layer's turns within [start, end), masked by its restrictions."""
    lo = max(start, layer.start)
    hi = min(end, layer.end) if layer.end else end
    if lo >= hi:
        return []
    tz = _layer_zone(layer, default_tz)
    grid = _grid(layer.rotation, tz, layer.start)
    turns: list[tuple[datetime, datetime, str]] = []
    for roster_from, roster_until, roster in _rosters(layer):
        seg_lo = max(lo, roster_from)
        seg_hi = min(hi, roster_until) if roster_until else hi
        if seg_lo >= seg_hi:
            continue
        first = grid.index(roster_from)
        k = grid.index(seg_lo)
        s = seg_lo
        while s < seg_hi:
            e = min(grid.boundary(k + 1), seg_hi)
            if e > s:
                turns.append((s, e, roster[(k - first) % len(roster)]))
                s = e
            k += 1
    if not layer.restrictions:
        return turns
    windows = _restriction_windows(layer.restrictions, tz, lo, hi)
    return _mask(turns, windows)


def _mask(
    turns: list[tuple[datetime, datetime, str]], windows: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime, str]]:
    out: list[tuple[datetime, datetime, str]] = []
    ends = [w[1] for w in windows]
    for s, e, person in turns:
        i = bisect_right(ends, s)
        while i < len(windows) and windows[i][0] < e:
            ws, we = windows[i]
            if min(e, we) > max(s, ws):
                out.append((max(s, ws), min(e, we), person))
            i += 1
    return out


def _layer_person_at(layer: Layer, default_tz: ZoneInfo, at: datetime) -> str | None:
    if at < layer.start or (layer.end is not None and at >= layer.end):
        return None
    tz = _layer_zone(layer, default_tz)
    if layer.restrictions and not _restriction_windows(
        layer.restrictions, tz, at, at + timedelta(microseconds=1)
    ):
        return None
    roster_from, roster = layer.start, layer.participants
    for change in layer.roster_changes:
        if change.effective_at <= at:
            roster_from, roster = change.effective_at, change.participants
    grid = _grid(layer.rotation, tz, layer.start)
    return roster[(grid.index(at) - grid.index(roster_from)) % len(roster)]


# --- the final schedule -------------------------------------------------------------------


def who_is_on_call(schedule: Schedule, at: datetime) -> OnCall:
    """Who is on call at ``at`` and what decided it (the top layer with someone, then the
    overrides in order); ``OnCall(None, None)`` if nobody is."""
    at = _aware("at", at)
    tz = zone(schedule.time_zone)
    person: str | None = None
    source: Source | None = None
    for index in reversed(range(len(schedule.layers))):
        layer = schedule.layers[index]
        found = _layer_person_at(layer, tz, at)
        if found is not None:
            person, source = found, Source("layer", index, layer.name)
            break
    for index, override in enumerate(schedule.overrides):
        if override.start <= at < override.end and override.replaces in (None, person):
            person, source = override.user, Source("override", index, override.id)
    return OnCall(person, source)


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final schedule over [start, end): non-overlapping shifts in time order, clipped to
    the window. Adjacent pieces with the same person and the same source are merged into one
    shift; where the source changes (an override starts), a new shift starts, so every
    shift's source stays true. Times nobody covers appear in no shift (see :func:`gaps`)."""
    start, end = _window(start, end)
    tz = zone(schedule.time_zone)
    layers = [_layer_intervals(layer, tz, start, end) for layer in schedule.layers]
    layer_starts = [[turn[0] for turn in turns] for turns in layers]
    overrides = [
        (i, o) for i, o in enumerate(schedule.overrides) if o.start < end and o.end > start
    ]
    cuts = {start, end}
    for turns in layers:
        for s, e, _ in turns:
            cuts.add(s)
            cuts.add(e)
    for _, o in overrides:
        cuts.update(t for t in (o.start, o.end) if start < t < end)
    out: list[Shift] = []
    for a, b in pairwise(sorted(cuts)):
        person: str | None = None
        source: Source | None = None
        for index in reversed(range(len(layers))):
            turns = layers[index]
            i = bisect_right(layer_starts[index], a) - 1
            if i >= 0 and turns[i][1] > a:
                person = turns[i][2]
                source = Source("layer", index, schedule.layers[index].name)
                break
        for index, o in overrides:
            if o.start <= a and b <= o.end and o.replaces in (None, person):
                person, source = o.user, Source("override", index, o.id)
        if person is None or source is None:
            continue
        last = out[-1] if out else None
        if last and last.end == a and last.person == person and last.source == source:
            out[-1] = Shift(last.start, b, person, source)
        else:
            out.append(Shift(a, b, person, source))
    return out


def swap(first: Shift, second: Shift, *, id_prefix: str | None = None) -> tuple[Override, ...]:
    """Two people exchange two shifts: a pair of overrides, each bound to one shift's window
    and to the person who had it (so each covers only that person's time there)."""
    if first.person == second.person:
        raise ValueError("second: a swap needs two different people")
    if first.start < second.end and second.start < first.end:
        raise ValueError("second: the two shifts overlap; swap shifts at different times")
    ids = (None, None) if id_prefix is None else (f"{id_prefix}-1", f"{id_prefix}-2")
    return (
        Override(
            id=ids[0],
            start=first.start,
            end=first.end,
            user=second.person,
            replaces=first.person,
        ),
        Override(
            id=ids[1],
            start=second.start,
            end=second.end,
            user=first.person,
            replaces=second.person,
        ),
    )


# --- coverage -----------------------------------------------------------------------------


def _as_schedules(items: Schedule | Layer | Iterable[Schedule | Layer]) -> list[Schedule]:
    if isinstance(items, Schedule | Layer):
        items = [items]
    schedules: list[Schedule] = []
    for i, item in enumerate(items):
        if isinstance(item, Schedule):
            schedules.append(item)
        elif isinstance(item, Layer):
            if item.time_zone is None:
                raise ValueError(
                    f"schedules[{i}].time_zone: a layer checked on its own needs its time zone"
                )
            schedules.append(
                Schedule(name=item.name or f"layer {i}", time_zone=item.time_zone, layers=(item,))
            )
        else:
            raise ValueError(f"schedules[{i}]: expected a Schedule or a Layer")
    return schedules


def gaps(
    schedules: Schedule | Layer | Iterable[Schedule | Layer], start: datetime, end: datetime
) -> list[Interval]:
    """The parts of [start, end) that none of the schedules (or standalone layers, which then
    need their own ``time_zone``) covers — nobody to page."""
    start, end = _window(start, end)
    covered = _union(
        (shift.start, shift.end)
        for schedule in _as_schedules(schedules)
        for shift in shifts(schedule, start, end)
    )
    out: list[Interval] = []
    cursor = start
    for s, e in covered:
        if s > cursor:
            out.append(Interval(cursor, s))
        cursor = max(cursor, e)
    if cursor < end:
        out.append(Interval(cursor, end))
    return out


# --- fairness -----------------------------------------------------------------------------


def _overlap(
    s: datetime, e: datetime, windows: list[tuple[datetime, datetime]], ends: list[datetime]
) -> timedelta:
    total = timedelta(0)
    i = bisect_right(ends, s)
    while i < len(windows) and windows[i][0] < e:
        ws, we = windows[i]
        if min(e, we) > max(s, ws):
            total += min(e, we) - max(s, ws)
        i += 1
    return total


def fairness(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    *,
    night_start: time = time(22),
    night_end: time = time(6),
    weekend: Sequence[Weekday] = ("sat", "sun"),
) -> list[Load]:
    """Per person over [start, end): time on call, night time (``night_start``–``night_end``
    local), weekend time (whole local days in ``weekend``), and shifts (as :func:`shifts`
    counts them, including ones cut by the window). Everyone on a roster in force during the
    window appears, with zeros if they were never on call. Sorted by person."""
    start, end = _window(start, end)
    try:
        night = DailyWindow(start=night_start, end=night_end)
    except ValueError as exc:
        raise ValueError("night_end: must differ from night_start") from exc
    unknown = [d for d in weekend if d not in _WEEKDAY_INDEX]
    if unknown:
        raise ValueError(f"weekend: unknown weekday(s) {unknown}; use {list(WEEKDAYS)}")
    tz = zone(schedule.time_zone)
    nights = _restriction_windows([night], tz, start, end)
    weekends = _restriction_windows(
        [
            WeeklyWindow(
                start_weekday=d,
                start_time=time(0),
                end_weekday=WEEKDAYS[(_WEEKDAY_INDEX[d] + 1) % 7],
                end_time=time(0),
            )
            for d in set(weekend)
        ],
        tz,
        start,
        end,
    )
    night_ends = [w[1] for w in nights]
    weekend_ends = [w[1] for w in weekends]
    totals: dict[str, list] = {}
    for layer in schedule.layers:
        if layer.start >= end or (layer.end is not None and layer.end <= start):
            continue
        for roster_from, roster_until, roster in _rosters(layer):
            if roster_from < end and (roster_until is None or roster_until > start):
                for person in roster:
                    totals.setdefault(person, [timedelta(0), timedelta(0), timedelta(0), 0])
    for shift in shifts(schedule, start, end):
        row = totals.setdefault(shift.person, [timedelta(0), timedelta(0), timedelta(0), 0])
        row[0] += shift.duration
        row[1] += _overlap(shift.start, shift.end, nights, night_ends)
        row[2] += _overlap(shift.start, shift.end, weekends, weekend_ends)
        row[3] += 1
    return [Load(person, *totals[person]) for person in sorted(totals)]


# --- iCalendar ----------------------------------------------------------------------------


def shift_uid(schedule: Schedule, shift: Shift) -> str:
    """A UID that stays the same for the same shift (schedule, person, source, start) in
    every export, so calendar clients update events instead of duplicating them."""
    key = "\x1f".join(
        [schedule.name, shift.person, shift.source.kind, str(shift.source.index)]
        + [shift.start.isoformat()]
    )
    return f"{hashlib.sha256(key.encode()).hexdigest()[:32]}@oncall.mechanisms"


def to_ical(
    schedules: Schedule | Iterable[Schedule],
    start: datetime,
    end: datetime,
    *,
    dtstamp: datetime,
    person: str | None = None,
    calendar_name: str | None = None,
    lookaround: timedelta = timedelta(days=31),
) -> bytes:
    """A VCALENDAR with one VEVENT per shift overlapping [start, end) — of one schedule or
    several, for everyone or only ``person``. Events are whole shifts (looked up to
    ``lookaround`` beyond the window, so a shift crossing the window's edge keeps its times
    and UID from one export to the next); DTSTART/DTEND are UTC; ``dtstamp`` is the export
    instant, a parameter because the domain reads no clock."""
    from icalendar import Calendar, Event

    start, end = _window(start, end)
    dtstamp = _aware("dtstamp", dtstamp)
    if lookaround < timedelta(0):
        raise ValueError("lookaround: must not be negative")
    items = [schedules] if isinstance(schedules, Schedule) else list(schedules)
    if not items:
        raise ValueError("schedules: name at least one schedule")
    for i, item in enumerate(items):
        if not isinstance(item, Schedule):
            raise ValueError(f"schedules[{i}]: expected a Schedule")
    calendar = Calendar()
    calendar.add("prodid", "-//Mechanisms//On-call schedule//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    default_name = " + ".join(s.name for s in items) + (f" — {person}" if person else "")
    calendar.add("x-wr-calname", calendar_name or f"On call: {default_name}")
    for schedule in items:
        for shift in shifts(schedule, start - lookaround, end + lookaround):
            if shift.end <= start or shift.start >= end:
                continue
            if person is not None and shift.person != person:
                continue
            event = Event()
            event.add("uid", shift_uid(schedule, shift))
            event.add("dtstamp", dtstamp)
            event.add("dtstart", shift.start)
            event.add("dtend", shift.end)
            event.add("summary", f"On call: {shift.person} — {schedule.name}")
            event.add("description", f"Decided by {shift.source}.")
            event.add("categories", ["on-call"])
            event.add("transp", "TRANSPARENT")
            event.add("x-mechanisms-person", shift.person)
            event.add("x-mechanisms-schedule", schedule.name)
            event.add("x-mechanisms-source", f"{shift.source.kind}:{shift.source.index}")
            calendar.add_component(event)
    return calendar.to_ical()
