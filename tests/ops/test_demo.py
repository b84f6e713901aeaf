"""The ops part of the demo organisation: services with synthetic metrics, alarms in every
state, checkout's incident cutting a ticket, and the alarm recovering while the demo runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mechanisms import demo, modules
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, autoscaling, cost, paging, synthetic, tickets


@pytest.fixture
def seeded(db, clock, run):
    modules.import_all()
    assert demo.seed(db, clock).created
    return run


def test_the_demo_has_alarms_in_every_state_and_a_ticket(db, clock, seeded):
    run = seeded
    states = {a.name: (a.kind, a.state) for a in run(alarms.list_alarms)}
    # The flags demo adds the alarms its rollouts watch; these are the ops demo's own.
    assert {
        "checkout-latency-p99": ("metric", "ALARM"),
        "search-cpu-high": ("metric", "OK"),
        "search-index-backlog": ("metric", "INSUFFICIENT_DATA"),
        "storefront-degraded": ("composite", "ALARM"),
    }.items() <= states.items()
    assert [s.key for s in run(alarms.list_services)] == ["checkout", "search"]
    assert run(synthetic.configuration) is not None
    # Two days of history are there to look at.
    history = run(
        alarms.query,
        synthetic.CPU_METRIC,
        {"service": "search"},
        "avg",
        clock.now() - timedelta(days=2),
        clock.now(),
        3600,
    )
    assert all(value is not None for _, value in history)

    worker = Worker(db, clock=clock)
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    cut = {t.alarm: t for t in run(tickets.list_tickets, "open")}
    assert cut["checkout-latency-p99"].severity == 2
    # The SEV2 ticket paged whoever is on call for payments.
    pages = {p.ticket_id: p for p in run(paging.list_pages)}
    assert pages[cut["checkout-latency-p99"].id].state == "triggered"


def test_the_demo_has_a_scaling_history_and_a_cost_finding(db, clock, seeded):
    run = seeded
    decisions = run(autoscaling.history, "web")
    assert len({d.to_capacity for d in decisions}) > 2, "the web fleet followed the daily wave"
    findings = run(cost.findings)
    assert [f.target for f in findings] == ["workers"]
    assert findings[0].saving > 0


def test_checkout_recovers_when_its_incident_ends(db, clock, seeded):
    run = seeded
    worker = Worker(db, clock=clock)
    try:
        for _ in range(30):
            clock.advance(minutes=1)
            worker.run_until_idle()
    finally:
        worker.close()
    assert run(alarms.get_alarm, "checkout-latency-p99").state == "OK"
    assert run(alarms.get_alarm, "storefront-degraded").state == "OK"
    ticket = next(t for t in run(tickets.list_tickets) if t.alarm == "checkout-latency-p99")
    notes = [e.text for e in run(tickets.timeline, ticket.id) if e.kind == "note"]
    assert any("checkout-latency-p99 is OK" in n for n in notes)
