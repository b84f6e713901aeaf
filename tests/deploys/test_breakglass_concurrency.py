"""Two approvals arriving at the same instant on two connections give exactly one grant.

On PostgreSQL the request row is locked (FOR UPDATE), so the second approval waits for the
first to commit and then sees it; on SQLite writers are serialised by BEGIN IMMEDIATE."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from mechanisms.core.context import Ctx
from mechanisms.core.tables import Event
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.deploys.tables import BreakGlassDecision
from mechanisms.ops import tickets

from .conftest import ship

TARGET = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}


def test_two_simultaneous_approvals_give_exactly_one_grant(db, run, clock, checkout, as_user):
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    run(windows.freeze, "org", "acme", clock.now() + timedelta(days=2), "year-end")
    ticket = run(tickets.create, "checkout", "EU cards fail", 1)
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(ticket.id), as_=as_user("eve")
    )
    approvers = [as_user("leo"), as_user("ada")]
    barrier = threading.Barrier(len(approvers))
    failures: list[BaseException] = []

    def approve(principal):
        try:
            with db.transaction() as session:
                ctx = Ctx(session, principal, clock.now())
                barrier.wait(timeout=10)
                breakglass.approve(ctx, request.id, **TARGET)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=approve, args=(p,)) for p in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with db.transaction(write=False) as session:
        granted = session.execute(
            select(func.count())
            .select_from(Event)
            .where(Event.type == "deploys.breakglass_granted")
        ).scalar_one()
        decisions = session.execute(
            select(func.count()).select_from(BreakGlassDecision)
        ).scalar_one()
    assert (granted, decisions) == (1, 2)
    assert run(breakglass.get, request.id).status == "granted"
