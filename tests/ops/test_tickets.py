"""Tickets: one open ticket per alarm, updates while it stays in ALARM, a note when it
recovers; people acknowledge, comment and resolve with a timeline of every change."""

from __future__ import annotations

import pytest

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, tickets

DEFINITION = {
    "statistic": "max",
    "comparison": "GreaterThanThreshold",
    "threshold": 10,
    "period_seconds": 60,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
}


@pytest.fixture
def checkout(org, run):
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(
        alarms.create_alarm,
        "checkout-errors",
        "checkout",
        metric="errors",
        definition=DEFINITION,
        severity=2,
    )
    # Its first evaluation (no data yet) happens now; states set by hand then last a minute.
    run(alarms.evaluate_due)


def deliver(db, clock):
    worker = Worker(db, clock=clock)
    try:
        worker.run_until_idle()
    finally:
        worker.close()


def test_an_alarm_cuts_one_ticket_and_updates_it(db, run, clock, checkout):
    run(alarms.set_state, "checkout-errors", "ALARM", "5xx at 4 %")
    deliver(db, clock)
    run(alarms.set_state, "checkout-errors", "OK", "recovered")
    run(alarms.set_state, "checkout-errors", "ALARM", "5xx at 6 %")
    deliver(db, clock)
    opened = run(tickets.list_tickets, "open")
    assert len(opened) == 1
    ticket = opened[0]
    assert (ticket.severity, ticket.alarm, ticket.title) == (
        2,
        "checkout-errors",
        "checkout-errors is in ALARM",
    )
    kinds = [e.kind for e in run(tickets.timeline, ticket.id)]
    assert kinds == ["created", "note", "update"]


def test_people_acknowledge_comment_and_resolve(db, run, clock, checkout, org):

    ticket = run(tickets.create, "checkout", "card payments fail for Amex", 2, "seen by support")
    run(tickets.acknowledge, ticket.id)
    with pytest.raises(Conflict, match="only an open ticket"):
        run(tickets.acknowledge, ticket.id)
    run(tickets.comment, ticket.id, "rolled back the gateway config")
    with pytest.raises(InvalidInput, match="say what fixed it"):
        run(tickets.resolve, ticket.id, " ")
    resolved = run(tickets.resolve, ticket.id, "gateway config restored")
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    assert [e.kind for e in run(tickets.timeline, ticket.id)] == [
        "created",
        "acknowledged",
        "comment",
        "resolved",
    ]


def test_a_resolved_alarm_ticket_makes_room_for_a_new_one(db, run, clock, checkout):
    run(alarms.set_state, "checkout-errors", "ALARM", "first")
    deliver(db, clock)
    first = run(tickets.list_tickets, "open")[0]
    run(tickets.resolve, first.id, "fixed")
    run(alarms.set_state, "checkout-errors", "OK", "fine")
    run(alarms.set_state, "checkout-errors", "ALARM", "again")
    deliver(db, clock)
    assert [t.id for t in run(tickets.list_tickets, "open")] != [first.id]
    assert len(run(tickets.list_tickets)) == 2


def test_viewers_cannot_touch_tickets(db, run, checkout):
    from mechanisms.core import accounts
    from mechanisms.core.identity import Principal

    with db.transaction(write=False) as session:
        vic = accounts.find_user(session, "vic")
    viewer = Principal(user_id=vic.id, username="vic", via="session")
    ticket = run(tickets.create, "checkout", "something", 3)
    with pytest.raises(Forbidden):
        run(tickets.acknowledge, ticket.id, as_=viewer)
    with pytest.raises(Forbidden):
        run(tickets.create, "checkout", "x", 3, as_=viewer)


def test_a_resolved_high_severity_ticket_is_promoted_to_the_roadmap_once(db, run, checkout):
    from sqlalchemy import select

    from mechanisms.core.tables import Event

    ticket = run(tickets.create, "checkout", "checkout down for 20 minutes", 1)
    with pytest.raises(Conflict, match="resolve it before"):
        run(tickets.promote, ticket.id, "add a canary stage")
    run(tickets.resolve, ticket.id, "rolled back")
    with pytest.raises(InvalidInput, match="summary"):
        run(tickets.promote, ticket.id, "  ")
    promoted = run(tickets.promote, ticket.id, "add a canary stage to checkout's pipeline")
    assert promoted.links["roadmap"]["summary"] == "add a canary stage to checkout's pipeline"
    with pytest.raises(Conflict, match="already promoted"):
        run(tickets.promote, ticket.id, "again")
    assert [e.kind for e in run(tickets.timeline, ticket.id)][-1] == "promoted"
    with db.transaction(write=False) as session:
        offered = session.execute(select(Event).where(Event.type == "tickets.promoted")).scalars()
        payloads = [e.payload for e in offered]
    assert [(p["id"], p["service"], p["kind"]) for p in payloads] == [
        (ticket.id, "checkout", "operational_finding")
    ]

    minor = run(tickets.create, "checkout", "a typo on the receipt", 4)
    run(tickets.resolve, minor.id, "fixed the template")
    with pytest.raises(Conflict, match="only SEV1 and SEV2"):
        run(tickets.promote, minor.id, "proofread receipts")
