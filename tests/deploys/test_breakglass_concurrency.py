"""Two approvals arriving at the same instant from two OS processes give exactly one grant.

Each process builds its own engine on the test database (as two API replicas would), and
both wait on one barrier inside their transaction, so that their approvals reach the
database together, round after round. On PostgreSQL the request row is locked
(``FOR UPDATE``): the second approval waits for the first to commit and then sees it. On
SQLite writers are serialised by ``BEGIN IMMEDIATE``. Either way the grant is decided once,
the audit trail records it once and its hash chain still verifies.

Processes rather than threads: one interpreter's threads share a GIL and the driver's
state, which can hide a race that two replicas would meet.
"""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta

from sqlalchemy import func, select

from mechanisms.core import accounts, audit
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.identity import Principal
from mechanisms.core.tables import AuditRecord, Event
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.deploys.tables import BreakGlassDecision
from mechanisms.ops import tickets

from .conftest import ship

TARGET = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
ROUNDS = 4
APPROVERS = ("leo", "ada")
GRANTED = "deploys.breakglass_granted"


def _principal(db: Database, username: str) -> Principal:
    with db.transaction(write=False) as session:
        user = accounts.find_user(session, username)
        return Principal(user_id=user.id, username=user.username, via="session")


def approve_in_process(url, username, at, request_ids, barrier, results) -> None:
    """One replica: for each request, wait for the other at the barrier inside an open
    transaction, then approve. Reports ``(username, request id, status or error)``."""
    db = Database(url)
    try:
        principal = _principal(db, username)
        for request_id in request_ids:
            try:
                with db.transaction() as session:
                    ctx = Ctx(session, principal, datetime.fromisoformat(at))
                    barrier.wait(timeout=30)
                    row = breakglass.approve(ctx, request_id, **TARGET)
                    outcome = row.status
            except Exception as exc:  # noqa: BLE001 - sent to the test, which fails on it
                outcome = f"{type(exc).__name__}: {exc}"
            results.put((username, request_id, outcome))
    finally:
        db.dispose()


def count(session, model, *where) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_two_processes_approving_at_once_give_exactly_one_grant(db, run, clock, checkout, as_user):
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    run(windows.freeze, "org", "acme", clock.now() + timedelta(days=2), "year-end")
    ticket = run(tickets.create, "checkout", "EU cards fail", 1)
    eve = as_user("eve")
    request_ids = [
        run(breakglass.request, "checkout", "prod", "v1", "fix", str(ticket.id), as_=eve).id
        for _ in range(ROUNDS)
    ]
    url = db.engine.url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(len(APPROVERS)), spawn.Queue()
    processes = [
        spawn.Process(
            target=approve_in_process,
            args=(url, who, clock.now().isoformat(), request_ids, barrier, results),
        )
        for who in APPROVERS
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(ROUNDS * len(APPROVERS))]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    for request_id in request_ids:
        statuses = sorted(o for _, r, o in outcomes if r == request_id)
        # Whichever came second saw the first: one saw pending, the other made the grant.
        assert statuses == ["granted", "pending"], statuses
    with db.transaction(write=False) as session:
        for request_id in request_ids:
            key = str(request_id)
            assert count(session, Event, Event.type == GRANTED, Event.object_id == key) == 1
            assert (
                count(
                    session,
                    AuditRecord,
                    AuditRecord.action == GRANTED,
                    AuditRecord.object_id == key,
                )
                == 1
            )
            assert (
                count(session, BreakGlassDecision, BreakGlassDecision.request_id == request_id) == 2
            )
        assert audit.verify(session).ok
    assert {run(breakglass.get, r).status for r in request_ids} == {"granted"}
