"""iCalendar import and export of block windows: round trips, and calendars exported by
Google Calendar and Outlook."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mechanisms.core.errors import InvalidInput
from mechanisms.deploys.calendar import (
    BlockWindow,
    Calendar,
    Freeze,
    GateStatus,
    Holidays,
    OneOff,
    Recurring,
    Scope,
)
from mechanisms.deploys.ical import export_ical, import_ical

SAMPLES = Path(__file__).parent / "samples"
ORG = Scope("acme")
PROD = Scope("acme", "payments", "checkout", "prod")
YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def our_windows() -> list[BlockWindow]:
    return [
        BlockWindow(
            "weekend",
            ORG,
            Recurring.until_wall_clock(
                "FREQ=WEEKLY;BYDAY=FR",
                datetime(2026, 1, 2, 15),
                time(9),
                days_later=3,
                tz="Europe/Berlin",
                exdates=[datetime(2026, 12, 25, 15)],
            ),
            "weekend",
        ),
        BlockWindow(
            "launch",
            Scope("acme", "payments"),
            OneOff(datetime(2026, 9, 1, 8), datetime(2026, 9, 2, 20), "America/New_York"),
            "launch day",
        ),
        BlockWindow(
            "incident",
            Scope("acme", "payments", "checkout"),
            Freeze(datetime(2026, 6, 2, 10), datetime(2026, 6, 4, 18), "Australia/Sydney"),
            "SEV1 follow-up",
        ),
        BlockWindow(
            "holidays",
            Scope("acme", "payments", "checkout", "prod"),
            Holidays("DE", "BY", "Europe/Berlin", days_before=1),
            "Bavarian holidays",
        ),
    ]


def sample_instants() -> list[datetime]:
    start = utc("2026-01-01T00:00")
    return [start + timedelta(hours=7 * i) for i in range(0, 52 * 24)]


def test_our_export_imports_back_into_the_same_windows_and_answers():
    windows = our_windows()
    document = export_ical(windows, holidays_from=YEAR[0], holidays_to=YEAR[1])
    again = import_ical(document)
    assert again == windows
    before, after = Calendar(windows), Calendar(again)
    for at in sample_instants():
        assert before.gate_state(PROD, at) == after.gate_state(PROD, at)


def test_the_export_is_icalendar_any_tool_reads():
    document = export_ical(our_windows(), holidays_from=YEAR[0], holidays_to=YEAR[1])
    parsed = icalendar.Calendar.from_ical(document)
    assert {tz["TZID"] for tz in parsed.walk("VTIMEZONE")} == {
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
    }
    weekend = next(e for e in parsed.walk("VEVENT") if e["UID"] == "weekend")
    assert weekend["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert weekend["RRULE"].to_ical() == b"FREQ=WEEKLY;BYDAY=FR"
    assert weekend["DTEND"].dt == datetime(2026, 1, 5, 9, tzinfo=weekend["DTEND"].dt.tzinfo)
    holidays = [e for e in parsed.walk("VEVENT") if str(e["UID"]).startswith("holidays/")]
    assert "Christmas Day" in " ".join(str(e["SUMMARY"]) for e in holidays)
    assert all(type(e["DTSTART"].dt).__name__ == "date" for e in holidays)


def test_a_google_calendar_export_becomes_block_windows():
    windows = import_ical(
        (SAMPLES / "google_calendar.ics").read_bytes(), scope=ORG, default_tz="Europe/Berlin"
    )
    by_id = {w.id: w for w in windows}
    assert "cancelled@google.com" not in by_id
    weekend = by_id["5m2o1s7n0fq0b9ktu3d8l4vq0c@google.com"]
    assert weekend.reason == "Weekend freeze"
    assert weekend.rule.tz == "Europe/Berlin"
    assert weekend.rule.duration == timedelta(days=2, hours=18)
    calendar = Calendar(windows)
    # Across the spring-forward weekend: Fri 15:00 CET to Mon 09:00 CEST.
    result = calendar.gate_state(PROD, utc("2026-03-28T12:00"))
    assert result.status is GateStatus.BLOCKED
    assert result.next_transition == utc("2026-03-30T07:00")
    # Good Friday's weekend was deleted from the series (EXDATE).
    assert calendar.gate_state(PROD, utc("2026-04-04T12:00")).status is GateStatus.OPEN
    # The weekend of 8 May was moved to start at 17:00 (RECURRENCE-ID).
    assert calendar.gate_state(PROD, utc("2026-05-08T14:00")).status is GateStatus.OPEN
    moved = calendar.gate_state(PROD, utc("2026-05-08T15:00"))
    assert [b.reason for b in moved.blockers] == ["Weekend freeze (late start)"]
    # All-day events are whole days in the calendar's zone; UNTIL ends the series.
    freeze = calendar.gate_state(PROD, utc("2026-12-22T12:00"))
    assert [b.reason for b in freeze.blockers] == ["End-of-year change freeze"]
    assert freeze.next_transition == utc("2027-01-03T23:00")
    assert calendar.gate_state(PROD, utc("2027-01-09T12:00")).status is GateStatus.OPEN
    assert (
        calendar.gate_state(PROD, utc("2026-06-15T07:00")).blockers[0].reason == "Data centre move"
    )


def test_an_outlook_export_with_windows_zone_names():
    windows = import_ical((SAMPLES / "outlook.ics").read_bytes(), scope=ORG)
    assert {w.rule.tz for w in windows} == {"America/New_York"}
    calendar = Calendar(windows)
    quarter_end = calendar.gate_state(PROD, utc("2026-09-29T12:00"))
    assert [b.reason for b in quarter_end.blockers] == ["Quarter-end freeze"]
    assert quarter_end.blockers[0].starts_at == utc("2026-09-28T22:00")  # 18:00 EDT
    assert quarter_end.next_transition == utc("2026-10-01T13:00")
    # The first weekend spans New York's fall-back night: Fri 17:00 EST to Mon 08:00 EST.
    weekend = calendar.gate_state(PROD, utc("2026-11-07T12:00"))
    assert weekend.next_transition == utc("2026-11-09T13:00")
    assert (
        calendar.gate_state(PROD, utc("2026-11-28T12:00")).status is GateStatus.OPEN
    )  # COUNT=3 is over


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (b"not a calendar", "malformed_icalendar"),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2026XX01T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "malformed_icalendar",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nSUMMARY:no start\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "invalid_icalendar",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "invalid_icalendar",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Moon/Base:20260101T100000\r\nDTEND;TZID=Moon/Base:20260101T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "unknown_time_zone",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T100000Z\r\nDTEND:20260101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "end_before_start",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T100000Z\r\nDTEND:20260101T110000Z\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "rrule_never_matches",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T100000Z\r\nDTEND:20260101T110000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260201T100000Z\r\nDTEND:20260201T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "invalid_icalendar",
        ),
    ],
)
def test_bad_calendars_are_refused_with_a_reason(document, code):
    with pytest.raises(InvalidInput) as info:
        import_ical(document, scope=ORG)
    assert info.value.code == code
    assert info.value.message


def test_export_refuses_an_unbounded_holiday_range():
    for start, end in (
        (YEAR[1], YEAR[0]),
        (YEAR[0], YEAR[0] + timedelta(days=4000)),
        (YEAR[0], datetime(2027, 1, 1)),
    ):
        with pytest.raises(InvalidInput) as info:
            export_ical(our_windows(), holidays_from=start, holidays_to=end)
        assert info.value.code == "invalid_range"


def test_import_needs_a_scope_when_the_events_carry_none():
    document = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T100000Z\r\nDTEND:20260101T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    with pytest.raises(InvalidInput) as info:
        import_ical(document)
    assert info.value.code == "invalid_scope"
    with pytest.raises(InvalidInput) as info:
        import_ical(document, scope=ORG, default_tz="Not/AZone")
    assert info.value.details["field"] == "default_tz"


SAMPLE_LINES = [
    line
    for name in ("google_calendar.ics", "outlook.ics")
    for line in (SAMPLES / name).read_text().splitlines()
]
EDITS = st.tuples(
    st.sampled_from(["delete", "repeat", "garble", "keep", "keep", "keep"]), st.text(max_size=8)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDITS, min_size=len(SAMPLE_LINES), max_size=len(SAMPLE_LINES)))
def test_damaged_calendars_give_windows_or_a_refusal_never_a_crash(edits):
    lines = []
    for line, (edit, text) in zip(SAMPLE_LINES, edits, strict=True):
        if edit == "repeat":
            lines += [line, line]
        elif edit == "garble":
            middle = len(line) // 2
            lines.append(line[:middle] + text + line[middle + len(text) :])
        elif edit == "keep":
            lines.append(line)
    try:
        windows = import_ical("\r\n".join(lines), scope=ORG)
    except InvalidInput as refused:
        assert refused.message
        return
    Calendar(windows).gate_state(PROD, utc("2026-05-08T15:30"))
