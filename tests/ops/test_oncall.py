"""On-call schedules (the domain: no database, no clock): golden DST days, layers,
restrictions, overrides, roster changes, coverage gaps, fairness, iCalendar, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mechanisms.ops.oncall import (
    WEEKDAYS,
    DailyWindow,
    Interval,
    Layer,
    Override,
    RosterChange,
    Rotation,
    Schedule,
    Source,
    WeeklyWindow,
    business_hours,
    fairness,
    gaps,
    local_to_utc,
    shifts,
    swap,
    to_ical,
    weekdays_only,
    who_is_on_call,
    zone,
)

H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily(at: str = "09:00") -> Rotation:
    return Rotation(type="daily", handoff_time=at)


def schedule(tz: str, *layers: Layer, overrides: tuple[Override, ...] = ()) -> Schedule:
    return Schedule(name="primary", time_zone=tz, layers=layers, overrides=overrides)


def layer(participants=("alice", "bob"), rotation=None, start=utc(2026, 1, 1), **kw) -> Layer:
    return Layer(participants=participants, rotation=rotation or daily(), start=start, **kw)


def boundaries(s: Schedule, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    return [(x.start, x.person) for x in shifts(s, start, end)]


# --- wall clock → instant: the DST rules ----------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "wall", "expected"),
    [
        # Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
        ("Europe/Berlin", datetime(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 0)),  # gap → 03:00
        ("Europe/Berlin", datetime(2026, 3, 29, 2, 0), utc(2026, 3, 29, 1, 0)),
        ("Europe/Berlin", datetime(2026, 3, 29, 3, 0), utc(2026, 3, 29, 1, 0)),
        ("Europe/Berlin", datetime(2026, 3, 29, 1, 59), utc(2026, 3, 29, 0, 59)),
        ("Europe/Berlin", datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30)),  # 1st of 2
        ("Europe/Berlin", datetime(2026, 10, 25, 3, 0), utc(2026, 10, 25, 2, 0)),
        # America/New_York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
        ("America/New_York", datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 0)),  # gap → 03:00
        ("America/New_York", datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30)),  # 1st
        ("America/New_York", datetime(2026, 11, 1, 2, 0), utc(2026, 11, 1, 7, 0)),
        # Lord Howe Island moves its clocks by half an hour.
        ("Australia/Lord_Howe", datetime(2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 30)),
    ],
)
def test_wall_clock_resolves_gaps_to_the_jump_and_repeats_to_the_first(tz, wall, expected):
    assert local_to_utc(wall, zone(tz)) == expected


# --- golden DST days ------------------------------------------------------------------------


def test_berlin_daily_0900_handoff_stays_at_0900_local_across_both_changes():
    s = schedule("Europe/Berlin", layer(start=utc(2026, 3, 27, 8)))
    got = shifts(s, utc(2026, 3, 27, 8), utc(2026, 3, 31, 7))
    assert [(x.start, x.end, x.person) for x in got] == [
        (utc(2026, 3, 27, 8), utc(2026, 3, 28, 8), "alice"),  # 09:00 CET
        (utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), "bob"),  # 23 hours: clocks jump forward
        (utc(2026, 3, 29, 7), utc(2026, 3, 30, 7), "alice"),  # 09:00 CEST
        (utc(2026, 3, 30, 7), utc(2026, 3, 31, 7), "bob"),
    ]
    assert got[1].duration == 23 * H
    autumn = schedule("Europe/Berlin", layer(start=utc(2026, 10, 24, 7)))
    got = shifts(autumn, utc(2026, 10, 24, 7), utc(2026, 10, 26, 8))
    assert [(x.start, x.end) for x in got] == [
        (utc(2026, 10, 24, 7), utc(2026, 10, 25, 8)),  # 25 hours: clocks fall back
        (utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)),
    ]
    assert got[0].duration == 25 * H


def test_new_york_daily_0900_handoff_across_both_changes():
    s = schedule("America/New_York", layer(start=utc(2026, 3, 7, 14)))
    assert boundaries(s, utc(2026, 3, 7, 14), utc(2026, 3, 10, 13)) == [
        (utc(2026, 3, 7, 14), "alice"),  # 09:00 EST
        (utc(2026, 3, 8, 13), "bob"),  # 09:00 EDT, 23 hours later
        (utc(2026, 3, 9, 13), "alice"),
    ]
    autumn = schedule("America/New_York", layer(start=utc(2026, 10, 31, 13)))
    got = shifts(autumn, utc(2026, 10, 31, 13), utc(2026, 11, 2, 14))
    assert [(x.start, x.end) for x in got] == [
        (utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)),  # 25 hours
        (utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)),
    ]


def test_handoff_at_a_nonexistent_time_happens_when_the_clocks_jump():
    berlin = schedule("Europe/Berlin", layer(rotation=daily("02:30")))
    assert boundaries(berlin, utc(2026, 3, 28), utc(2026, 3, 30, 1)) == [
        (utc(2026, 3, 28), "alice"),
        (utc(2026, 3, 28, 1, 30), "bob"),  # 02:30 CET
        (utc(2026, 3, 29, 1, 0), "alice"),  # 02:30 does not exist: 03:00 CEST
        (utc(2026, 3, 30, 0, 30), "bob"),  # 02:30 CEST
    ]
    new_york = schedule("America/New_York", layer(rotation=daily("02:30")))
    assert [x.start for x in shifts(new_york, utc(2026, 3, 7), utc(2026, 3, 9, 7))] == [
        utc(2026, 3, 7),
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 0),  # 03:00 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_handoff_at_an_ambiguous_time_takes_the_first_occurrence():
    berlin = schedule("Europe/Berlin", layer(rotation=daily("02:30")))
    got = shifts(berlin, utc(2026, 10, 24, 0, 30), utc(2026, 10, 26, 1, 30))
    assert [(x.start, x.end) for x in got] == [
        (utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30)),  # to 02:30 CEST, the first
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),  # 25 hours, to 02:30 CET
    ]
    new_york = schedule("America/New_York", layer(rotation=daily("01:30")))
    got = shifts(new_york, utc(2026, 10, 31, 5, 30), utc(2026, 11, 2, 6, 30))
    assert [(x.start, x.end) for x in got] == [
        (utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30)),  # 01:30 EDT
        (utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),  # 01:30 EST next day
    ]


def test_weekly_handoff_keeps_weekday_and_wall_clock_time():
    rotation = Rotation(type="weekly", handoff_weekday="mon", handoff_time="09:00")
    s = schedule("Europe/Berlin", layer(rotation=rotation, start=utc(2026, 3, 16, 8)))
    got = shifts(s, utc(2026, 3, 16, 8), utc(2026, 4, 6, 7))
    assert [(x.start, x.person) for x in got] == [
        (utc(2026, 3, 16, 8), "alice"),
        (utc(2026, 3, 23, 8), "bob"),
        (utc(2026, 3, 30, 7), "alice"),  # Monday 09:00 CEST
    ]
    assert got[1].duration == 167 * H


def test_custom_hour_rotations_count_elapsed_hours():
    rotation = Rotation(type="custom", length=12, unit="hours", handoff_time="09:00")
    s = schedule("Europe/Berlin", layer(rotation=rotation, start=utc(2026, 3, 28, 8)))
    assert boundaries(s, utc(2026, 3, 28, 8), utc(2026, 3, 29, 20)) == [
        (utc(2026, 3, 28, 8), "alice"),  # 09:00 CET
        (utc(2026, 3, 28, 20), "bob"),
        (utc(2026, 3, 29, 8), "alice"),  # 12 real hours: 10:00 CEST
    ]
    days = Rotation(type="custom", length=2, unit="days", handoff_time="09:00")
    s = schedule("Europe/Berlin", layer(rotation=days, start=utc(2026, 3, 28, 8)))
    assert [x.start for x in shifts(s, utc(2026, 3, 28, 8), utc(2026, 4, 2))] == [
        utc(2026, 3, 28, 8),
        utc(2026, 3, 30, 7),  # 09:00 CEST two calendar days later (47 hours)
        utc(2026, 4, 1, 7),
    ]


def test_first_turn_is_the_one_containing_the_start():
    # Starting at 15:00 on a 09:00 rotation: alice until tomorrow 09:00, then bob.
    s = schedule("UTC", layer(participants=("alice", "bob", "carol"), start=utc(2026, 1, 5, 15)))
    assert boundaries(s, utc(2026, 1, 5), utc(2026, 1, 8)) == [
        (utc(2026, 1, 5, 15), "alice"),
        (utc(2026, 1, 6, 9), "bob"),
        (utc(2026, 1, 7, 9), "carol"),
    ]
    assert who_is_on_call(s, utc(2026, 1, 5, 14)).person is None


# --- restrictions ---------------------------------------------------------------------------


def test_business_hours_follow_local_time_across_a_change():
    s = schedule("Europe/Berlin", layer(participants=("alice",), restrictions=(business_hours(),)))
    got = shifts(s, utc(2026, 3, 27), utc(2026, 3, 31))
    assert [(x.start, x.end) for x in got] == [
        (utc(2026, 3, 27, 8), utc(2026, 3, 27, 16)),  # Friday 09–17 CET
        (utc(2026, 3, 30, 7), utc(2026, 3, 30, 15)),  # Monday 09–17 CEST; no weekend
    ]


def test_overnight_and_weekly_windows():
    night = DailyWindow(start="22:00", end="06:00")
    s = schedule("Europe/Berlin", layer(participants=("owl",), restrictions=(night,)))
    got = shifts(s, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert [(x.start, x.end) for x in got] == [(utc(2026, 3, 28, 21), utc(2026, 3, 29, 4))]
    assert got[0].duration == 7 * H  # the short night
    weekend = WeeklyWindow(
        start_weekday="fri", start_time="17:00", end_weekday="mon", end_time="09:00"
    )
    s = schedule("America/New_York", layer(participants=("wknd",), restrictions=(weekend,)))
    got = shifts(s, utc(2026, 3, 2), utc(2026, 3, 16))
    assert [(x.start, x.end) for x in got] == [
        (utc(2026, 3, 2), utc(2026, 3, 2, 14)),  # the tail of the weekend before
        (utc(2026, 3, 6, 22), utc(2026, 3, 9, 13)),  # Fri 17:00 EST → Mon 09:00 EDT
        (utc(2026, 3, 13, 21), utc(2026, 3, 16)),
    ]
    s = schedule("UTC", layer(participants=("wd",), restrictions=(weekdays_only(),)))
    assert [(x.start, x.end) for x in shifts(s, utc(2026, 1, 3), utc(2026, 1, 12))] == [
        (utc(2026, 1, 5), utc(2026, 1, 10))
    ]


def test_a_window_inside_the_spring_forward_gap_is_empty():
    gap_hour = DailyWindow(start="02:00", end="03:00")
    s = schedule("Europe/Berlin", layer(participants=("x",), restrictions=(gap_hour,)))
    assert [x.start for x in shifts(s, utc(2026, 3, 28), utc(2026, 3, 31))] == [
        utc(2026, 3, 28, 1),
        utc(2026, 3, 30, 0),
    ]


# --- layers, overrides, swaps, roster changes -----------------------------------------------


def test_higher_layer_wins_where_it_has_someone():
    base = layer(name="base", participants=("alice", "bob"))
    day = layer(name="day", participants=("carol",), restrictions=(business_hours(),))
    s = schedule("UTC", base, day)
    assert who_is_on_call(s, utc(2026, 1, 5, 10)).person == "carol"
    assert who_is_on_call(s, utc(2026, 1, 5, 10)).source == Source("layer", 1, "day")
    assert who_is_on_call(s, utc(2026, 1, 5, 20)).source == Source("layer", 0, "base")
    assert [(x.start, x.person) for x in shifts(s, utc(2026, 1, 5, 9), utc(2026, 1, 6, 9))] == [
        (utc(2026, 1, 5, 9), "carol"),
        (utc(2026, 1, 5, 17), "bob"),  # turn 5 (turn 0, alice's, began Dec 31 09:00)
    ]


def test_override_covers_its_window_and_nothing_else():
    cover = Override(id="o1", start=utc(2026, 1, 5, 12), end=utc(2026, 1, 5, 15), user="dave")
    s = schedule("UTC", layer(), overrides=(cover,))
    got = shifts(s, utc(2026, 1, 5, 9), utc(2026, 1, 6, 9))
    assert [(x.start, x.end, x.person, x.source.kind) for x in got] == [
        (utc(2026, 1, 5, 9), utc(2026, 1, 5, 12), "bob", "layer"),
        (utc(2026, 1, 5, 12), utc(2026, 1, 5, 15), "dave", "override"),
        (utc(2026, 1, 5, 15), utc(2026, 1, 6, 9), "bob", "layer"),
    ]
    assert who_is_on_call(s, utc(2026, 1, 5, 14, 59)) == who_is_on_call(s, utc(2026, 1, 5, 12))
    assert who_is_on_call(s, utc(2026, 1, 5, 15)).person == "bob"


def test_a_replace_override_only_takes_the_named_persons_time():
    s = schedule(
        "UTC",
        layer(),
        overrides=(
            Override(start=utc(2026, 1, 5), end=utc(2026, 1, 7), user="dave", replaces="bob"),
        ),
    )
    # Jan 4 09:00 alice, Jan 5 09:00 bob, Jan 6 09:00 alice.
    assert [(x.start, x.person) for x in shifts(s, utc(2026, 1, 5), utc(2026, 1, 7))] == [
        (utc(2026, 1, 5), "alice"),
        (utc(2026, 1, 5, 9), "dave"),
        (utc(2026, 1, 6, 9), "alice"),
    ]


def test_swap_exchanges_two_shifts_and_leaves_the_rest():
    s = schedule("Europe/Berlin", layer(participants=("alice", "bob", "carol")))
    before = shifts(s, utc(2026, 1, 5, 8), utc(2026, 1, 8, 8))
    alice_day, bob_day = before[1], before[2]
    assert (before[0].person, alice_day.person, bob_day.person) == ("carol", "alice", "bob")
    swapped = s.with_overrides(*swap(alice_day, bob_day, id_prefix="swap-7"))
    after = shifts(swapped, utc(2026, 1, 5, 8), utc(2026, 1, 8, 8))
    assert [(x.start, x.end, x.person) for x in after] == [
        (before[0].start, before[0].end, "carol"),
        (alice_day.start, alice_day.end, "bob"),
        (bob_day.start, bob_day.end, "alice"),
    ]
    assert after[1].source == Source("override", 0, "swap-7-1")
    with pytest.raises(ValueError, match="second"):
        swap(alice_day, alice_day)


def test_roster_change_takes_effect_without_rewriting_history():
    plain = layer(participants=("alice", "bob", "carol"))
    changed = layer(
        participants=("alice", "bob", "carol"),
        roster_changes=(RosterChange(effective_at=utc(2026, 1, 10, 9), participants=("x", "y")),),
    )
    start, end = utc(2026, 1, 1), utc(2026, 1, 14)
    old = shifts(schedule("UTC", plain), start, end)
    new = shifts(schedule("UTC", changed), start, end)
    assert [x for x in new if x.end <= utc(2026, 1, 10, 9)] == [
        x for x in old if x.end <= utc(2026, 1, 10, 9)
    ]
    assert [(x.start, x.person) for x in new if x.start >= utc(2026, 1, 10, 9)] == [
        (utc(2026, 1, 10, 9), "x"),
        (utc(2026, 1, 11, 9), "y"),
        (utc(2026, 1, 12, 9), "x"),
        (utc(2026, 1, 13, 9), "y"),
    ]


def test_adjacent_turns_of_the_same_person_merge():
    s = schedule("UTC", layer(participants=("solo",)))
    assert [(x.start, x.end) for x in shifts(s, utc(2026, 2, 1), utc(2026, 3, 1))] == [
        (utc(2026, 2, 1), utc(2026, 3, 1))
    ]


def test_layer_end_lets_lower_layers_show_through():
    top = layer(participants=("temp",), end=utc(2026, 1, 3))
    s = schedule("UTC", layer(participants=("base",)), top)
    assert [(x.start, x.person) for x in shifts(s, utc(2026, 1, 1), utc(2026, 1, 5))] == [
        (utc(2026, 1, 1), "temp"),
        (utc(2026, 1, 3), "base"),
    ]


# --- validation -----------------------------------------------------------------------------


def _loc(exc: ValidationError) -> tuple:
    return exc.errors()[0]["loc"]


@pytest.mark.parametrize(
    ("build", "loc"),
    [
        (lambda: schedule("Mars/Olympus", layer()), ("time_zone",)),
        (lambda: schedule("", layer()), ("time_zone",)),
        (lambda: Schedule(name="p", time_zone="UTC", layers=()), ("layers",)),
        (lambda: layer(participants=()), ("participants",)),
        (lambda: layer(participants=("has space",)), ("participants", 0)),
        (lambda: Rotation(type="daily", length=0), ("length",)),
        (lambda: Rotation(type="custom", length=0, unit="hours"), ("length",)),
        (lambda: Rotation(type="custom", length=3), ("unit",)),
        (lambda: Rotation(type="weekly"), ("handoff_weekday",)),
        (lambda: Rotation(type="daily", handoff_weekday="mon"), ("handoff_weekday",)),
        (lambda: layer(rotation={"type": "daily", "length": 0}), ("rotation", "length")),
        (lambda: layer(end=utc(2025, 12, 31)), ("end",)),
        (lambda: layer(start=datetime(2026, 1, 1)), ("start",)),
        (lambda: layer(start=utc(1800, 1, 1)), ("start",)),
        (lambda: layer(extra=1), ("extra",)),
        (
            lambda: layer(
                roster_changes=(
                    RosterChange(effective_at=utc(2026, 2, 1), participants=("x",)),
                    RosterChange(effective_at=utc(2026, 1, 15), participants=("y",)),
                )
            ),
            ("roster_changes",),
        ),
        (
            lambda: layer(
                roster_changes=(RosterChange(effective_at=utc(2025, 6, 1), participants=("x",)),)
            ),
            ("roster_changes",),
        ),
        (lambda: RosterChange(effective_at=utc(2026, 2, 1), participants=()), ("participants",)),
        (lambda: DailyWindow(start="09:00", end="09:00"), ("end",)),
        (
            lambda: layer(restrictions=({"kind": "daily", "start": "09:00", "end": "09:00"},)),
            ("restrictions", 0, "daily", "end"),
        ),
        (
            lambda: WeeklyWindow(
                start_weekday="mon", start_time="09:00", end_weekday="mon", end_time="09:00"
            ),
            ("end_time",),
        ),
        (lambda: DailyWindow(start="09:00", end="17:00", weekdays=()), ("weekdays",)),
        (lambda: Override(start=utc(2026, 1, 2), end=utc(2026, 1, 2), user="x"), ("end",)),
        (lambda: Override(start=utc(2026, 1, 2), end=utc(2026, 1, 1), user="x"), ("end",)),
    ],
)
def test_bad_input_is_rejected_naming_the_field(build, loc):
    with pytest.raises(ValidationError) as info:
        build()
    assert _loc(info.value) == loc


def test_bad_arguments_name_the_parameter():
    s = schedule("UTC", layer())
    with pytest.raises(ValueError, match="^at: must be timezone-aware"):
        who_is_on_call(s, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="^at: must be between 1900 and 2999"):
        who_is_on_call(s, datetime.max.replace(tzinfo=UTC))
    with pytest.raises(ValueError, match="^end: must be after start"):
        shifts(s, utc(2026, 1, 2), utc(2026, 1, 1))
    with pytest.raises(ValueError, match="time_zone"):
        gaps([layer()], utc(2026, 1, 1), utc(2026, 1, 2))
    with pytest.raises(ValueError, match="night_end"):
        fairness(s, utc(2026, 1, 1), utc(2026, 1, 2), night_start=time(1), night_end=time(1))
    with pytest.raises(ValueError, match="dtstamp"):
        to_ical(s, utc(2026, 1, 1), utc(2026, 1, 2), dtstamp=datetime(2026, 1, 1))


# --- coverage: follow the sun ---------------------------------------------------------------


def team(tz: str, *people: str) -> Schedule:
    office = business_hours(time(9), time(17), WEEKDAYS)
    return Schedule(
        name=tz,
        time_zone=tz,
        layers=(layer(participants=people, restrictions=(office,), start=utc(2025, 12, 1)),),
    )


FOLLOW_THE_SUN = [
    team("America/Los_Angeles", "us1", "us2"),  # 17:00–01:00 UTC in winter (PST)
    team("Asia/Singapore", "ap1", "ap2"),  # 01:00–09:00 UTC all year (no DST)
    team("Europe/Dublin", "eu1", "eu2"),  # 09:00–17:00 UTC in winter (GMT)
]


def test_follow_the_sun_has_no_gap_in_winter():
    assert gaps(FOLLOW_THE_SUN, utc(2026, 1, 5), utc(2026, 1, 12)) == []


def test_follow_the_sun_gap_appears_when_the_us_springs_forward_before_europe():
    # US clocks change on 8 March, European ones on 29 March 2026. From the first US
    # summer-time evening the US team stops at 00:00 UTC and Singapore starts at 01:00.
    got = gaps(FOLLOW_THE_SUN, utc(2026, 3, 6), utc(2026, 3, 12))
    assert got == [Interval(utc(2026, 3, d, 0), utc(2026, 3, d, 1)) for d in (9, 10, 11)]
    # Europe's change moves the Dublin team an hour earlier too: that closes no gap (it
    # overlaps Singapore 08:00–09:00 UTC) and opens none (it now hands to the US at 16:00).
    got = gaps(FOLLOW_THE_SUN, utc(2026, 3, 28), utc(2026, 3, 31))
    assert got == [Interval(utc(2026, 3, d, 0), utc(2026, 3, d, 1)) for d in (28, 29, 30)]
    # In the three weeks between, the US and Dublin overlap 16:00–17:00 UTC.
    assert who_is_on_call(FOLLOW_THE_SUN[0], utc(2026, 3, 10, 16, 30)).person is not None
    assert who_is_on_call(FOLLOW_THE_SUN[2], utc(2026, 3, 10, 16, 30)).person is not None
    assert who_is_on_call(FOLLOW_THE_SUN[2], utc(2026, 3, 30, 16, 30)).person is None


def test_follow_the_sun_gap_disappears_when_the_us_falls_back():
    got = gaps(FOLLOW_THE_SUN, utc(2026, 10, 30), utc(2026, 11, 4))
    # Sat 31 Oct 17:00 PDT = 1 Nov 00:00 UTC ends the last US summer-time evening.
    assert got == [
        Interval(utc(2026, 10, 30, 0), utc(2026, 10, 30, 1)),
        Interval(utc(2026, 10, 31, 0), utc(2026, 10, 31, 1)),
        Interval(utc(2026, 11, 1, 0), utc(2026, 11, 1, 1)),
    ]


def test_standalone_layers_with_their_own_zone_can_be_checked():
    us = layer(participants=("us",), restrictions=(business_hours(),), time_zone="America/New_York")
    got = gaps(us, utc(2026, 1, 5, 14), utc(2026, 1, 6, 14))
    assert got == [Interval(utc(2026, 1, 5, 22), utc(2026, 1, 6, 14))]


# --- fairness -------------------------------------------------------------------------------


def test_fairness_counts_hours_nights_weekends_and_shifts():
    weekly = Rotation(type="weekly", handoff_weekday="mon", handoff_time="09:00")
    s = schedule(
        "Europe/Berlin",
        layer(participants=("alice", "bob", "idle"), rotation=weekly, start=utc(2026, 1, 5, 8)),
        overrides=(Override(start=utc(2026, 1, 6, 21), end=utc(2026, 1, 7, 5), user="carol"),),
    )
    report = {r.person: r for r in fairness(s, utc(2026, 1, 5, 8), utc(2026, 1, 19, 8))}
    assert set(report) == {"alice", "bob", "carol", "idle"}
    alice, bob, carol = report["alice"], report["bob"], report["carol"]
    assert (carol.hours, carol.night_hours, carol.weekend_hours, carol.shifts) == (8, 8, 0, 1)
    assert alice.hours == 168 - 8 and alice.shifts == 2  # split around carol's night
    assert alice.night_hours == 7 * 8 - 8  # 22:00–06:00 Berlin, minus carol's night
    assert alice.weekend_hours == 48
    assert (bob.hours, bob.night_hours, bob.weekend_hours, bob.shifts) == (168, 56, 48, 1)
    assert (report["idle"].hours, report["idle"].shifts) == (0, 0)
    custom = {
        r.person: r
        for r in fairness(
            s,
            utc(2026, 1, 12, 8),
            utc(2026, 1, 19, 8),
            night_start=time(0),
            night_end=time(8),
            weekend=("sun",),
        )
    }
    assert (custom["bob"].night_hours, custom["bob"].weekend_hours) == (56, 24)


def test_fairness_night_on_the_short_night_is_seven_hours():
    s = schedule("Europe/Berlin", layer(participants=("solo",)))
    (solo,) = fairness(s, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert (solo.hours, solo.night_hours, solo.weekend_hours) == (24, 7, 24)


# --- iCalendar ------------------------------------------------------------------------------


def _events(data: bytes) -> list:
    return icalendar.Calendar.from_ical(data).walk("VEVENT")


def test_ical_round_trip_matches_the_final_schedule():
    cover = Override(start=utc(2026, 1, 7, 12), end=utc(2026, 1, 7, 18), user="dave")
    s = schedule("Europe/Berlin", layer(participants=("alice", "bob")), overrides=(cover,))
    start, end = utc(2026, 1, 5, 8), utc(2026, 1, 12, 8)
    stamp = utc(2026, 1, 1, 12)
    data = to_ical(s, start, end, dtstamp=stamp)
    calendar = icalendar.Calendar.from_ical(data)
    assert str(calendar["version"]) == "2.0"
    events = calendar.walk("VEVENT")
    expected = shifts(s, start, end)
    assert [
        (e.decoded("dtstart"), e.decoded("dtend"), str(e["x-mechanisms-person"])) for e in events
    ] == [(x.start, x.end, x.person) for x in expected]
    for event in events:
        assert event.decoded("dtstart").utcoffset() == timedelta(0)
        assert b"Z" in event["dtstart"].to_ical()
        assert event.decoded("dtstamp") == stamp
        assert str(event["summary"]).startswith("On call: ")
    uids = [str(e["uid"]) for e in events]
    assert len(set(uids)) == len(uids)
    # The same shifts exported again over another window keep their UIDs.
    later = _events(to_ical(s, utc(2026, 1, 6, 20), utc(2026, 1, 20), dtstamp=utc(2026, 1, 6)))
    shared = {str(e["uid"]): e.decoded("dtstart") for e in later}
    for event in events[1:]:
        assert shared[str(event["uid"])] == event.decoded("dtstart")


def test_ical_edge_shifts_are_whole_and_per_person_filters():
    s = schedule("UTC", layer(participants=("alice", "bob")))
    events = _events(to_ical(s, utc(2026, 1, 5, 12), utc(2026, 1, 6, 12), dtstamp=utc(2026, 1, 1)))
    assert [(e.decoded("dtstart"), e.decoded("dtend")) for e in events] == [
        (utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)),  # whole, though the window starts at 12:00
        (utc(2026, 1, 6, 9), utc(2026, 1, 7, 9)),
    ]
    mine = _events(
        to_ical(
            [s, schedule("UTC", layer(participants=("bob",)))],
            utc(2026, 1, 1),
            utc(2026, 1, 8),
            dtstamp=utc(2026, 1, 1),
            person="bob",
        )
    )
    assert {str(e["x-mechanisms-person"]) for e in mine} == {"bob"}
    assert len(mine) == 4 + 1  # bob's 4 turns (Jan 1/3/5/7 09:00 …) and the solo schedule
    assert len({str(e["uid"]) for e in mine}) == 5


# --- properties -----------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe", "Asia/Kolkata"]
PEOPLE = ["ann", "ben", "cat", "dan"]
# Near the 2026 DST changes of the zones above.
EPOCHS = [utc(2026, 3, 5), utc(2026, 3, 26), utc(2026, 10, 1), utc(2026, 10, 22), utc(2026, 10, 29)]

wall_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
rotations = st.one_of(
    st.builds(Rotation, type=st.just("daily"), length=st.integers(1, 3), handoff_time=wall_times),
    st.builds(
        Rotation,
        type=st.just("weekly"),
        length=st.integers(1, 2),
        handoff_time=wall_times,
        handoff_weekday=st.sampled_from(WEEKDAYS),
    ),
    st.builds(
        Rotation,
        type=st.just("custom"),
        unit=st.sampled_from(["hours", "days"]),
        length=st.integers(1, 30),
        handoff_time=wall_times,
    ),
)
offsets = st.integers(0, 14 * 24 * 60).map(lambda m: timedelta(minutes=m))
windows = st.builds(
    lambda span, days: DailyWindow(start=span[0], end=span[1], weekdays=tuple(days)),
    st.tuples(wall_times, wall_times).filter(lambda span: span[0] != span[1]),
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
)


@st.composite
def layers(draw, restricted: bool = True) -> Layer:
    epoch = draw(st.sampled_from(EPOCHS))
    start = epoch + draw(offsets)
    restrictions = ()
    if restricted:
        restrictions = tuple(draw(st.lists(windows, max_size=2)))
    participants = tuple(draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4)))
    changes = ()
    if draw(st.booleans()):
        changes = (
            RosterChange(
                effective_at=start + timedelta(minutes=draw(st.integers(1, 10 * 24 * 60))),
                participants=tuple(draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3))),
            ),
        )
    return Layer(
        participants=participants,
        rotation=draw(rotations),
        start=start,
        restrictions=restrictions,
        roster_changes=changes,
    )


@st.composite
def overrides(draw, around: datetime) -> Override:
    start = around + draw(offsets)
    return Override(
        start=start,
        end=start + timedelta(minutes=draw(st.integers(1, 3 * 24 * 60))),
        user=draw(st.sampled_from([*PEOPLE, "sub"])),
        replaces=draw(st.sampled_from([None, None, *PEOPLE])),
    )


@st.composite
def schedules(draw) -> tuple[Schedule, datetime, datetime]:
    tz = draw(st.sampled_from(ZONES))
    ls = tuple(draw(st.lists(layers(), min_size=1, max_size=3)))
    start = min(x.start for x in ls) - timedelta(days=1)
    ovs = tuple(draw(st.lists(overrides(start), max_size=3)))
    return (
        Schedule(name="p", time_zone=tz, layers=ls, overrides=ovs),
        start,
        start + timedelta(days=18),
    )


@settings(max_examples=60)
@given(schedules())
def test_final_schedule_never_overlaps_and_is_merged(case):
    s, start, end = case
    got = shifts(s, start, end)
    for x in got:
        assert start <= x.start < x.end <= end
    for a, b in zip(got, got[1:], strict=False):
        assert a.end <= b.start
        assert not (a.end == b.start and a.person == b.person and a.source == b.source)


@settings(max_examples=60)
@given(st.data(), schedules())
def test_shifts_and_who_is_on_call_agree(data, case):
    s, start, end = case
    got = shifts(s, start, end)
    for _ in range(10):
        at = start + timedelta(
            seconds=data.draw(st.integers(0, int((end - start).total_seconds()) - 1))
        )
        found = [x for x in got if x.start <= at < x.end]
        expected = who_is_on_call(s, at)
        if found:
            assert (found[0].person, found[0].source) == (expected.person, expected.source)
        else:
            assert expected.person is None
    for x in got:  # each shift's own edges, where off-by-one errors live
        assert who_is_on_call(s, x.start).person == x.person
        assert who_is_on_call(s, x.end - timedelta(microseconds=1)).person == x.person


@settings(max_examples=60)
@given(st.sampled_from(ZONES), layers(restricted=False), st.integers(1, 20 * 24))
def test_unrestricted_layer_covers_everything_from_its_start(tz, lay, hours):
    s = Schedule(name="p", time_zone=tz, layers=(lay,))
    assert gaps(s, lay.start, lay.start + timedelta(hours=hours)) == []
    assert gaps(s, lay.start - H, lay.start + H) == [Interval(lay.start - H, lay.start)]


@settings(max_examples=60)
@given(st.data(), schedules())
def test_an_override_wins_inside_its_window(data, case):
    s, start, _ = case
    cover = data.draw(overrides(start)).model_copy(update={"replaces": None, "user": "winner"})
    s = s.with_overrides(cover)
    at = cover.start + (cover.end - cover.start) * data.draw(st.floats(0, 0.999))
    assert who_is_on_call(s, at) == who_is_on_call(s, cover.start)
    assert who_is_on_call(s, at).person == "winner"
    got = shifts(s, cover.start, cover.end)
    assert [(x.start, x.end, x.person) for x in got] == [(cover.start, cover.end, "winner")]


@settings(max_examples=200)
@given(
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
)
def test_wall_clock_resolution_is_exact_or_the_jump(tz_name, wall):
    tz = zone(tz_name)
    got = local_to_utc(wall, tz)
    back = got.astimezone(tz).replace(tzinfo=None)
    if back != wall:  # a nonexistent time: the result is the first moment after the gap
        assert back > wall
        assert (got - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) < wall
    else:  # the earliest instant that shows this wall time
        earlier = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        assert got <= earlier
