"""The on-call service: schedules and policies kept as the domain models, every edit
versioned, audited and announced; roster changes only ahead; feeds stored hashed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mechanisms.core import accounts, audit
from mechanisms.core.errors import Forbidden, InvalidInput, NotFound, StaleState
from mechanisms.core.identity import Principal
from mechanisms.core.tables import Event
from mechanisms.ops import oncall, schedules
from mechanisms.ops.tables import CalendarFeed

LAYER = {
    "participants": ["eve", "leo"],
    "rotation": {"type": "daily", "handoff_time": "09:00"},
    "start": "2026-01-01T09:00:00Z",
}
AT = datetime(2026, 1, 5, 9, tzinfo=UTC)  # the clock fixture's start: eve's day


def as_user(db, username: str) -> Principal:
    with db.transaction(write=False) as session:
        user = accounts.find_user(session, username)
    return Principal(user_id=user.id, username=username, via="session")


@pytest.fixture
def primary(org, run):
    return run(schedules.create_schedule, "payments", "primary", "UTC", [LAYER])


def event_types(db) -> list[str]:
    with db.transaction(write=False) as session:
        return list(session.execute(select(Event.type).order_by(Event.id)).scalars())


def test_edits_are_versioned_audited_and_announced(db, run, clock, primary):
    row, override_id = run(
        schedules.add_override, "primary", AT, AT + timedelta(hours=2), "ada", None, 1
    )
    assert row.version == 2
    with pytest.raises(StaleState):
        run(schedules.add_override, "primary", AT, AT + timedelta(hours=1), "leo", None, 1)
    assert run(schedules.on_call_now, schedule="primary")[0].person == "ada"
    run(schedules.remove_override, "primary", override_id)
    assert run(schedules.on_call_now, schedule="primary")[0].person == "eve"
    assert event_types(db)[-3:] == [
        "ops.schedule.created",
        "ops.schedule.override_added",
        "ops.schedule.override_removed",
    ]
    with db.transaction(write=False) as session:
        assert audit.verify(session).ok
        actions = [r.action for r in audit.browse(session, audit.AuditFilter(limit=50))]
    assert "ops.schedule.override_added" in actions


def test_roster_changes_only_take_effect_ahead(db, run, clock, primary):
    with pytest.raises(InvalidInput, match="effective_at"):
        run(schedules.add_roster_change, "primary", 0, AT - timedelta(days=1), ["ada"])
    with pytest.raises(InvalidInput, match="layer"):
        run(schedules.add_roster_change, "primary", 3, AT + timedelta(days=1), ["ada"])
    with pytest.raises(InvalidInput, match="no user named 'zed'"):
        run(schedules.add_roster_change, "primary", 0, AT + timedelta(days=1), ["zed"])
    run(schedules.add_roster_change, "primary", 0, AT + timedelta(days=2), ["ada", "leo"])
    shifts = run(schedules.shifts_of, "primary", AT, AT + timedelta(days=4))
    assert [s.person for s in shifts] == ["eve", "leo", "ada", "leo"]


def test_a_swap_binds_two_overrides_to_the_two_shifts(db, run, clock, primary):
    row, ids = run(
        schedules.swap_shifts, "primary", AT + timedelta(hours=1), AT + timedelta(days=1, hours=1)
    )
    assert len(ids) == 2 and row.version == 2
    domain = schedules.model(row)
    assert oncall.who_is_on_call(domain, AT + timedelta(hours=3)).person == "leo"
    assert oncall.who_is_on_call(domain, AT + timedelta(days=1, hours=3)).person == "eve"
    with pytest.raises(InvalidInput, match="second_at"):
        # 7 and 9 January are both eve's.
        run(schedules.swap_shifts, "primary", AT + timedelta(days=2), AT + timedelta(days=4))


def test_only_the_owning_team_edits_and_viewers_read(db, run, clock, primary):
    eve, vic = as_user(db, "eve"), as_user(db, "vic")
    run(schedules.add_override, "primary", AT, AT + timedelta(hours=1), "eve", as_=eve)
    with pytest.raises(Forbidden):
        run(schedules.add_override, "primary", AT, AT + timedelta(hours=1), "vic", as_=vic)
    with pytest.raises(Forbidden):
        run(schedules.create_schedule, "acme", "org-wide", "UTC", [LAYER], as_=eve)
    assert run(schedules.get_schedule, "primary", as_=vic).name == "primary"


def test_a_team_without_a_policy_uses_its_parent_teams(db, run, clock, primary):
    levels = [{"targets": [{"kind": "schedule", "name": "primary"}], "timeout_minutes": 5}]
    run(schedules.create_policy, "acme", "acme-wide", levels, default=True)
    with db.transaction(write=False) as session:
        payments = accounts.find_team(session, "payments")
        assert schedules.team_policy(session, payments.id).name == "acme-wide"
    with pytest.raises(InvalidInput, match="levels.0.targets.0.name"):
        run(
            schedules.create_policy,
            "payments",
            "broken",
            [{"targets": [{"kind": "schedule", "name": "nope"}], "timeout_minutes": 5}],
        )


def test_feed_tokens_are_stored_hashed_and_rotate(db, run, clock, primary):
    _feed, first = run(schedules.create_feed, schedule="primary")
    _feed, second = run(schedules.create_feed, schedule="primary")
    with db.transaction(write=False) as session:
        stored = [f.token_hash for f in session.execute(select(CalendarFeed)).scalars()]
    assert first not in stored and second not in stored and len(stored) == 2
    with pytest.raises(NotFound):
        run(schedules.feed_calendar, first)
    assert b"BEGIN:VCALENDAR" in run(schedules.feed_calendar, second)
    run(schedules.delete_schedule, "primary")
    with pytest.raises(NotFound):
        run(schedules.feed_calendar, second)
