"""Expanding a recurrence from the window asked about gives what expanding it from its
DTSTART gives, however old the rule."""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.rrule import rrulestr
from hypothesis import given
from hypothesis import strategies as st

from mechanisms.core import recurrence

RULES = [
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=DAILY;BYHOUR=9,17;BYMINUTE=30",
    "FREQ=WEEKLY;BYDAY=SA,SU",
    "FREQ=WEEKLY;INTERVAL=2",
    "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=MO,SU",
    "FREQ=MONTHLY",
    "FREQ=MONTHLY;INTERVAL=5",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYMONTHDAY=-1,15",
    "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=2",
    "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=31",
    "FREQ=YEARLY",
    "FREQ=YEARLY;INTERVAL=3",
    "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYYEARDAY=100,-1",
    "FREQ=HOURLY;INTERVAL=7;BYHOUR=1,9,17",
    "FREQ=HOURLY;INTERVAL=5",
    "FREQ=WEEKLY;UNTIL=20300101T000000",
]


@given(
    rule=st.sampled_from(RULES),
    dtstart=st.datetimes(datetime(1990, 1, 1), datetime(2026, 12, 31)),
    later=st.timedeltas(timedelta(days=-30), timedelta(days=15_000)),
    span=st.timedeltas(timedelta(0), timedelta(days=400)),
)
def test_expanding_from_the_window_finds_what_expanding_from_dtstart_finds(
    rule, dtstart, later, span
):
    dtstart = dtstart.replace(microsecond=0)
    parsed = rrulestr(rule, dtstart=dtstart)
    start = dtstart + later
    assert recurrence.between(parsed, start, start + span) == parsed.between(
        start, start + span, inc=True
    )


def test_the_cost_does_not_grow_with_the_rules_age():
    ancient = rrulestr("FREQ=HOURLY;INTERVAL=7", dtstart=datetime(1900, 1, 1))
    start = datetime(2026, 1, 1)
    found = recurrence.between(ancient, start, datetime(2026, 1, 3))
    assert len(found) == 7
    # The expansion starts at most one INTERVAL before the window, not in 1900.
    moved = recurrence.starting_near(ancient, start)
    assert start - timedelta(hours=7) < moved[0] <= start
