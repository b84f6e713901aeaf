"""Paging: SEV1/SEV2 tickets page the owning team's on-call through its escalation policy,
on time, once per target, until someone acknowledges; handoffs are announced once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mechanisms.core import accounts, events, webhooks
from mechanisms.core.context import Ctx
from mechanisms.core.errors import StaleState
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Event
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, paging, schedules, tickets
from mechanisms.ops.tables import PageNotification
from tests.support.receiver import Receiver

DAILY_EVE_LEO = [
    {
        "name": "primary",
        "participants": ["eve", "leo"],
        "rotation": {"type": "daily", "handoff_time": "09:00"},
        "start": "2026-01-01T09:00:00+00:00",
    }
]
LEVELS = [
    {"targets": [{"kind": "schedule", "name": "payments-primary"}], "timeout_minutes": 10},
    {"targets": [{"kind": "user", "name": "ada"}], "timeout_minutes": 15},
]


@pytest.fixture
def team_on_call(org, run):
    """Payments: a checkout service, a daily eve/leo rotation (eve's turn on 2026-01-05,
    the clock's day) and a default policy: the schedule, then ada after 10 minutes."""
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(schedules.create_schedule, "payments", "payments-primary", "UTC", DAILY_EVE_LEO)
    run(schedules.create_policy, "payments", "payments-default", LEVELS, 1, default=True)


def work(db, clock) -> None:
    worker = Worker(db, clock=clock)
    try:
        worker.run_until_idle()
    finally:
        worker.close()


def sent(db) -> list[tuple[int, int, str | None]]:
    with db.transaction(write=False) as session:
        rows = session.execute(select(PageNotification).order_by(PageNotification.id)).scalars()
        return [(n.loop, n.level, n.person) for n in rows]


def event_payloads(db, event_type: str) -> list[dict]:
    with db.transaction(write=False) as session:
        return [
            e.payload
            for e in session.execute(
                select(Event).where(Event.type == event_type).order_by(Event.id)
            ).scalars()
        ]


def test_a_sev1_ticket_pages_the_on_call_then_escalates_on_time(db, run, clock, team_on_call):
    ticket = run(tickets.create, "checkout", "checkout is down", 1)
    work(db, clock)
    assert sent(db) == [(0, 0, "eve")]
    page = run(paging.list_pages)[0]
    assert (page.ticket_id, page.state) == (ticket.id, "triggered")
    assert page.next_escalation_at == clock.now() + timedelta(minutes=10)

    clock.advance(minutes=9, seconds=59)
    work(db, clock)
    assert sent(db) == [(0, 0, "eve")], "level 1 waits for level 0's timeout"
    clock.advance(seconds=1)
    work(db, clock)
    assert sent(db) == [(0, 0, "eve"), (0, 1, "ada")]
    notified = event_payloads(db, "ops.page.notified")
    assert [(n["person"], n["level"], n["ticket"]) for n in notified] == [
        ("eve", 0, ticket.id),
        ("ada", 1, ticket.id),
    ]
    assert notified[0]["team"] == "payments" and notified[0]["gap"] is False


def test_acknowledging_the_ticket_stops_the_escalation(db, run, clock, team_on_call):
    ticket = run(tickets.create, "checkout", "checkout is down", 2)
    work(db, clock)
    clock.advance(minutes=3)
    run(tickets.acknowledge, ticket.id)
    clock.advance(hours=2)
    work(db, clock)
    assert sent(db) == [(0, 0, "eve")]
    page = run(paging.list_pages)[0]
    assert page.state == "acknowledged" and page.next_escalation_at is None
    run(tickets.resolve, ticket.id, "restarted the gateway")
    work(db, clock)
    assert run(paging.get_page, page.id).state == "resolved"


def test_acknowledging_the_page_acknowledges_the_ticket(db, run, clock, team_on_call):
    ticket = run(tickets.create, "checkout", "checkout is down", 1)
    work(db, clock)
    page = run(paging.list_pages)[0]
    with db.transaction(write=False) as session:
        eve = accounts.find_user(session, "eve")
    from mechanisms.core.identity import Principal

    as_eve = Principal(user_id=eve.id, username="eve", via="session")
    assert [p.id for p, _t in run(paging.open_pages_for, "eve")] == [page.id]
    run(paging.acknowledge, page.id, as_=as_eve)
    assert run(tickets.get, ticket.id).state == "acknowledged"
    assert run(paging.get_page, page.id).acknowledged_by == "eve"
    clock.advance(minutes=30)
    work(db, clock)
    assert sent(db) == [(0, 0, "eve")]
    assert run(paging.open_pages_for, "eve") == []


def test_an_unacknowledged_page_repeats_the_policy_then_is_exhausted(db, run, clock, team_on_call):
    run(tickets.create, "checkout", "checkout is down", 1)
    work(db, clock)
    for _ in range(10):
        clock.advance(minutes=5)
        work(db, clock)
    # 0': eve, 10': ada, 25': eve again (repeat=1), 35': ada, 50': exhausted.
    assert sent(db) == [(0, 0, "eve"), (0, 1, "ada"), (1, 0, "eve"), (1, 1, "ada")]
    page = run(paging.list_pages)[0]
    assert page.state == "exhausted" and page.next_escalation_at is None
    assert page.exhausted_at == datetime(2026, 1, 5, 9, 50, tzinfo=UTC)
    assert len(event_payloads(db, "ops.page.exhausted")) == 1
    assert [p.id for p in run(paging.list_pages, "exhausted")] == [page.id]


def test_a_late_worker_catches_up_without_sending_twice(db, run, clock, team_on_call):
    run(tickets.create, "checkout", "checkout is down", 1)
    work(db, clock)
    clock.advance(minutes=30)  # the worker was down for level 1 and the repeat's level 0
    work(db, clock)
    work(db, clock)
    assert sent(db) == [(0, 0, "eve"), (0, 1, "ada"), (1, 0, "eve")]


def test_low_severity_tickets_page_nobody(db, run, clock, team_on_call):
    run(tickets.create, "checkout", "typo on the receipt", 3)
    work(db, clock)
    assert run(paging.list_pages) == [] and sent(db) == []


def test_nobody_on_call_is_recorded_as_a_gap(db, run, clock, org):
    run(alarms.create_service, "ledger", "Ledger", "payments")
    business_hours = [
        {
            **DAILY_EVE_LEO[0],
            "restrictions": [{"kind": "daily", "start": "09:00", "end": "17:00"}],
        }
    ]
    run(schedules.create_schedule, "payments", "payments-primary", "UTC", business_hours)
    run(schedules.create_policy, "payments", "payments-default", LEVELS[:1], default=True)
    clock.set(datetime(2026, 1, 5, 23, 0, tzinfo=UTC))
    run(tickets.create, "ledger", "ledger drift", 1)
    work(db, clock)
    assert sent(db) == [(0, 0, None)]
    assert event_payloads(db, "ops.page.notified")[0]["gap"] is True


def test_a_team_without_a_policy_gets_a_visible_unrouted_page(db, run, clock, org):
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(tickets.create, "checkout", "checkout is down", 1)
    work(db, clock)
    page = run(paging.list_pages)[0]
    assert page.state == "unrouted" and sent(db) == []


def test_a_worker_that_dies_mid_escalation_sends_nothing_and_the_next_sends_once(
    db, run, clock, team_on_call
):
    run(tickets.create, "checkout", "checkout is down", 1)
    worker = Worker(db, clock=clock)
    try:
        worker.tick()  # fan out and deliver: the page opens; its level 0 goes out too
    finally:
        worker.close()
    assert sent(db) == [(0, 0, "eve")]
    page_id = run(paging.list_pages)[0].id
    clock.advance(minutes=10)

    class Killed(Exception):
        pass

    with pytest.raises(Killed), db.transaction() as session:
        paging.escalate(Ctx(session, system_principal("worker"), clock.now()), page_id)
        raise Killed  # the process dies before the commit
    assert sent(db) == [(0, 0, "eve")]
    assert run(paging.escalate, page_id) == 1
    with pytest.raises(StaleState):
        run(paging.escalate, page_id)  # a second worker on the same tick
    assert sent(db) == [(0, 0, "eve"), (0, 1, "ada")]
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(
            PageNotification(
                page_id=page_id,
                loop=0,
                level=1,
                target_kind="user",
                target_name="ada",
                person="ada",
                due_at=clock.now(),
                notified_at=clock.now(),
            )
        )


def test_a_raised_severity_pages(db, run, clock, team_on_call):
    """Any later ticket event that finds an open SEV1/SEV2 ticket without a page opens one
    (a severity change is one such event)."""
    ticket = run(tickets.create, "checkout", "slow receipts", 3)
    work(db, clock)
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        stored = tickets.get(ctx, ticket.id)
        stored.severity = 2
        events.emit(ctx, "tickets.severity_changed", "ticket", ticket.id, {"id": ticket.id})
    work(db, clock)
    assert sent(db) == [(0, 0, "eve")]


@pytest.mark.usefixtures("local_receivers_allowed")  # the receiver listens on this machine
def test_pages_reach_a_real_webhook_receiver(db, run, clock, team_on_call):
    receiver = Receiver().start()
    try:
        run(webhooks.create, receiver.url, ["ops.page.notified"], "chat bridge")
        ticket = run(tickets.create, "checkout", "checkout is down", 1)
        work(db, clock)
        bodies = [json.loads(r.body) for r in receiver.snapshot()]
    finally:
        receiver.stop()
    assert [b["type"] for b in bodies] == ["ops.page.notified"]
    data = bodies[0]["data"]["payload"]
    assert (data["person"], data["ticket"], data["level"]) == ("eve", ticket.id, 0)
    assert receiver.snapshot()[0].headers["webhook-signature"].startswith("v1,")


def test_handoffs_are_announced_once_each(db, run, clock, team_on_call):
    work(db, clock)
    work(db, clock)
    handoffs = event_payloads(db, "ops.oncall.handoff")
    assert [(h["from"], h["to"]) for h in handoffs] == [(None, "eve")]
    clock.advance(hours=23, minutes=59)
    work(db, clock)
    assert len(event_payloads(db, "ops.oncall.handoff")) == 1
    clock.advance(minutes=1)
    work(db, clock)
    work(db, clock)
    handoffs = event_payloads(db, "ops.oncall.handoff")
    assert [(h["from"], h["to"]) for h in handoffs] == [(None, "eve"), ("eve", "leo")]
    assert handoffs[1]["schedule"] == "payments-primary" and handoffs[1]["team"] == "payments"
    with db.transaction(write=False) as session:
        assert session.execute(select(func.count()).select_from(Event)).scalar_one() > 0


def test_two_workers_at_once_notify_each_target_once(db, run, clock, team_on_call):
    import threading

    for n in range(12):
        run(tickets.create, "checkout", f"incident {n}", 1)
    work(db, clock)  # pages open and level 0 goes out
    clock.advance(minutes=10)
    workers = [Worker(db, clock=clock) for _ in range(2)]
    barrier = threading.Barrier(len(workers))

    def race(worker: Worker) -> None:
        barrier.wait()
        worker.run_until_idle()

    threads = [threading.Thread(target=race, args=(w,)) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for worker in workers:
            worker.close()
    assert sorted(sent(db)) == sorted([(0, 0, "eve")] * 12 + [(0, 1, "ada")] * 12)
    assert len(event_payloads(db, "ops.page.notified")) == 24
