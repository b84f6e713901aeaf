"""Block windows and the calendar gate: OPEN or BLOCKED at an instant, why, and until when.

Every window is defined in wall-clock time in an IANA zone, the way people say it ("every
Friday 15:00 to Monday 09:00, Berlin time"), and turned into UTC instants only when it is
evaluated, so a daylight-saving change moves the UTC instants, never the wall-clock handoffs.
A wall-clock time that does not exist (the skipped hour of a spring-forward day) is read with
the offset in force before the gap, and an ambiguous one (the repeated hour of a fall-back day)
as its first occurrence, as RFC 5545 says.

Windows are scoped org → team → service → stage; a window covers its own scope and everything
below it. ``Calendar`` indexes the windows by scope so that a query only looks at the windows on
its own scope chain, and compiles each rule once (parsed RRULE objects and the expansion of
their occurrences are cached per rule definition; answers are never cached).

Pure domain code: no clock reads, every instant is a parameter.
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from dateutil.rrule import rrule, rruleset, rrulestr

from mechanisms.core import inputs, recurrence
from mechanisms.core.errors import InvalidInput

# How far ahead the gate looks for the next transition; beyond it the answer is "not within".
DEFAULT_HORIZON = timedelta(days=400)
# A recurring rule must match at least once this soon after its DTSTART, else it never does.
MATCH_HORIZON_YEARS = 10
# A window longer than this is a freeze without end, which a one-off window says better.
MAX_DURATION = recurrence.MAX_DURATION
MAX_HOLIDAY_PADDING_DAYS = 31
# The longest span one calendar view (Calendar.occurrences) lists.
MAX_VIEW = timedelta(days=400)
# Converting wall-clock to UTC moves an instant by at most this much (the largest DST step is
# one hour; Lord Howe's is 30 minutes), so local-time look-ups widen their range by it.
_DST_SLACK = timedelta(hours=3)
# Instants outside these bounds are refused: far-off dates are typos, and they would make a
# rule walk centuries of occurrences.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# RFC 5545 has no day or week 0; dateutil drops a 0 silently, which would widen the rule.
_ZERO_ORDINAL = re.compile(
    r"(?:^|;)BY(?:MONTHDAY|YEARDAY|WEEKNO|SETPOS)=(?:[^;]*,)?[+-]?0+(?:[,;]|$)"
)
_MAX_CHAIN_STEPS = 10_000


class GateStatus(StrEnum):
    OPEN = "OPEN"
    BLOCKED = "BLOCKED"


class WindowKind(StrEnum):
    ONE_OFF = "one_off"
    FREEZE = "freeze"
    RECURRING = "recurring"
    HOLIDAYS = "holidays"


def zone(name: str, *, field_name: str = "tz") -> ZoneInfo:
    """The IANA zone called ``name``, or ``InvalidInput`` naming the field."""
    return inputs.checked_zone(name, field_name)


def to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock reading in ``tz`` as a UTC instant (gap: offset before it; overlap: first)."""
    if wall.tzinfo is not None:
        return wall.astimezone(UTC)
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _wall(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


def _require_aware(at: datetime, field_name: str = "at") -> None:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(
            f"{field_name} must be a datetime with a time zone",
            code="naive_instant",
            details={"field": field_name},
        )
    _require_in_range(at, field_name)


def _require_in_range(value: datetime, field_name: str) -> None:
    """Refuse dates outside [EARLIEST, LATEST), checked on the reading itself so that a
    conversion near year 1 or 9999 can never overflow."""
    if not EARLIEST.year <= value.year < LATEST.year:
        raise InvalidInput(
            f"{field_name} must fall between {EARLIEST.year} and {LATEST.year - 1}",
            code="instant_out_of_range",
            details={"field": field_name},
        )


# ---------------------------------------------------------------------------------------------
# Scopes


# A scope narrows in this order; its key holds the first one to four of them.
SCOPE_PARTS = ("org", "team", "service", "stage")


@dataclass(frozen=True, order=True)
class Scope:
    """Where a window applies: an org, optionally narrowed to a team, a service, a stage."""

    org: str
    team: str | None = None
    service: str | None = None
    stage: str | None = None

    def __post_init__(self) -> None:
        seen_gap = None
        for name in SCOPE_PARTS:
            value = getattr(self, name)
            if value is None:
                seen_gap = seen_gap or name
                continue
            if not isinstance(value, str) or not value.strip() or "\x00" in value:
                raise InvalidInput(
                    f"scope {name} must be a non-empty name",
                    code="invalid_scope",
                    details={"field": name},
                )
            if seen_gap:
                raise InvalidInput(
                    f"a scope with a {name} needs its {seen_gap} too (org → team → service → stage)",
                    code="invalid_scope",
                    details={"field": seen_gap},
                )

    @functools.cached_property
    def key(self) -> tuple[str, ...]:
        # Cached: the index is looked up by key for every window on every gate call.
        return tuple(v for v in (getattr(self, n) for n in SCOPE_PARTS) if v is not None)

    def chain(self) -> tuple[tuple[str, ...], ...]:
        """The keys of this scope and every scope above it, broadest first."""
        key = self.key
        return tuple(key[:n] for n in range(1, len(key) + 1))

    def covers(self, other: Scope) -> bool:
        return other.key[: len(self.key)] == self.key

    def __str__(self) -> str:
        return "/".join(self.key)


# ---------------------------------------------------------------------------------------------
# Window definitions (what users write)


@dataclass(frozen=True)
class OneOff:
    """A single range, e.g. 2026-12-21 00:00 to 2027-01-04 09:00 Europe/Berlin.

    ``start``/``end`` are wall-clock readings in ``tz`` (naive), or instants (aware)."""

    start: datetime
    end: datetime
    tz: str = "UTC"

    kind = WindowKind.ONE_OFF


@dataclass(frozen=True)
class Freeze(OneOff):
    """An ad-hoc freeze ("until Thursday 18:00"): a one-off range that expires by itself."""

    kind = WindowKind.FREEZE


@dataclass(frozen=True)
class Recurring:
    """An RFC 5545 RRULE from a wall-clock DTSTART in ``tz``, each occurrence lasting
    ``duration`` of wall-clock time (Friday 15:00 + 2 days 18 h is Monday 09:00 whatever
    the clocks did over the weekend). ``exdates`` are wall-clock starts left out."""

    rrule: str
    dtstart: datetime
    duration: timedelta
    tz: str = "UTC"
    exdates: tuple[datetime, ...] = ()

    kind = WindowKind.RECURRING

    def __post_init__(self) -> None:
        object.__setattr__(self, "exdates", tuple(self.exdates))

    @classmethod
    def until_wall_clock(
        cls,
        rrule: str,
        dtstart: datetime,
        end: time,
        *,
        days_later: int,
        tz: str = "UTC",
        exdates: Sequence[datetime] = (),
    ) -> Recurring:
        """Each occurrence ends at wall-clock ``end``, ``days_later`` days after it starts
        (every Friday 15:00 to Monday 09:00: ``end=time(9), days_later=3``)."""
        start_wall = dtstart.replace(tzinfo=None)
        end_wall = datetime.combine(start_wall.date() + timedelta(days=days_later), end)
        return cls(rrule, dtstart, end_wall - start_wall, tz, tuple(exdates))


@dataclass(frozen=True)
class Holidays:
    """Every public holiday of a country (and subdivision) from the ``holidays`` package,
    blocked as whole local days, widened by ``days_before`` and ``days_after``."""

    country: str
    subdivision: str | None = None
    tz: str = "UTC"
    days_before: int = 0
    days_after: int = 0

    kind = WindowKind.HOLIDAYS


Rule = OneOff | Freeze | Recurring | Holidays


@dataclass(frozen=True)
class BlockWindow:
    id: str
    scope: Scope
    rule: Rule
    reason: str = ""

    @property
    def kind(self) -> WindowKind:
        return self.rule.kind


# ---------------------------------------------------------------------------------------------
# Compiled rules: intervals in UTC


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    label: str = ""

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


class CompiledRule:
    """A rule ready to answer: which occurrences contain an instant, and the next one to start."""

    def active(self, at: datetime) -> list[Interval]:
        raise NotImplementedError

    def next_start(self, after: datetime, horizon: datetime) -> datetime | None:
        """The earliest occurrence start in (after, horizon], or None."""
        raise NotImplementedError

    def between(self, start: datetime, end: datetime) -> list[Interval]:
        """Occurrences overlapping [start, end), for calendars and exports."""
        raise NotImplementedError


class _Fixed(CompiledRule):
    def __init__(self, interval: Interval) -> None:
        self.interval = interval

    def active(self, at: datetime) -> list[Interval]:
        return [self.interval] if self.interval.contains(at) else []

    def next_start(self, after: datetime, horizon: datetime) -> datetime | None:
        start = self.interval.start
        return start if after < start <= horizon else None

    def between(self, start: datetime, end: datetime) -> list[Interval]:
        iv = self.interval
        return [iv] if iv.start < end and iv.end > start else []


class _Occurrences(CompiledRule):
    """A recurring rule's occurrences, expanded lazily in wall-clock order and kept.

    The expansion is a function of the rule alone, so keeping it cannot go stale; it lets a
    query bisect instead of walking the rule from DTSTART on every call."""

    def __init__(self, rule: rrule | rruleset, tz: ZoneInfo, duration: timedelta) -> None:
        self.tz = tz
        self.duration = duration
        self._iterator: Iterator[datetime] | None = iter(rule)
        self._starts: list[datetime] = []  # naive wall-clock, ascending
        self._lock = threading.Lock()

    def _pull(self) -> bool:
        """Expand one more occurrence; False once the rule has none left."""
        if self._iterator is None:
            return False
        try:
            occurrence = next(self._iterator)
        except StopIteration:
            self._iterator = None
            return False
        self._starts.append(occurrence.replace(tzinfo=None))
        return True

    def _expand_to(self, wall_limit: datetime) -> None:
        """Expand until an occurrence after ``wall_limit`` is known (or the rule ends)."""
        if self._starts and self._starts[-1] > wall_limit:
            return
        with self._lock:
            while (not self._starts or self._starts[-1] <= wall_limit) and self._pull():
                pass

    def _interval(self, wall_start: datetime) -> Interval:
        return Interval(to_utc(wall_start, self.tz), to_utc(wall_start + self.duration, self.tz))

    def active(self, at: datetime) -> list[Interval]:
        wall = _wall(at, self.tz)
        self._expand_to(wall + _DST_SLACK)
        starts = self._starts
        found = []
        i = bisect.bisect_right(starts, wall + _DST_SLACK) - 1
        earliest = wall - self.duration - _DST_SLACK
        while i >= 0 and starts[i] > earliest:
            interval = self._interval(starts[i])
            if interval.contains(at):
                found.append(interval)
            i -= 1
        return found

    def next_start(self, after: datetime, horizon: datetime) -> datetime | None:
        wall_after = _wall(after, self.tz)
        wall_limit = _wall(horizon, self.tz) + _DST_SLACK
        self._expand_to(wall_after)
        i = bisect.bisect_left(self._starts, wall_after - _DST_SLACK)
        best: datetime | None = None
        while True:
            if i >= len(self._starts):
                with self._lock:
                    if i >= len(self._starts) and not self._pull():
                        return best
            wall_start = self._starts[i]
            if wall_start > wall_limit or (best and wall_start > _wall(best, self.tz) + _DST_SLACK):
                return best
            interval = self._interval(wall_start)
            # An occurrence wholly inside a spring-forward gap is empty: no transition.
            if (
                after < interval.start <= horizon
                and interval.start < interval.end
                and (best is None or interval.start < best)
            ):
                best = interval.start
            i += 1

    def between(self, start: datetime, end: datetime) -> list[Interval]:
        wall_end = _wall(end, self.tz) + _DST_SLACK
        self._expand_to(wall_end)
        i = bisect.bisect_left(self._starts, _wall(start, self.tz) - self.duration - _DST_SLACK)
        found = []
        for wall_start in self._starts[i:]:
            if wall_start > wall_end:
                break
            interval = self._interval(wall_start)
            if interval.start < end and interval.end > start:
                found.append(interval)
        return found


class _HolidayDays(CompiledRule):
    def __init__(self, definition: Holidays, tz: ZoneInfo) -> None:
        self.definition = definition
        self.tz = tz
        self._years: dict[int, list[Interval]] = {}  # by day, so by start
        self._starts: dict[int, list[datetime]] = {}
        # Every interval spans the same days of wall-clock time; a DST change moves the
        # UTC length by an hour or so. Nothing longer can contain an instant.
        self._longest = timedelta(days=definition.days_before + definition.days_after + 1)
        self._longest += _DST_SLACK
        self._lock = threading.Lock()

    def _year(self, year: int) -> list[Interval]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        d = self.definition
        days = holidays.country_holidays(d.country, subdiv=d.subdivision, years=year)
        intervals = []
        for day, name in sorted(days.items()):
            first = datetime.combine(day - timedelta(days=d.days_before), time())
            after_last = datetime.combine(day + timedelta(days=d.days_after + 1), time())
            intervals.append(
                Interval(
                    to_utc(first, self.tz),
                    to_utc(after_last, self.tz),
                    f"{name} ({day.isoformat()})",
                )
            )
        with self._lock:
            self._starts[year] = [iv.start for iv in intervals]
            self._years[year] = intervals
        return intervals

    @staticmethod
    def _years_around(year: int, span: int) -> range:
        """The year before ``year`` to ``span`` years after it, within what dates can hold."""
        return range(max(year - 1, 1), min(year + span, 9998) + 1)

    def _around(self, year: int, span: int) -> Iterable[Interval]:
        for y in self._years_around(year, span):
            yield from self._year(y)

    def active(self, at: datetime) -> list[Interval]:
        # On every gate call for every scope under an org-wide holiday rule: bisect to the
        # holidays that start before ``at`` and less than the longest interval before it.
        found = []
        earliest = at - self._longest
        for y in self._years_around(_wall(at, self.tz).year, 1):
            intervals = self._year(y)
            starts = self._starts[y]
            i = bisect.bisect_right(starts, at)
            while i > 0 and starts[i - 1] > earliest:
                i -= 1
                if intervals[i].contains(at):
                    found.append(intervals[i])
        return sorted(found, key=lambda iv: iv.start)

    def next_start(self, after: datetime, horizon: datetime) -> datetime | None:
        years = _wall(horizon, self.tz).year - _wall(after, self.tz).year + 1
        starts = [
            iv.start
            for iv in self._around(_wall(after, self.tz).year, years)
            if after < iv.start <= horizon
        ]
        return min(starts, default=None)

    def between(self, start: datetime, end: datetime) -> list[Interval]:
        years = _wall(end, self.tz).year - _wall(start, self.tz).year + 1
        seen = set()
        found = []
        for iv in self._around(_wall(start, self.tz).year, years):
            if iv.start < end and iv.end > start and iv not in seen:
                seen.add(iv)
                found.append(iv)
        return found


# ---------------------------------------------------------------------------------------------
# Compiling (validation lives here: every bad definition is named)


def _bad(message: str, code: str, field_name: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, code=code, details={"field": field_name, **details})


def _instant(value: datetime, tz: ZoneInfo, field_name: str) -> datetime:
    if not isinstance(value, datetime):
        raise _bad(f"{field_name} must be a date and time", "invalid_window", field_name)
    _require_in_range(value, field_name)
    return to_utc(value, tz)


def _compile_fixed(rule: OneOff) -> CompiledRule:
    tz = zone(rule.tz)
    start = _instant(rule.start, tz, "start")
    end = _instant(rule.end, tz, "end")
    if end <= start:
        raise _bad("the window ends before it starts", "end_before_start", "end")
    return _Fixed(Interval(start, end))


def _rrule_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _bad("a recurring window needs an RRULE", "malformed_rrule", "rrule")
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if any(c in body for c in "\r\n\x00") or ":" in body.split(";", 1)[0]:
        raise _bad(
            "the RRULE must be a single rule such as FREQ=WEEKLY;BYDAY=FR",
            "malformed_rrule",
            "rrule",
        )
    upper = body.upper()
    if _ZERO_ORDINAL.search(upper):
        raise _bad(
            "malformed RRULE: day, week and position numbers start at 1, not 0",
            "malformed_rrule",
            "rrule",
        )
    if recurrence.fine_frequency(upper):
        raise _bad(
            "block windows recur at most a few times a day (FREQ=SECONDLY and MINUTELY are refused)",
            "malformed_rrule",
            "rrule",
        )
    return body


def _parse_rrule(body: str, dtstart: datetime) -> rrule:
    try:
        return rrulestr(body, dtstart=dtstart)
    except TypeError as exc:  # dateutil's way of saying FREQ is missing
        raise _bad(
            "malformed RRULE: FREQ is required", "malformed_rrule", "rrule", value=body
        ) from exc
    except ValueError as exc:
        if "UNTIL" not in str(exc):
            raise _bad(f"malformed RRULE: {exc}", "malformed_rrule", "rrule", value=body) from exc
    # A floating UNTIL (no Z) with a zoned DTSTART: read it as wall-clock time in the same zone.
    try:
        floating = rrulestr(body, dtstart=dtstart.replace(tzinfo=None))
        until = floating._until  # dateutil keeps the parsed UNTIL only here
        return floating.replace(
            dtstart=dtstart, until=until.replace(tzinfo=dtstart.tzinfo) if until else None
        )
    except (ValueError, TypeError) as exc:
        raise _bad(f"malformed RRULE: {exc}", "malformed_rrule", "rrule", value=body) from exc


def _never_matches(parsed: rrule, dtstart: datetime) -> bool:
    limit = dtstart + timedelta(days=366 * MATCH_HORIZON_YEARS)
    until = parsed._until
    bounded = parsed.replace(count=None, until=min(until, limit) if until else limit)
    return bounded.after(dtstart, inc=True) is None


_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


_RANGES = {
    "BYMONTH": ("_bymonth", 1, 12),
    "BYHOUR": ("_byhour", 0, 23),
    "BYMINUTE": ("_byminute", 0, 59),
    "BYSECOND": ("_bysecond", 0, 60),
    "BYMONTHDAY": ("_bymonthday", 1, 31),
    "BYYEARDAY": ("_byyearday", 1, 366),
    "BYWEEKNO": ("_byweekno", 1, 53),
}


def _out_of_range(parsed: rrule) -> str | None:
    """The first BY part with a value RFC 5545 does not allow (dateutil accepts some)."""
    for part, (attribute, low, high) in _RANGES.items():
        values = getattr(parsed, attribute, None) or ()
        if part == "BYMONTHDAY":
            values = (*values, *(parsed._bynmonthday or ()))
        signed = part in ("BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
        if any(not low <= (abs(v) if signed else v) <= high for v in values):
            return part
    return None


def _plainly_impossible(parsed: rrule) -> bool:
    """Rules that can never match, caught without expanding them. dateutil walks a rule
    that never matches up to year 9999 whatever its UNTIL (seconds for a daily rule), so
    the common impossible rule, a day no listed month has, is refused here first."""
    days = parsed._bymonthday or ()
    months = parsed._bymonth or ()
    if days and not parsed._bynmonthday and months:
        return all(d > _LONGEST_MONTH[m - 1] for m in months for d in days)
    return False


def _compile_recurring(rule: Recurring) -> CompiledRule:
    tz = zone(rule.tz)
    body = _rrule_text(rule.rrule)
    if not isinstance(rule.dtstart, datetime):
        raise _bad("dtstart must be a date and time", "invalid_window", "dtstart")
    _require_in_range(rule.dtstart, "dtstart")
    for exdate in rule.exdates:
        if not isinstance(exdate, datetime):
            raise _bad("every exdate must be a date and time", "invalid_window", "exdates")
        _require_in_range(exdate, "exdates")
    dtstart = (rule.dtstart.astimezone(tz) if rule.dtstart.tzinfo else rule.dtstart).replace(
        tzinfo=tz, fold=0
    )
    if not isinstance(rule.duration, timedelta) or rule.duration <= timedelta(0):
        raise _bad(
            "the window ends before it starts: the duration must be positive",
            "end_before_start",
            "duration",
        )
    if rule.duration > MAX_DURATION:
        raise _bad(
            f"a recurring window lasts at most {MAX_DURATION.days} days",
            "invalid_window",
            "duration",
        )
    parsed = _parse_rrule(body, dtstart)
    if parsed._interval < 1:
        raise _bad(
            "malformed RRULE: INTERVAL must be 1 or more", "malformed_rrule", "rrule", value=body
        )
    if parsed._count is not None and parsed._count < 1:
        raise _bad(
            "malformed RRULE: COUNT must be 1 or more", "malformed_rrule", "rrule", value=body
        )
    wrong = _out_of_range(parsed)
    if wrong:
        raise _bad(
            f"malformed RRULE: a {wrong} value is out of range",
            "malformed_rrule",
            "rrule",
            value=body,
        )
    if _plainly_impossible(parsed):
        raise _bad(
            "the RRULE never matches (no listed month has that day)",
            "rrule_never_matches",
            "rrule",
            value=body,
        )
    try:
        never = _never_matches(parsed, dtstart)
        dense = not never and recurrence.too_dense(parsed, dtstart)
    except (ValueError, OverflowError) as exc:  # raised by dateutil while it expands the rule
        raise _bad(f"malformed RRULE: {exc}", "malformed_rrule", "rrule", value=body) from exc
    if never:
        raise _bad(
            f"the RRULE never matches (no occurrence within {MATCH_HORIZON_YEARS} years of DTSTART)",
            "rrule_never_matches",
            "rrule",
            value=body,
        )
    if dense:
        raise _bad(
            f"the RRULE recurs more than {recurrence.MAX_OCCURRENCES_PER_YEAR} times a year; "
            "a block window recurs at most a few times a day",
            "malformed_rrule",
            "rrule",
            value=body,
        )
    source: rrule | rruleset = parsed
    if rule.exdates:
        source = rruleset()
        source.rrule(parsed)
        for exdate in rule.exdates:
            source.exdate(
                (exdate.astimezone(tz) if exdate.tzinfo else exdate).replace(tzinfo=tz, fold=0)
            )
    return _Occurrences(source, tz, rule.duration)


def _compile_holidays(rule: Holidays) -> CompiledRule:
    tz = zone(rule.tz)
    for name, value in (("days_before", rule.days_before), ("days_after", rule.days_after)):
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_HOLIDAY_PADDING_DAYS
        ):
            raise _bad(
                f"{name} must be a whole number of days from 0 to {MAX_HOLIDAY_PADDING_DAYS}",
                "invalid_window",
                name,
            )
    supported = holidays.list_supported_countries()
    country = rule.country.upper() if isinstance(rule.country, str) else rule.country
    if country not in supported:
        raise _bad(
            f"unknown holiday country {rule.country!r}: use an ISO 3166-1 code such as DE",
            "unknown_holiday_country",
            "country",
        )
    if rule.subdivision is not None:
        try:
            holidays.country_holidays(country, subdiv=rule.subdivision, years=2000)
        except NotImplementedError as exc:
            raise _bad(
                f"unknown subdivision {rule.subdivision!r} of {country}",
                "unknown_holiday_subdivision",
                "subdivision",
                known=list(supported[country]),
            ) from exc
    return _HolidayDays(
        Holidays(country, rule.subdivision, rule.tz, rule.days_before, rule.days_after), tz
    )


@functools.lru_cache(maxsize=65536)
def compile_rule(rule: Rule) -> CompiledRule:
    """The compiled form of a rule definition, cached per definition (equal definitions share it)."""
    if isinstance(rule, OneOff):
        return _compile_fixed(rule)
    if isinstance(rule, Recurring):
        return _compile_recurring(rule)
    if isinstance(rule, Holidays):
        return _compile_holidays(rule)
    raise InvalidInput("unknown kind of window", code="invalid_window", details={"field": "rule"})


def validate(window: BlockWindow) -> CompiledRule:
    """Compile ``window`` or raise ``InvalidInput`` naming the window and the field."""
    try:
        return compile_rule(window.rule)
    except InvalidInput as exc:
        details = dict(exc.details or {})
        details["window"] = window.id
        raise InvalidInput(exc.message, code=exc.code, details=details) from exc


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class ActiveBlock:
    """One window blocking at the instant asked, and the occurrence that does it."""

    window_id: str
    scope: Scope
    kind: WindowKind
    reason: str
    starts_at: datetime
    ends_at: datetime
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window_id,
            "scope": str(self.scope),
            "kind": self.kind.value,
            "reason": self.reason,
            "detail": self.detail,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
        }


@dataclass(frozen=True)
class GateState:
    status: GateStatus
    at: datetime
    blockers: tuple[ActiveBlock, ...] = ()
    # BLOCKED: when the gate opens (overlapping and adjacent windows chained); OPEN: when the
    # next block starts. None: no transition within the horizon.
    next_transition: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status is GateStatus.OPEN

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.status.value,
            "at": self.at.isoformat(),
            "blockers": [b.to_dict() for b in self.blockers],
            "next_transition": self.next_transition.isoformat() if self.next_transition else None,
        }


@dataclass(frozen=True)
class _Entry:
    window: BlockWindow
    compiled: CompiledRule


@dataclass
class Calendar:
    """Windows indexed by scope, every rule compiled (and so validated) up front."""

    windows: Sequence[BlockWindow] = ()
    _by_scope: dict[tuple[str, ...], list[_Entry]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for window in self.windows:
            if window.id in seen:
                raise InvalidInput(
                    f"two windows share the id {window.id!r}",
                    code="duplicate_window",
                    details={"field": "id"},
                )
            seen.add(window.id)
            self._by_scope.setdefault(window.scope.key, []).append(_Entry(window, validate(window)))

    def on_chain(self, scope: Scope) -> list[_Entry]:
        found: list[_Entry] = []
        for key in scope.chain():
            found.extend(self._by_scope.get(key, ()))
        return found

    def gate_state(
        self, scope: Scope, at: datetime, *, horizon: timedelta = DEFAULT_HORIZON
    ) -> GateState:
        _require_aware(at)
        at = at.astimezone(UTC)
        entries = self.on_chain(scope)
        blockers = _active(entries, at)
        limit = at + horizon
        if not blockers:
            starts = (e.compiled.next_start(at, limit) for e in entries)
            return GateState(GateStatus.OPEN, at, (), min(filter(None, starts), default=None))
        opens_at = _chain_end(entries, max(b.ends_at for b in blockers), limit)
        ordered = sorted(blockers, key=lambda b: (len(b.scope.key), b.starts_at, b.window_id))
        return GateState(GateStatus.BLOCKED, at, tuple(ordered), opens_at)

    def occurrences(self, scope: Scope, start: datetime, end: datetime) -> list[ActiveBlock]:
        """Every window occurrence on ``scope``'s chain overlapping [start, end) (a month view)."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        if not start < end <= start + MAX_VIEW:
            raise InvalidInput(
                f"a calendar view spans up to {MAX_VIEW.days} days and ends after it starts",
                code="invalid_range",
                details={"field": "end"},
            )
        found = [
            _block(e.window, iv)
            for e in self.on_chain(scope)
            for iv in e.compiled.between(start, end)
        ]
        return sorted(found, key=lambda b: (b.starts_at, b.window_id))


def _block(window: BlockWindow, interval: Interval) -> ActiveBlock:
    return ActiveBlock(
        window.id,
        window.scope,
        window.kind,
        window.reason,
        interval.start,
        interval.end,
        interval.label,
    )


def _active(entries: Iterable[_Entry], at: datetime) -> list[ActiveBlock]:
    return [_block(e.window, iv) for e in entries for iv in e.compiled.active(at)]


def _chain_end(entries: Sequence[_Entry], end: datetime, limit: datetime) -> datetime | None:
    """Follow overlapping and back-to-back windows from ``end`` to the instant none is active."""
    for _ in range(_MAX_CHAIN_STEPS):
        if end > limit:
            return None
        still = [iv.end for e in entries for iv in e.compiled.active(end)]
        if not still:
            return end
        end = max(still)
    return None


def gate_state(
    windows: Calendar | Iterable[BlockWindow],
    scope: Scope,
    at: datetime,
    *,
    horizon: timedelta = DEFAULT_HORIZON,
) -> GateState:
    """OPEN or BLOCKED for ``scope`` at ``at``, every blocking window, and the next transition."""
    calendar = windows if isinstance(windows, Calendar) else Calendar(list(windows))
    return calendar.gate_state(scope, at, horizon=horizon)


def expired(window: BlockWindow, at: datetime) -> bool:
    """True once a one-off window or freeze is over for good (recurring rules with an end
    are kept: they are history on the calendar page)."""
    _require_aware(at)
    compiled = validate(window)
    return isinstance(compiled, _Fixed) and compiled.interval.end <= at


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants at which local ``day`` starts and the next one starts (23 or 25 h on DST days)."""
    zi = zone(tz)
    return to_utc(datetime.combine(day, time()), zi), to_utc(
        datetime.combine(day + timedelta(days=1), time()), zi
    )
