"""Escalation policies (the domain: no database, no clock): who is paged when, until an
acknowledgement, and what a worker must send at each tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mechanisms.ops.escalation import (
    Level,
    Policy,
    Target,
    due_between,
    exhausted_at,
    next_escalation_at,
    on_call_lookup,
    targets_at,
)
from mechanisms.ops.oncall import Layer, Rotation, Schedule, business_hours

CREATED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


# alice 11:20–12:20, then bob (an hourly rotation), so the second pass pages bob.
PRIMARY = Schedule(
    name="primary",
    time_zone="UTC",
    layers=(
        Layer(
            participants=("alice", "bob"),
            rotation=Rotation(type="custom", unit="hours", length=1, handoff_time="11:20"),
            start=datetime(2026, 1, 5, 11, 20, tzinfo=UTC),
        ),
    ),
)
DAYTIME = Schedule(
    name="daytime",
    time_zone="UTC",
    layers=(
        Layer(
            participants=("dee",),
            rotation=Rotation(type="daily"),
            start=datetime(2026, 1, 1, tzinfo=UTC),
            restrictions=(business_hours(),),
        ),
    ),
)
LOOKUP = on_call_lookup([PRIMARY, DAYTIME])

POLICY = Policy(
    name="payments",
    levels=(
        Level(targets=(Target(kind="schedule", name="primary"),), timeout_minutes=10),
        Level(
            targets=(Target(kind="user", name="lead"), Target(kind="user", name="manager")),
            timeout_minutes=15,
        ),
    ),
    repeat=1,
)


def sent(state_or_notes) -> list[tuple[datetime, int, int, str | None]]:
    notes = getattr(state_or_notes, "notifications", state_or_notes)
    return [(n.due_at, n.loop, n.level, n.person) for n in notes]


def test_level_zero_is_paged_at_creation():
    state = targets_at(POLICY, CREATED, None, at(5), LOOKUP)
    assert (state.level, state.loop) == (0, 0)
    assert sent(state) == [(CREATED, 0, 0, "alice")]
    assert state.next_escalation_at == at(10)
    assert not state.acknowledged and not state.exhausted


def test_escalates_through_levels_and_repeats_the_policy():
    state = targets_at(POLICY, CREATED, None, at(30), LOOKUP)
    assert sent(state) == [
        (at(0), 0, 0, "alice"),
        (at(10), 0, 1, "lead"),
        (at(10), 0, 1, "manager"),
        (at(25), 1, 0, "bob"),  # the schedule is asked again when the level is due
    ]
    assert (state.level, state.loop, state.next_escalation_at) == (0, 1, at(35))
    assert next_escalation_at(POLICY, CREATED, None, at(30)) == at(35)


def test_after_the_last_pass_the_page_is_exhausted():
    assert exhausted_at(POLICY, CREATED) == at(50)
    state = targets_at(POLICY, CREATED, None, at(49), LOOKUP)
    assert (len(state.notifications), state.exhausted, state.next_escalation_at) == (6, False, None)
    state = targets_at(POLICY, CREATED, None, at(50), LOOKUP)
    assert state.exhausted and state.level == 1 and state.loop == 1
    assert next_escalation_at(POLICY, CREATED, None, at(50)) is None


def test_acknowledgement_stops_escalation():
    state = targets_at(POLICY, CREATED, at(12), at(60), LOOKUP)
    assert sent(state) == [
        (at(0), 0, 0, "alice"),
        (at(10), 0, 1, "lead"),
        (at(10), 0, 1, "manager"),
    ]
    assert state.acknowledged and not state.exhausted and state.next_escalation_at is None
    assert next_escalation_at(POLICY, CREATED, at(12), at(60)) is None
    # Acknowledged the instant level 1 fell due: level 1 is not paged.
    assert sent(targets_at(POLICY, CREATED, at(10), at(60), LOOKUP)) == [(at(0), 0, 0, "alice")]


def test_an_acknowledgement_after_now_has_not_happened_yet():
    state = targets_at(POLICY, CREATED, at(40), at(30), LOOKUP)
    assert not state.acknowledged and len(state.notifications) == 4
    assert next_escalation_at(POLICY, CREATED, at(40), at(30)) == at(35)


def test_a_schedule_with_nobody_on_call_is_visible():
    policy = Policy(
        name="p",
        levels=(Level(targets=(Target(kind="schedule", name="daytime"),), timeout_minutes=5),),
    )
    night = datetime(2026, 1, 5, 23, tzinfo=UTC)
    assert sent(targets_at(policy, night, None, night, LOOKUP)) == [(night, 0, 0, None)]
    assert sent(targets_at(policy, CREATED, None, CREATED, LOOKUP)) == [(CREATED, 0, 0, "dee")]


def test_before_the_page_exists_nothing_is_due():
    state = targets_at(POLICY, CREATED, None, at(-1), LOOKUP)
    assert (state.level, state.notifications, state.next_escalation_at) == (None, (), CREATED)


def test_worker_ticks_send_each_notification_once():
    ticks = [None, at(0), at(9), at(10), at(31), at(90)]
    batches = [
        due_between(POLICY, CREATED, None, since, now, LOOKUP)
        for since, now in zip(ticks, ticks[1:], strict=False)
    ]
    assert [len(b) for b in batches] == [1, 0, 2, 1, 2]
    flat = [n for b in batches for n in b]
    assert flat == list(targets_at(POLICY, CREATED, None, at(90), LOOKUP).notifications)


@settings(max_examples=100)
@given(
    st.lists(st.integers(-5, 120), min_size=1, max_size=8),
    st.one_of(st.none(), st.integers(0, 120)),
)
def test_any_sequence_of_ticks_sends_exactly_what_is_due(minutes, ack):
    acked = None if ack is None else at(ack)
    ticks = sorted(set(minutes))
    since = None
    got = []
    for now in ticks:
        got.extend(due_between(POLICY, CREATED, acked, since, at(now), LOOKUP))
        since = at(now)
    expected = targets_at(POLICY, CREATED, acked, at(ticks[-1]), LOOKUP).notifications
    assert got == list(expected)
    assert all(acked is None or n.due_at < acked for n in got)
    following = next_escalation_at(POLICY, CREATED, acked, at(ticks[-1]))
    assert following is None or following > at(ticks[-1])


@pytest.mark.parametrize(
    ("build", "loc"),
    [
        (lambda: Policy(name="p", levels=()), ("levels",)),
        (lambda: Level(targets=(), timeout_minutes=5), ("targets",)),
        (
            lambda: Level(targets=(Target(kind="user", name="x"),), timeout_minutes=0),
            ("timeout_minutes",),
        ),
        (
            lambda: Policy(
                name="p",
                levels=(Level(targets=(Target(kind="user", name="x"),), timeout_minutes=5),),
                repeat=-1,
            ),
            ("repeat",),
        ),
        (lambda: Target(kind="team", name="x"), ("kind",)),
        (lambda: Target(kind="user", name=""), ("name",)),
    ],
)
def test_bad_policies_are_rejected_naming_the_field(build, loc):
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.errors()[0]["loc"] == loc


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="^acknowledged_at"):
        targets_at(POLICY, CREATED, at(-1), at(5), LOOKUP)
    with pytest.raises(ValueError, match="^now: must be timezone-aware"):
        targets_at(POLICY, CREATED, None, datetime(2026, 1, 5, 12), LOOKUP)
    with pytest.raises(ValueError, match="^page_created_at: must be between"):
        targets_at(
            POLICY, datetime.max.replace(tzinfo=UTC), None, datetime.max.replace(tzinfo=UTC), LOOKUP
        )
    with pytest.raises(ValueError, match="^page_created_at"):
        next_escalation_at(POLICY, datetime(2026, 1, 5, 12), None, at(5))
    unknown = Policy(
        name="p",
        levels=(Level(targets=(Target(kind="schedule", name="nope"),), timeout_minutes=5),),
    )
    with pytest.raises(ValueError, match="no schedule named 'nope'"):
        targets_at(unknown, CREATED, None, at(1), LOOKUP)
