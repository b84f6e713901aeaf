"""SIGKILL the worker while it opens and escalates pages, again and again: every page
still notifies its on-call, and nobody is notified twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from mechanisms.core import audit
from mechanisms.core.clock import SystemClock
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Event
from mechanisms.ops import alarms, oncall, schedules, tickets
from mechanisms.ops.tables import Page, PageNotification
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

TICKETS = 120
KILLS = 3
LAYER = {
    "participants": ["eve", "leo"],
    "rotation": {"type": "custom", "unit": "hours", "length": 8760, "handoff_time": "00:00"},
    "start": "2020-01-01T00:00:00Z",
}


def seed(db) -> None:
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), SystemClock().now())
        service = alarms.create_service(ctx, "checkout", "Checkout", "payments")
        schedules.create_schedule(ctx, "payments", "primary", "UTC", [LAYER])
        levels = [
            {
                "targets": [
                    {"kind": "schedule", "name": "primary"},
                    {"kind": "user", "name": "ada"},
                ],
                "timeout_minutes": 60,
            }
        ]
        schedules.create_policy(ctx, "payments", "default", levels, default=True)
        for n in range(TICKETS):
            tickets.cut(ctx, service, f"incident {n}", 1 + n % 2)


def start(db) -> subprocess.Popen:
    env = {
        **os.environ,
        "MECH_DATABASE_URL": db.url,
        "MECH_WORKER_TICK_SECONDS": "0.05",
        "MECH_WORKER_BATCH": "20",
        # A killed worker's claims run out after a second, so the test need not wait.
        "MECH_WORKER_LEASE_SECONDS": "1",
        # This checkout's sources, whatever copy the environment has installed.
        "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{REPO_ROOT}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mechanisms", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def notified(db) -> int:
    with db.transaction(write=False) as session:
        return session.execute(select(func.count()).select_from(PageNotification)).scalar_one()


def test_sigkill_while_paging_loses_and_repeats_nothing(db, org):
    seed(db)
    expected = TICKETS * 2
    rng = random.Random(11)
    kills = 0
    deadline = time.monotonic() + 240
    while notified(db) < expected and time.monotonic() < deadline:
        worker = start(db)
        if kills < KILLS:
            target = notified(db) + rng.randint(5, 40)
            while notified(db) < min(target, expected - 1) and time.monotonic() < deadline:
                if worker.poll() is not None:
                    pytest.fail(f"worker exited early: {worker.stderr.read().decode()[-2000:]}")
                time.sleep(0.002)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            kills += 1
        else:
            while notified(db) < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert kills == KILLS
    with db.transaction(write=False) as session:
        rows = session.execute(select(PageNotification.page_id, PageNotification.person)).all()
        pages = session.execute(select(func.count()).select_from(Page)).scalar_one()
        events = session.execute(
            select(func.count()).select_from(Event).where(Event.type == "ops.page.notified")
        ).scalar_one()
        assert audit.verify(session).ok
    assert pages == TICKETS
    on_call = oncall.who_is_on_call(
        oncall.Schedule(name="primary", time_zone="UTC", layers=(oncall.Layer(**LAYER),)),
        SystemClock().now(),
    ).person
    assert Counter(person for _page, person in rows) == Counter({"ada": TICKETS, on_call: TICKETS})
    assert len(set(rows)) == len(rows) == expected
    assert events == expected
