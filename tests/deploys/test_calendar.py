"""Block windows and the calendar gate: scopes, chaining, next transitions, DST golden days,
and every bad definition refused by name."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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
    expired,
    gate_state,
    local_day_bounds,
)

ORG = Scope("acme")
TEAM = Scope("acme", "payments")
SERVICE = Scope("acme", "payments", "checkout")
PROD = Scope("acme", "payments", "checkout", "prod")
BETA = Scope("acme", "payments", "checkout", "beta")
OTHER_TEAM_PROD = Scope("acme", "search", "indexer", "prod")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def weekend(
    tz: str, *, start: time = time(15), end: time = time(9), scope: Scope = ORG
) -> BlockWindow:
    rule = Recurring.until_wall_clock(
        "FREQ=WEEKLY;BYDAY=FR", datetime.combine(date(2026, 1, 2), start), end, days_later=3, tz=tz
    )
    return BlockWindow(f"weekend-{tz}", scope, rule, "no deploys over the weekend")


def state(windows, at: str, scope: Scope = PROD):
    return gate_state(windows, scope, utc(at))


# --- golden DST days ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "friday", "blocked_from", "open_from"),
    [
        # Europe/Berlin springs forward on Sunday 2026-03-29: Fri 15:00 CET, Mon 09:00 CEST.
        ("Europe/Berlin", "2026-03-27", "2026-03-27T14:00", "2026-03-30T07:00"),
        # ...and falls back on Sunday 2026-10-25: Fri 15:00 CEST, Mon 09:00 CET.
        ("Europe/Berlin", "2026-10-23", "2026-10-23T13:00", "2026-10-26T08:00"),
        # America/New_York springs forward on 2026-03-08 and falls back on 2026-11-01.
        ("America/New_York", "2026-03-06", "2026-03-06T20:00", "2026-03-09T13:00"),
        ("America/New_York", "2026-10-30", "2026-10-30T19:00", "2026-11-02T14:00"),
        # Australia/Sydney (southern hemisphere): DST ends 2026-04-05, starts 2026-10-04.
        ("Australia/Sydney", "2026-04-03", "2026-04-03T04:00", "2026-04-05T23:00"),
        ("Australia/Sydney", "2026-10-02", "2026-10-02T05:00", "2026-10-04T22:00"),
    ],
)
def test_weekend_handoffs_stay_on_the_wall_clock_across_dst(tz, friday, blocked_from, open_from):
    windows = [weekend(tz)]
    start, end = utc(blocked_from), utc(open_from)
    before = gate_state(windows, PROD, start - timedelta(seconds=1))
    assert before.status is GateStatus.OPEN
    assert before.next_transition == start
    during = gate_state(windows, PROD, start)
    assert during.status is GateStatus.BLOCKED
    assert during.next_transition == end
    assert [b.window_id for b in during.blockers] == [f"weekend-{tz}"]
    assert gate_state(windows, PROD, end - timedelta(microseconds=1)).status is GateStatus.BLOCKED
    after = gate_state(windows, PROD, end)
    assert after.status is GateStatus.OPEN
    next_friday = after.next_transition.astimezone(ZoneInfo(tz))
    assert (next_friday.date() - date.fromisoformat(friday)).days == 7
    assert (next_friday.weekday(), next_friday.hour, next_friday.minute) == (4, 15, 0)


def test_weekend_lengths_shrink_and_grow_by_the_hour_the_clocks_move():
    windows = [weekend("Europe/Berlin")]
    normal = state(windows, "2026-03-21T12:00").blockers[0]
    spring = state(windows, "2026-03-28T12:00").blockers[0]
    autumn = state(windows, "2026-10-24T12:00").blockers[0]
    assert normal.ends_at - normal.starts_at == timedelta(hours=66)
    assert spring.ends_at - spring.starts_at == timedelta(hours=65)
    assert autumn.ends_at - autumn.starts_at == timedelta(hours=67)


@pytest.mark.parametrize(
    ("tz", "day", "start_utc", "end_utc"),
    [
        # Nightly 01:00-05:00 New York: 3 h on the spring-forward night, 5 h on fall-back.
        ("America/New_York", "2026-03-08", "2026-03-08T06:00", "2026-03-08T09:00"),
        ("America/New_York", "2026-11-01", "2026-11-01T05:00", "2026-11-01T10:00"),
        ("Europe/Berlin", "2026-03-29", "2026-03-29T00:00", "2026-03-29T03:00"),
        ("Europe/Berlin", "2026-10-25", "2026-10-24T23:00", "2026-10-25T04:00"),
        ("Australia/Sydney", "2026-04-05", "2026-04-04T14:00", "2026-04-04T19:00"),
        ("Australia/Sydney", "2026-10-04", "2026-10-03T15:00", "2026-10-03T18:00"),
    ],
)
def test_nightly_window_on_dst_nights(tz, day, start_utc, end_utc):
    nightly = BlockWindow(
        "nightly",
        ORG,
        Recurring("FREQ=DAILY", datetime(2026, 1, 1, 1), timedelta(hours=4), tz),
        "batch jobs",
    )
    at = utc(start_utc)
    blocked = gate_state([nightly], PROD, at)
    assert blocked.status is GateStatus.BLOCKED
    assert blocked.blockers[0].starts_at == utc(start_utc)
    assert blocked.next_transition == utc(end_utc)
    assert gate_state([nightly], PROD, at - timedelta(seconds=1)).status is GateStatus.OPEN


def test_start_in_the_skipped_hour_uses_the_offset_before_the_gap():
    # 02:30 does not exist in New York on 2026-03-08; RFC 5545 reads it as 03:30 EDT.
    window = BlockWindow(
        "w",
        ORG,
        Recurring(
            "FREQ=DAILY", datetime(2026, 3, 1, 2, 30), timedelta(hours=2), "America/New_York"
        ),
    )
    blocker = state([window], "2026-03-08T08:00").blockers[0]
    assert blocker.starts_at == utc("2026-03-08T07:30")
    assert blocker.ends_at == utc("2026-03-08T08:30")
    assert state([window], "2026-03-08T07:29").status is GateStatus.OPEN


def test_start_in_the_repeated_hour_means_its_first_occurrence():
    # 01:30 happens twice in New York on 2026-11-01: the first time is 01:30 EDT = 05:30 UTC.
    window = BlockWindow(
        "w",
        ORG,
        Recurring(
            "FREQ=DAILY", datetime(2026, 10, 1, 1, 30), timedelta(minutes=30), "America/New_York"
        ),
    )
    blocker = state([window], "2026-11-01T05:45").blockers[0]
    assert blocker.starts_at == utc("2026-11-01T05:30")
    # Wall-clock 02:00 (EST) is an hour and a half later: the window lasts 1.5 h that night.
    assert blocker.ends_at == utc("2026-11-01T07:00")


def test_holiday_days_are_whole_local_days_and_chain_into_one_block():
    # NSW: Good Friday 3 April, Easter Saturday, Easter Sunday, Easter Monday 6 April 2026;
    # Sydney leaves daylight saving on the Sunday, so the block is 4 days and 1 hour long.
    easter = BlockWindow("nsw", TEAM, Holidays("AU", "NSW", "Australia/Sydney"), "public holidays")
    result = state([easter], "2026-04-03T12:00")
    assert result.status is GateStatus.BLOCKED
    assert result.blockers[0].starts_at == utc("2026-04-02T13:00")
    assert "Good Friday" in result.blockers[0].detail
    assert result.next_transition == utc("2026-04-06T14:00")
    assert local_day_bounds(date(2026, 4, 5), "Australia/Sydney") == (
        utc("2026-04-04T13:00"),
        utc("2026-04-05T14:00"),
    )


def test_holidays_with_days_before_and_after():
    christmas = BlockWindow(
        "xmas", ORG, Holidays("DE", "BY", "Europe/Berlin", days_before=2, days_after=1), "holidays"
    )
    assert state([christmas], "2026-12-22T22:59").status is GateStatus.OPEN
    result = state([christmas], "2026-12-23T00:00")
    assert result.status is GateStatus.BLOCKED
    # 25 and 26 December, two days before the first and one after the last: 23-27 December.
    assert result.next_transition == utc("2026-12-27T23:00")
    new_year = state([christmas], "2026-12-30T12:00")
    assert new_year.status is GateStatus.BLOCKED
    assert new_year.next_transition == utc("2027-01-02T23:00")  # 1 January + 1 day after


# --- scopes, chaining, next transitions -----------------------------------------------------


def test_an_org_window_covers_every_service_and_a_stage_window_only_its_stage():
    freeze = BlockWindow(
        "org", ORG, OneOff(utc("2026-05-01T00:00"), utc("2026-05-02T00:00")), "org freeze"
    )
    prod_only = BlockWindow(
        "prod", PROD, OneOff(utc("2026-06-01T00:00"), utc("2026-06-02T00:00")), "prod freeze"
    )
    team_only = BlockWindow(
        "team", TEAM, OneOff(utc("2026-07-01T00:00"), utc("2026-07-02T00:00")), "team offsite"
    )
    calendar = Calendar([freeze, prod_only, team_only])
    for scope in (PROD, BETA, OTHER_TEAM_PROD):
        assert calendar.gate_state(scope, utc("2026-05-01T12:00")).status is GateStatus.BLOCKED
    assert calendar.gate_state(PROD, utc("2026-06-01T12:00")).status is GateStatus.BLOCKED
    assert calendar.gate_state(BETA, utc("2026-06-01T12:00")).status is GateStatus.OPEN
    assert calendar.gate_state(OTHER_TEAM_PROD, utc("2026-07-01T12:00")).status is GateStatus.OPEN
    assert calendar.gate_state(BETA, utc("2026-07-01T12:00")).status is GateStatus.BLOCKED
    assert calendar.gate_state(BETA, utc("2026-05-15T00:00")).next_transition == utc(
        "2026-07-01T00:00"
    )
    assert calendar.gate_state(PROD, utc("2026-05-15T00:00")).next_transition == utc(
        "2026-06-01T00:00"
    )


def test_every_blocking_window_is_reported_broadest_first_and_the_gate_opens_after_the_chain():
    windows = [
        BlockWindow(
            "stage", PROD, OneOff(utc("2026-05-01T10:00"), utc("2026-05-01T14:00")), "migration"
        ),
        BlockWindow(
            "org", ORG, OneOff(utc("2026-05-01T08:00"), utc("2026-05-01T12:00")), "all hands"
        ),
        # Back to back with "stage", and overlapping a later one: the gate stays shut through all.
        BlockWindow(
            "adjacent",
            SERVICE,
            OneOff(utc("2026-05-01T14:00"), utc("2026-05-01T16:00")),
            "load test",
        ),
        BlockWindow(
            "overlap", TEAM, OneOff(utc("2026-05-01T15:00"), utc("2026-05-01T18:30")), "offsite"
        ),
        BlockWindow(
            "elsewhere",
            OTHER_TEAM_PROD,
            OneOff(utc("2026-05-01T18:30"), utc("2026-05-01T20:00")),
            "not ours",
        ),
    ]
    result = state(windows, "2026-05-01T11:00")
    assert result.status is GateStatus.BLOCKED
    assert [(b.window_id, b.reason) for b in result.blockers] == [
        ("org", "all hands"),
        ("stage", "migration"),
    ]
    assert result.next_transition == utc("2026-05-01T18:30")
    assert state(windows, "2026-05-01T18:30").status is GateStatus.OPEN


def test_recurring_windows_chain_with_holidays_and_freezes():
    windows = [
        weekend("Europe/Berlin"),
        BlockWindow(
            "freeze",
            SERVICE,
            Freeze(datetime(2026, 4, 30, 9), datetime(2026, 5, 1, 18), "Europe/Berlin"),
            "incident",
        ),
        BlockWindow("de", TEAM, Holidays("DE", None, "Europe/Berlin"), "holiday"),
    ]
    # Thursday 30 April 09:00 freeze → 1 May (holiday) → Friday 15:00 weekend → Monday 09:00.
    result = state(windows, "2026-04-30T10:00")
    assert [b.window_id for b in result.blockers] == ["freeze"]
    assert result.next_transition == utc("2026-05-04T07:00")


def test_open_gate_reports_when_the_next_block_starts_and_none_when_nothing_is_ahead():
    one = BlockWindow("once", PROD, OneOff(utc("2026-05-01T00:00"), utc("2026-05-02T00:00")))
    assert state([one], "2026-04-01T00:00").next_transition == utc("2026-05-01T00:00")
    assert state([one], "2026-06-01T00:00").next_transition is None
    assert state([], "2026-06-01T00:00").status is GateStatus.OPEN


def test_a_block_longer_than_the_horizon_has_no_known_opening():
    forever = BlockWindow("long", ORG, OneOff(utc("2026-01-01T00:00"), utc("2030-01-01T00:00")))
    result = gate_state([forever], PROD, utc("2026-02-01T00:00"), horizon=timedelta(days=30))
    assert result.status is GateStatus.BLOCKED
    assert result.next_transition is None


def test_count_and_until_end_a_series_and_exdates_skip_occurrences():
    count = BlockWindow(
        "count",
        ORG,
        Recurring("FREQ=WEEKLY;COUNT=2", datetime(2026, 5, 4, 9), timedelta(hours=1), "UTC"),
    )
    assert state([count], "2026-05-11T09:30").status is GateStatus.BLOCKED
    assert state([count], "2026-05-18T09:30").status is GateStatus.OPEN
    assert state([count], "2026-05-12T00:00").next_transition is None
    until_utc = BlockWindow(
        "u",
        ORG,
        Recurring(
            "FREQ=DAILY;UNTIL=20260503T065959Z",
            datetime(2026, 5, 1, 9),
            timedelta(hours=1),
            "Europe/Berlin",
        ),
    )
    assert state([until_utc], "2026-05-02T07:30").status is GateStatus.BLOCKED
    assert state([until_utc], "2026-05-03T07:30").status is GateStatus.OPEN  # 09:00 CEST > UNTIL
    floating = BlockWindow(
        "f",
        ORG,
        Recurring(
            "FREQ=DAILY;UNTIL=20260503T090000",
            datetime(2026, 5, 1, 9),
            timedelta(hours=1),
            "Europe/Berlin",
        ),
    )
    assert state([floating], "2026-05-03T07:30").status is GateStatus.BLOCKED
    assert state([floating], "2026-05-04T07:30").status is GateStatus.OPEN
    skipped = BlockWindow(
        "x",
        ORG,
        Recurring(
            "FREQ=DAILY",
            datetime(2026, 5, 1, 9),
            timedelta(hours=1),
            "UTC",
            (datetime(2026, 5, 2, 9),),
        ),
    )
    assert state([skipped], "2026-05-02T09:30").status is GateStatus.OPEN
    assert state([skipped], "2026-05-01T23:00").next_transition == utc("2026-05-03T09:00")


def test_an_unbounded_rule_from_long_ago_answers_for_the_far_future():
    window = BlockWindow(
        "w",
        ORG,
        Recurring(
            "RRULE:FREQ=WEEKLY;BYDAY=MO",
            datetime(2000, 1, 3, 9),
            timedelta(hours=1),
            "Europe/Berlin",
        ),
    )
    assert state([window], "2040-01-02T08:30").status is GateStatus.BLOCKED  # Monday 09:30 CET
    assert state([window], "2040-01-02T09:30").next_transition == utc("2040-01-09T08:00")


def test_a_freeze_expires_by_itself():
    freeze = BlockWindow(
        "f",
        SERVICE,
        Freeze(datetime(2026, 5, 5, 12), datetime(2026, 5, 7, 18), "Europe/Berlin"),
        "until Thursday 18:00",
    )
    assert not expired(freeze, utc("2026-05-07T15:59"))
    assert state([freeze], "2026-05-07T15:59").status is GateStatus.BLOCKED
    assert expired(freeze, utc("2026-05-07T16:00"))
    assert state([freeze], "2026-05-07T16:00").status is GateStatus.OPEN
    assert not expired(weekend("UTC"), utc("2030-01-01T00:00"))


def test_month_view_lists_occurrences_on_the_scope_chain():
    calendar = Calendar(
        [
            weekend("Europe/Berlin"),
            BlockWindow("beta", BETA, OneOff(utc("2026-03-02T00:00"), utc("2026-03-03T00:00"))),
        ]
    )
    march = calendar.occurrences(PROD, utc("2026-03-01T00:00"), utc("2026-04-01T00:00"))
    assert [b.starts_at.date().isoformat() for b in march] == [
        "2026-02-27",
        "2026-03-06",
        "2026-03-13",
        "2026-03-20",
        "2026-03-27",
    ]


def test_a_calendar_view_is_bounded():
    calendar = Calendar([weekend("UTC")])
    for start, end in (
        ("2026-03-01T00:00", "2026-03-01T00:00"),
        ("2026-01-01T00:00", "2028-01-01T00:00"),
    ):
        with pytest.raises(InvalidInput) as info:
            calendar.occurrences(PROD, utc(start), utc(end))
        assert info.value.code == "invalid_range"


def test_answer_serialises_for_json():
    result = state([weekend("UTC")], "2026-03-07T12:00")
    body = result.to_dict()
    assert body["state"] == "BLOCKED"
    assert body["next_transition"] == "2026-03-09T09:00:00+00:00"
    assert body["blockers"][0]["scope"] == "acme"
    assert body["blockers"][0]["kind"] == "recurring"


# --- bad input ------------------------------------------------------------------------------


def refused(window_rule, scope: Scope = ORG) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        Calendar([BlockWindow("bad", scope, window_rule)])
    assert info.value.details["window"] == "bad"
    return info.value


@pytest.mark.parametrize(
    ("rule", "code", "field"),
    [
        (OneOff(datetime(2026, 5, 2), datetime(2026, 5, 1), "UTC"), "end_before_start", "end"),
        (OneOff(datetime(2026, 5, 1), datetime(2026, 5, 1), "UTC"), "end_before_start", "end"),
        (
            OneOff(datetime(2026, 5, 1), datetime(2026, 5, 2), "Mars/Olympus_Mons"),
            "unknown_time_zone",
            "tz",
        ),
        (
            OneOff(datetime(2026, 5, 1), datetime(2026, 5, 2), "../../etc/passwd"),
            "unknown_time_zone",
            "tz",
        ),
        (
            Recurring("FREQ=FORTNIGHTLY", datetime(2026, 1, 1), timedelta(hours=1)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring("FREQ=WEEKLY;BYDAY=XX", datetime(2026, 1, 1), timedelta(hours=1)),
            "malformed_rrule",
            "rrule",
        ),
        (Recurring("", datetime(2026, 1, 1), timedelta(hours=1)), "malformed_rrule", "rrule"),
        (
            Recurring(
                "FREQ=DAILY\nDTSTART:20200101T000000", datetime(2026, 1, 1), timedelta(hours=1)
            ),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring("FREQ=HOURLY", datetime(2026, 1, 1), timedelta(minutes=10)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring("FREQ=DAILY;BYHOUR=1,2,3,4", datetime(2026, 1, 1), timedelta(minutes=10)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring("FREQ=DAILY", datetime(1, 1, 1), timedelta(hours=1)),
            "instant_out_of_range",
            "dtstart",
        ),
        (
            OneOff(datetime(2026, 1, 1), datetime(9999, 12, 31, 23), "Pacific/Kiritimati"),
            "instant_out_of_range",
            "end",
        ),
        (
            Recurring("FREQ=MINUTELY", datetime(2026, 1, 1), timedelta(minutes=1)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring(
                "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", datetime(2026, 1, 1), timedelta(hours=1)
            ),
            "rrule_never_matches",
            "rrule",
        ),
        (
            Recurring(
                "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", datetime(2026, 1, 1), timedelta(hours=1)
            ),
            "rrule_never_matches",
            "rrule",
        ),
        (
            Recurring("FREQ=DAILY;BYWEEKNO=60", datetime(2026, 1, 1), timedelta(hours=1)),
            "malformed_rrule",
            "rrule",
        ),
        (
            # Only Monday 1 January in week 1 would do, and no DTSTART within 10 years has it.
            Recurring(
                "FREQ=WEEKLY;BYDAY=MO;BYMONTHDAY=1;BYMONTH=1;BYWEEKNO=2",
                datetime(2026, 1, 1),
                timedelta(hours=1),
            ),
            "rrule_never_matches",
            "rrule",
        ),
        (
            Recurring("FREQ=MONTHLY;BYMONTH=13", datetime(2026, 1, 1), timedelta(hours=1)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring("FREQ=DAILY;INTERVAL=0", datetime(2026, 1, 1), timedelta(hours=1)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring("FREQ=DAILY;COUNT=0", datetime(2026, 1, 1), timedelta(hours=1)),
            "malformed_rrule",
            "rrule",
        ),
        (
            Recurring(
                "FREQ=DAILY;UNTIL=20250101T000000Z", datetime(2026, 1, 1), timedelta(hours=1)
            ),
            "rrule_never_matches",
            "rrule",
        ),
        (
            Recurring("FREQ=DAILY", datetime(2026, 1, 1), timedelta(0)),
            "end_before_start",
            "duration",
        ),
        (
            Recurring("FREQ=DAILY", datetime(2026, 1, 1), timedelta(hours=-1)),
            "end_before_start",
            "duration",
        ),
        (
            Recurring("FREQ=DAILY", datetime(2026, 1, 1), timedelta(days=400)),
            "invalid_window",
            "duration",
        ),
        (
            Recurring("FREQ=DAILY", datetime(2026, 1, 1), timedelta(hours=1), "Nowhere/Town"),
            "unknown_time_zone",
            "tz",
        ),
        (Holidays("XX"), "unknown_holiday_country", "country"),
        (Holidays("DE", "ZZ"), "unknown_holiday_subdivision", "subdivision"),
        (Holidays("DE", None, "UTC", days_before=-1), "invalid_window", "days_before"),
        (Holidays("DE", None, "UTC", days_after=90), "invalid_window", "days_after"),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(rule, code, field):
    error = refused(rule)
    assert error.code == code
    assert error.details["field"] == field
    assert error.message


def test_a_rule_that_matches_only_every_few_years_is_accepted():
    leap_day = BlockWindow(
        "leap",
        ORG,
        Recurring(
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", datetime(2025, 1, 1, 0), timedelta(days=1), "UTC"
        ),
    )
    assert state([leap_day], "2028-02-29T12:00").status is GateStatus.BLOCKED
    ahead = gate_state([leap_day], PROD, utc("2026-01-01T00:00"), horizon=timedelta(days=1000))
    assert ahead.next_transition == utc("2028-02-29T00:00")


def test_bad_scopes_and_instants_are_refused():
    with pytest.raises(InvalidInput) as info:
        Scope("acme", None, "checkout")
    assert info.value.details["field"] == "team"
    with pytest.raises(InvalidInput):
        Scope("")
    with pytest.raises(InvalidInput) as info:
        gate_state([], PROD, datetime(2026, 1, 1))
    assert info.value.code == "naive_instant"
    for far in (datetime(9999, 12, 31, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)):
        with pytest.raises(InvalidInput) as info:
            gate_state([weekend("UTC")], PROD, far)
        assert info.value.code == "instant_out_of_range"
    with pytest.raises(InvalidInput) as info:
        Calendar([weekend("UTC"), weekend("UTC")])
    assert info.value.code == "duplicate_window"


# --- the answer agrees with a brute-force walk over the occurrences --------------------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "Australia/Lord_Howe",
]
RULES = [
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=FR",
    "FREQ=WEEKLY;BYDAY=SA,SU",
    "FREQ=MONTHLY;BYDAY=-1SU",
    "FREQ=DAILY;BYHOUR=9,17;INTERVAL=2",
]


@st.composite
def windows(draw):
    found = []
    for i in range(draw(st.integers(1, 4))):
        tz = draw(st.sampled_from(ZONES))
        scope = draw(st.sampled_from([ORG, TEAM, SERVICE, PROD, BETA]))
        if draw(st.booleans()):
            start = datetime(2026, 1, 1) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 365)))
            rule = OneOff(start, start + timedelta(minutes=draw(st.integers(1, 60 * 24 * 10))), tz)
        else:
            start = datetime(2025, 12, 1) + timedelta(
                minutes=15 * draw(st.integers(0, 4 * 24 * 60))
            )
            rule = Recurring(
                draw(st.sampled_from(RULES)),
                start,
                timedelta(minutes=15 * draw(st.integers(1, 4 * 24 * 4))),
                tz,
            )
        found.append(BlockWindow(f"w{i}", scope, rule))
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows(), st.integers(0, 60 * 24 * 365))
def test_gate_agrees_with_the_occurrences_and_its_next_transition_is_exact(found, minutes):
    calendar = Calendar(found)
    at = utc("2026-01-15T00:00") + timedelta(minutes=minutes)
    result = calendar.gate_state(PROD, at, horizon=timedelta(days=60))
    covering = [
        b
        for b in calendar.occurrences(PROD, at - timedelta(days=11), at + timedelta(seconds=1))
        if b.starts_at <= at < b.ends_at
    ]
    assert result.status is (GateStatus.BLOCKED if covering else GateStatus.OPEN)
    assert sorted((b.window_id, b.starts_at) for b in result.blockers) == sorted(
        (b.window_id, b.starts_at) for b in covering
    )
    if result.next_transition is None:
        return
    t = result.next_transition
    assert t > at
    flipped = GateStatus.OPEN if result.status is GateStatus.BLOCKED else GateStatus.BLOCKED
    assert calendar.gate_state(PROD, t).status is flipped
    assert calendar.gate_state(PROD, t - timedelta(microseconds=1)).status is result.status
    if result.status is GateStatus.OPEN:
        starts = [
            b.starts_at
            for b in calendar.occurrences(PROD, at, t)
            if b.starts_at < b.ends_at and b.starts_at > at
        ]
        assert not [s for s in starts if s < t]


def test_an_occurrence_swallowed_by_the_spring_forward_gap_is_no_transition():
    # 02:30-03:15 New York: on 2026-03-08 it starts at 03:30 EDT and ends at 03:15 EDT, so
    # it does not exist that night; the next block is the following night's.
    window = BlockWindow(
        "w",
        ORG,
        Recurring(
            "FREQ=DAILY", datetime(2026, 3, 1, 2, 30), timedelta(minutes=45), "America/New_York"
        ),
    )
    assert state([window], "2026-03-08T07:10").status is GateStatus.OPEN
    assert state([window], "2026-03-08T05:00").next_transition == utc("2026-03-09T06:30")


RRULE_PARTS = [
    "FREQ=DAILY",
    "FREQ=WEEKLY",
    "FREQ=MONTHLY",
    "FREQ=YEARLY",
    "FREQ=HOURLY",
    "FREQ=X",
    "BYDAY=MO",
    "BYDAY=-1FR",
    "BYDAY=+5SU",
    "BYMONTHDAY=31",
    "BYMONTHDAY=-1",
    "BYMONTHDAY=0",
    "BYMONTH=2",
    "BYMONTH=13",
    "BYHOUR=25",
    "BYHOUR=3",
    "BYSETPOS=1",
    "BYSETPOS=0",
    "INTERVAL=0",
    "INTERVAL=1000000",
    "COUNT=0",
    "COUNT=1",
    "COUNT=-5",
    "UNTIL=20260101T000000Z",
    "UNTIL=20260101",
    "UNTIL=99991231T000000Z",
    "UNTIL=garbage",
    "WKST=SU",
    "BYWEEKNO=53",
    "BYWEEKNO=60",
    "BYYEARDAY=366",
    "BYMINUTE=61",
    "BYEASTER=0",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(RRULE_PARTS), max_size=4),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.timedeltas(min_value=timedelta(seconds=-10), max_value=timedelta(days=400)),
    st.sampled_from(["UTC", "Europe/Berlin", "Pacific/Kiritimati", "America/St_Johns"]),
    st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29)),
)
def test_any_rule_compiles_or_is_refused_by_name_never_crashes(parts, dtstart, duration, tz, at):
    window = BlockWindow("w", ORG, Recurring(";".join(parts), dtstart, duration, tz))
    try:
        calendar = Calendar([window])
        calendar.gate_state(PROD, at.replace(tzinfo=UTC))
    except InvalidInput as refused:
        assert refused.details["field"] in {"rrule", "dtstart", "duration", "at"}
