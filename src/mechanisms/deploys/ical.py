"""Block windows to and from iCalendar (RFC 5545), with the ``icalendar`` library.

Export: one VEVENT per one-off window, freeze or recurring rule (DTSTART/DTEND with TZID,
RRULE, EXDATE, VTIMEZONE components added), and one all-day VEVENT per holiday in the range
asked, each marked with ``X-MECH-*`` properties so that our own export imports back into the
same windows. Import: any calendar a calendar tool exports (Google Calendar, Outlook, Apple
Calendar): timed and all-day events, RRULE with EXDATE, moved occurrences (RECURRENCE-ID),
floating times, Windows zone names. Every refusal names the event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from mechanisms.core import inputs
from mechanisms.core.errors import InvalidInput
from mechanisms.deploys.calendar import (
    BlockWindow,
    Freeze,
    Holidays,
    OneOff,
    Recurring,
    Scope,
    WindowKind,
    compile_rule,
    validate,
    zone,
)

PRODID = "-//Mechanisms//Deploys block windows//EN"
# An import is one transaction: these bound how long it can hold the database's write lock.
# A team's block calendar has tens of events; a year of daily events is 365.
MAX_IMPORT_EVENTS = 2_000
MAX_IMPORT_BYTES = 1_000_000
# Window ids come from UIDs and name windows in URLs (/windows/{id}).
MAX_WINDOW_ID_LENGTH = 200


# ---------------------------------------------------------------------------------------------
# Export


def _zoned(value: datetime, tz: str) -> datetime:
    zi = zone(tz)
    return value.astimezone(zi) if value.tzinfo else value.replace(tzinfo=zi)


def _event(window: BlockWindow, uid: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("summary", window.reason or window.id)
    event.add("x-mech-window", window.id)
    event.add("x-mech-kind", window.kind.value)
    event.add("x-mech-scope", str(window.scope))
    return event


def _window_events(window: BlockWindow, start: datetime, end: datetime) -> list[icalendar.Event]:
    rule = window.rule
    if isinstance(rule, OneOff):
        event = _event(window, window.id)
        event.add("dtstart", _zoned(rule.start, rule.tz))
        event.add("dtend", _zoned(rule.end, rule.tz))
        return [event]
    if isinstance(rule, Recurring):
        event = _event(window, window.id)
        first = _zoned(rule.dtstart, rule.tz)
        event.add("dtstart", first)
        event.add(
            "dtend", (first.replace(tzinfo=None) + rule.duration).replace(tzinfo=first.tzinfo)
        )
        event.add("rrule", icalendar.vRecur.from_ical(rule.rrule.removeprefix("RRULE:")))
        if rule.exdates:
            event.add("exdate", [_zoned(d, rule.tz) for d in rule.exdates])
        return [event]
    assert isinstance(rule, Holidays)
    events = []
    marker = f"{rule.country}{'-' + rule.subdivision if rule.subdivision else ''};before={rule.days_before};after={rule.days_after};tz={rule.tz}"
    for interval in compile_rule(rule).between(start, end):
        first_day = interval.start.astimezone(zone(rule.tz)).date()
        after_last = interval.end.astimezone(zone(rule.tz)).date()
        event = _event(window, f"{window.id}/{first_day.isoformat()}")
        event["summary"] = f"{window.reason or window.id}: {interval.label}"
        event.add("dtstart", first_day)
        event.add("dtend", after_last)
        event.add("x-mech-holidays", marker)
        events.append(event)
    return events


def export_ical(
    windows: Iterable[BlockWindow], *, holidays_from: datetime, holidays_to: datetime
) -> bytes:
    """An iCalendar document of ``windows``; holiday rules are listed as their holidays
    between ``holidays_from`` and ``holidays_to`` (at most ten years)."""
    for name, value in (("holidays_from", holidays_from), ("holidays_to", holidays_to)):
        if not isinstance(value, datetime) or value.tzinfo is None or not 1970 <= value.year < 2200:
            raise InvalidInput(
                f"{name} must be an instant between 1970 and 2199",
                code="invalid_range",
                details={"field": name},
            )
    if not holidays_from < holidays_to <= holidays_from + timedelta(days=3660):
        raise InvalidInput(
            "the holiday range must end after it starts, within ten years",
            code="invalid_range",
            details={"field": "holidays_to"},
        )
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    for window in windows:
        validate(window)
        for event in _window_events(window, holidays_from, holidays_to):
            calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()


# ---------------------------------------------------------------------------------------------
# Import


def _refuse(message: str, uid: str | None, code: str = "invalid_icalendar") -> InvalidInput:
    return InvalidInput(message, code=code, details={"field": "ical", "event": uid})


def _tz_name(prop: Any, default_tz: str, uid: str | None) -> str:
    """The IANA zone of a DTSTART/DTEND property: its TZID, a Windows name mapped, or UTC."""
    value = prop.dt
    tzid = prop.params.get("TZID")
    if not isinstance(value, datetime) or (value.tzinfo is None and not tzid):
        return default_tz
    if tzid:
        for candidate in (tzid.strip("/"), WINDOWS_TO_OLSON.get(tzid)):
            if candidate:
                try:
                    return zone(candidate).key
                except InvalidInput:
                    continue
        raise _refuse(f"event {uid!r}: unknown time zone {tzid!r}", uid, "unknown_time_zone")
    key = getattr(value.tzinfo, "key", None)
    if key:
        return key
    if value.utcoffset() == timedelta(0):
        return "UTC"
    raise _refuse(
        f"event {uid!r}: its time has an offset but no named time zone", uid, "unknown_time_zone"
    )


def _wall(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.combine(value, time())


def _end_wall(event: Any, start: date | datetime, uid: str | None) -> datetime:
    if event.get("DTEND") is not None:
        end = event.get("DTEND").dt
        if (
            isinstance(end, datetime)
            and isinstance(start, datetime)
            and end.tzinfo
            and start.tzinfo
        ):
            # DTEND may be in another zone than DTSTART: read it on DTSTART's wall clock.
            end = end.astimezone(start.tzinfo)
        return _wall(end)
    if event.get("DURATION") is not None:
        duration = event.get("DURATION").dt
        if not isinstance(duration, timedelta):
            raise _refuse(f"event {uid!r}: DURATION must be a duration", uid)
        return _wall(start) + duration
    if not isinstance(start, datetime):
        return _wall(start) + timedelta(days=1)  # an all-day event without an end lasts that day
    raise _refuse(f"event {uid!r} has no end (DTEND or DURATION)", uid)


def _exdates(event: Any, tz_name: str) -> tuple[datetime, ...]:
    found = []
    props = event.get("EXDATE")
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        for item in prop.dts:
            value = item.dt
            if isinstance(value, datetime) and value.tzinfo:
                value = value.astimezone(zone(tz_name))
            found.append(_wall(value))
    return tuple(found)


def _scope_of(event: Any, scope: Scope | None, uid: str | None) -> Scope:
    if scope is not None:
        return scope
    text = event.get("X-MECH-SCOPE")
    if not text:
        raise _refuse(
            f"event {uid!r}: no scope given for the imported windows", uid, "invalid_scope"
        )
    parts = str(text).split("/")
    if len(parts) > 4:
        raise _refuse(f"event {uid!r}: scope {text!r} has too many parts", uid, "invalid_scope")
    return Scope(*parts)


def _holidays_rule(marker: str, uid: str | None) -> Holidays:
    try:
        place, *options = marker.split(";")
        settings = dict(option.split("=", 1) for option in options)
        country, _, subdivision = place.partition("-")
        return Holidays(
            country,
            subdivision or None,
            settings.get("tz", "UTC"),
            int(settings.get("before", "0")),
            int(settings.get("after", "0")),
        )
    except ValueError as exc:
        raise _refuse(f"event {uid!r}: malformed X-MECH-HOLIDAYS {marker!r}", uid) from exc


def _one_window(
    event: Any, scope: Scope | None, default_tz: str, exdates: tuple[datetime, ...]
) -> BlockWindow:
    uid = str(event.get("UID")) if event.get("UID") is not None else None
    if event.get("DTSTART") is None:
        raise _refuse(f"event {uid!r} has no DTSTART", uid)
    if event.get("RDATE") is not None:
        raise _refuse(f"event {uid!r}: RDATE is not supported; use RRULE or separate events", uid)
    window_id = _window_id(event, uid)
    start_prop = event.get("DTSTART")
    tz_name = _tz_name(start_prop, default_tz, uid)
    start = start_prop.dt
    start_wall = _wall(
        start.astimezone(zone(tz_name)) if isinstance(start, datetime) and start.tzinfo else start
    )
    end_wall = _end_wall(event, start, uid)
    reason = str(event.get("SUMMARY") or "")
    rrules = event.get("RRULE")
    if isinstance(rrules, list):
        raise _refuse(f"event {uid!r} has several RRULEs; split it into one event per rule", uid)
    if rrules is not None:
        rule: Any = Recurring(
            rrules.to_ical().decode(),
            start_wall,
            end_wall - start_wall,
            tz_name,
            exdates + _exdates(event, tz_name),
        )
    elif str(event.get("X-MECH-KIND") or "") == WindowKind.FREEZE.value:
        rule = Freeze(start_wall, end_wall, tz_name)
    else:
        rule = OneOff(start_wall, end_wall, tz_name)
    window = BlockWindow(window_id, _scope_of(event, scope, uid), rule, reason)
    validate(window)
    return window


def _window_id(event: Any, uid: str | None) -> str:
    """The id of an event's window: its X-MECH-WINDOW, else its UID; one that a URL can name."""
    window_id = str(event.get("X-MECH-WINDOW") or uid or "")
    if not window_id:
        raise _refuse("an event has neither UID nor X-MECH-WINDOW", None)
    try:
        return inputs.key(window_id, MAX_WINDOW_ID_LENGTH)
    except ValueError as exc:
        raise _refuse(f"event {window_id!r}: its UID {exc}", window_id, "invalid_uid") from None


def _refuse_oversized(data: bytes | str) -> None:
    """Refused before parsing: a document too large, or with too many events, to import in
    one short transaction."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_IMPORT_BYTES:
        raise InvalidInput(
            f"the iCalendar document has {size} bytes; import at most {MAX_IMPORT_BYTES}",
            code="too_large",
            details={"field": "ical", "limit": MAX_IMPORT_BYTES},
        )
    count = (data.upper() if isinstance(data, str) else data.upper().decode("latin-1")).count(
        "BEGIN:VEVENT"
    )
    _refuse_too_many(count)


def _refuse_too_many(count: int) -> None:
    if count > MAX_IMPORT_EVENTS:
        raise InvalidInput(
            f"the iCalendar document has {count} events; import at most {MAX_IMPORT_EVENTS} "
            "at a time (split the file)",
            code="too_many_events",
            details={"field": "ical", "limit": MAX_IMPORT_EVENTS},
        )


def import_ical(
    data: bytes | str, *, scope: Scope | None = None, default_tz: str = "UTC"
) -> list[BlockWindow]:
    """The block windows of an iCalendar document. ``scope``: where they apply (else each
    event's ``X-MECH-SCOPE``); ``default_tz``: the zone of floating and all-day times.
    At most MAX_IMPORT_EVENTS events and MAX_IMPORT_BYTES bytes."""
    zone(default_tz, field_name="default_tz")
    _refuse_oversized(data)
    try:
        # The library trips over some broken documents with AttributeError (a VTIMEZONE that
        # is not one, a parameter given twice); those are malformed input too.
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _malformed(exc) from exc
    if not isinstance(calendar, icalendar.Calendar):
        raise _malformed("the document is not a VCALENDAR")
    all_events = calendar.walk("VEVENT")
    _refuse_too_many(len(all_events))
    for event in all_events:
        _require_single_values(event)
    try:
        return _windows(calendar, scope, default_tz)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        # The library parses values lazily: a broken DTSTART shows only when it is read.
        raise _malformed(exc) from exc


def _malformed(reason: object) -> InvalidInput:
    return InvalidInput(
        f"malformed iCalendar: {reason}", code="malformed_icalendar", details={"field": "ical"}
    )


_SINGLE = ("UID", "DTSTART", "DTEND", "DURATION", "SUMMARY", "STATUS", "RECURRENCE-ID")


def _require_single_values(event: Any) -> None:
    uid = event.get("UID")
    shown = None if uid is None or isinstance(uid, list) else str(uid)
    for name in (*_SINGLE, *(k for k in event if k.upper().startswith("X-MECH-"))):
        value = event.get(name)
        if isinstance(value, list):
            raise _refuse(f"event {shown!r} has {name} more than once", shown)
        tzid = getattr(value, "params", {}).get("TZID") if value is not None else None
        if tzid is not None and not isinstance(tzid, str):
            raise _refuse(f"event {shown!r}: {name} has several TZID parameters", shown)


def _windows(
    calendar: icalendar.Calendar, scope: Scope | None, default_tz: str
) -> list[BlockWindow]:
    events = [
        e for e in calendar.walk("VEVENT") if str(e.get("STATUS") or "").upper() != "CANCELLED"
    ]
    # A moved or cancelled occurrence (RECURRENCE-ID) leaves its master's series and, unless
    # cancelled, stands as a window of its own.
    moved: dict[str, list[datetime]] = {}
    masters: dict[str, Any] = {}
    for event in events:
        if event.get("RECURRENCE-ID") is None:
            masters.setdefault(str(event.get("UID")), event)
    for event in calendar.walk("VEVENT"):
        if event.get("RECURRENCE-ID") is not None:
            uid = str(event.get("UID"))
            recurrence = event.get("RECURRENCE-ID")
            master = masters.get(uid)
            tz_name = (
                _tz_name(master.get("DTSTART"), default_tz, uid)
                if master is not None
                else default_tz
            )
            value = recurrence.dt
            if isinstance(value, datetime) and value.tzinfo:
                value = value.astimezone(zone(tz_name))
            moved.setdefault(uid, []).append(_wall(value))
    windows: list[BlockWindow] = []
    holiday_rules: dict[str, BlockWindow] = {}
    for event in events:
        uid = str(event.get("UID")) if event.get("UID") is not None else None
        marker = event.get("X-MECH-HOLIDAYS")
        if marker is not None:
            window_id = _window_id(event, uid)
            if window_id not in holiday_rules:
                reason = str(event.get("SUMMARY") or "").split(": ", 1)[0]
                window = BlockWindow(
                    window_id,
                    _scope_of(event, scope, uid),
                    _holidays_rule(str(marker), uid),
                    reason,
                )
                validate(window)
                holiday_rules[window_id] = window
                windows.append(window)
            continue
        if event.get("RECURRENCE-ID") is not None:
            recurrence = event.get("RECURRENCE-ID").dt
            stamp = (
                recurrence.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
                if isinstance(recurrence, datetime) and recurrence.tzinfo
                else _wall(recurrence).strftime("%Y%m%dT%H%M%S")
            )
            single = event.copy()
            for name in ("RECURRENCE-ID", "RRULE", "EXDATE"):
                single.pop(name, None)
            # "~": a URL path can carry it, and the key rule allows it (not "/").
            single["UID"] = f"{uid}~{stamp}"
            windows.append(_one_window(single, scope, default_tz, ()))
            continue
        windows.append(_one_window(event, scope, default_tz, tuple(moved.get(uid or "", ()))))
    duplicates = sorted(i for i, n in Counter(w.id for w in windows).items() if n > 1)
    if duplicates:
        raise _refuse(f"several events share the UID {duplicates[0]!r}", duplicates[0])
    return windows
