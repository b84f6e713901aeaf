"""SIGKILL the worker in the middle of an alarm evaluation pass, then in the middle of the
deliveries that act on it: every transition is recorded once, and every action (a ticket
per alarm; a page per high-severity ticket, once paging lands) happens once."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mechanisms.core import audit
from mechanisms.core.clock import SystemClock
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Delivery, Event
from mechanisms.ops import alarms
from mechanisms.ops.tables import Alarm, AlarmTransition, Ticket
from tests.conftest import seed_org
from tests.test_worker_crash import _lines, start_worker

pytestmark = pytest.mark.slow

ALARMS = 120
# No data is breaching data: every alarm goes to ALARM at its first evaluation.
ALWAYS_BREACHING = {
    "statistic": "p99",
    "comparison": "GreaterThanThreshold",
    "threshold": 500,
    "period_seconds": 60,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
    "treat_missing_data": "breaching",
}


def seed_alarms(db) -> list[str]:
    names = [f"checkout-{i:03d}" for i in range(ALARMS)]
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), SystemClock().now())
        alarms.create_service(ctx, "checkout", "Checkout", "payments")
        for i, name in enumerate(names):
            alarms.create_alarm(
                ctx,
                name,
                "checkout",
                metric="api_latency_ms",
                match={"route": f"/r{i}"},
                definition=ALWAYS_BREACHING,
                severity=2 if i % 2 else 3,
            )
    return names


def start(db, probe_file: Path) -> subprocess.Popen:
    return start_worker(
        db.url, probe_file, lease_seconds=1, plugin="tests.support.alarm_crash_probe"
    )


def wait_for(probe_file: Path, at_least: int, worker: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while _lines(probe_file) < at_least:
        if worker.poll() is not None:
            pytest.fail(f"worker exited early: {worker.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the worker never got there")
        time.sleep(0.005)


def kill(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)


def outstanding(db) -> int:
    with db.transaction(write=False) as session:
        unfanned = session.execute(
            select(func.count()).select_from(Event).where(Event.fanned_out.is_(False))
        ).scalar_one()
        pending = session.execute(
            select(func.count()).select_from(Delivery).where(Delivery.status != "delivered")
        ).scalar_one()
    return unfanned + pending


def tickets_per_alarm(session) -> Counter[str]:
    return Counter(session.execute(select(Ticket.alarm)).scalars())


# What acting on an alarm in ALARM does, counted per alarm; each must have happened exactly
# once. Paging adds its count here (pages per alarm, for the SEV1/SEV2 ones).
ACTIONS: dict[str, Callable[..., Counter[str]]] = {"tickets": tickets_per_alarm}


def test_sigkill_mid_evaluation_and_mid_delivery_loses_and_repeats_nothing(db, clock, tmp_path):
    seed_org(db, clock)
    names = seed_alarms(db)
    probe_file = tmp_path / "probe.log"
    probe_file.touch()
    # 1. Killed after the pass wrote its transitions, before it committed them.
    worker = start(db, probe_file)
    wait_for(probe_file, 1, worker)
    kill(worker)
    with db.transaction(write=False) as session:
        assert session.execute(select(func.count()).select_from(AlarmTransition)).scalar_one() == 0
        states = Counter(session.execute(select(Alarm.state)).scalars())
        assert states == Counter({"INSUFFICIENT_DATA": ALARMS}), "nothing half-written"
    # 2. Killed again while the transitions' events are being delivered (tickets cut).
    worker = start(db, probe_file)
    wait_for(probe_file, 2 + ALARMS // 3, worker)
    kill(worker)
    with db.transaction(write=False) as session:
        cut = sum(tickets_per_alarm(session).values())
    assert 0 < cut < ALARMS, "the kill landed in the middle of the deliveries"
    # 3. A last worker finishes the work.
    worker = start(db, probe_file)
    deadline = time.monotonic() + 120
    try:
        while outstanding(db) and time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"worker exited: {worker.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert outstanding(db) == 0

    with db.transaction(write=False) as session:
        transitions = list(
            session.execute(
                select(Alarm.name, AlarmTransition.from_state, AlarmTransition.to_state).join(
                    Alarm, Alarm.id == AlarmTransition.alarm_id
                )
            )
        )
        assert Counter(n for n, _, _ in transitions) == Counter({n: 1 for n in names})
        assert {(f, t) for _, f, t in transitions} == {("INSUFFICIENT_DATA", "ALARM")}
        events_per_alarm = Counter(
            session.execute(
                select(Event.object_id).where(Event.type == "alarms.state_changed")
            ).scalars()
        )
        assert events_per_alarm == Counter({n: 1 for n in names})
        for action, count in ACTIONS.items():
            assert count(session) == Counter({n: 1 for n in names}), action
        assert audit.verify(session).ok
