"""SIGKILL the worker while it delivers a batch, again and again: no event is lost,
no subscriber's database write happens twice, order per object holds, and the audit
chain stays intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mechanisms.core import audit, events, webhooks
from mechanisms.core.clock import SystemClock
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import AuditRecord, Delivery
from tests.conftest import REPO_ROOT
from tests.support.receiver import Receiver

# The receiver listens on this machine, which the server refuses unless allowed.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_receivers_allowed")]

EVENTS = 400
OBJECTS = 25
KILLS = 4


def start_worker(
    db_url: str,
    probe_file: Path,
    lease_seconds: float = 60,
    plugin: str = "tests.support.crash_probe",
) -> subprocess.Popen:
    env = {
        **os.environ,
        "MECH_DATABASE_URL": db_url,
        "MECH_PLUGINS": plugin,
        "MECH_PROBE_FILE": str(probe_file),
        "MECH_WORKER_TICK_SECONDS": "0.05",
        "MECH_WORKER_BATCH": "40",
        "MECH_WORKER_LEASE_SECONDS": str(lease_seconds),
        # The repository (for the tests' plugins) before whatever path the tests run with.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mechanisms", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def emit_probes(db, receiver: Receiver) -> list[int]:
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), SystemClock().now())
        webhooks.create(ctx, receiver.url, ["probe.*"])
        return [
            events.emit(ctx, "probe.ping", "thing", str(n % OBJECTS), {"n": n}).id
            for n in range(EVENTS)
        ]


def assert_handled_exactly_once(db, ids: list[int]) -> None:
    """The subscriber's database write happened once per event, and the chain is whole."""
    with db.transaction(write=False) as session:
        recorded = Counter(
            session.execute(
                select(AuditRecord.object_id).where(AuditRecord.action == "probe.handled")
            ).scalars()
        )
        assert recorded == Counter({str(i): 1 for i in ids})
        assert audit.verify(session).ok


def outstanding(db) -> int:
    with db.transaction(write=False) as session:
        unfanned = session.execute(
            select(func.count()).select_from(events.Event).where(events.Event.fanned_out.is_(False))
        ).scalar_one()
        pending = session.execute(
            select(func.count()).select_from(Delivery).where(Delivery.status != "delivered")
        ).scalar_one()
    return unfanned + pending


def test_sigkill_mid_batch_loses_nothing(db, tmp_path):
    probe_file = tmp_path / "probe.log"
    probe_file.touch()
    receiver = Receiver().start()
    try:
        ids = emit_probes(db, receiver)

        rng = random.Random(7)
        kills = 0
        deadline = time.monotonic() + 240
        while outstanding(db) and time.monotonic() < deadline:
            # A killed worker's claims run out after a second, so the test need not wait.
            worker = start_worker(db.url, probe_file, lease_seconds=1)
            if kills < KILLS:
                # Kill only once it is inside a batch: some, not all, events handled.
                handled_before = _lines(probe_file)
                while _lines(probe_file) - handled_before < rng.randint(5, 60):
                    if worker.poll() is not None:
                        pytest.fail(f"worker exited early: {worker.stderr.read().decode()[-2000:]}")
                    time.sleep(0.005)
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                kills += 1
            else:
                while outstanding(db) and time.monotonic() < deadline and worker.poll() is None:
                    time.sleep(0.1)
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.kill()
        assert kills == KILLS
        assert outstanding(db) == 0, "deliveries still outstanding after the deadline"

        # The outside effect happened at least once for every event, in order per object.
        handled = [line.split() for line in probe_file.read_text().splitlines()]
        assert {int(i) for i, _ in handled} == set(ids)
        first_seen: dict[str, list[int]] = defaultdict(list)
        for event_id, object_id in handled:
            if int(event_id) not in first_seen[object_id]:
                first_seen[object_id].append(int(event_id))
        assert all(seq == sorted(seq) for seq in first_seen.values())

        assert_handled_exactly_once(db, ids)

        # Every event reached the webhook too (at least once).
        got = {r.headers["webhook-id"] for r in receiver.snapshot()}
        assert got == {f"evt_{i}" for i in ids}
    finally:
        receiver.stop()


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def test_several_workers_share_the_work_without_doing_it_twice(db, tmp_path):
    probe_file = tmp_path / "probe.log"
    probe_file.touch()
    receiver = Receiver().start()
    workers = []
    try:
        ids = emit_probes(db, receiver)
        workers = [start_worker(db.url, probe_file) for _ in range(3)]
        deadline = time.monotonic() + 180
        while outstanding(db) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outstanding(db) == 0
        assert_handled_exactly_once(db, ids)
        # At least once to the webhook; with no crash, in fact exactly once.
        got = Counter(r.headers["webhook-id"] for r in receiver.snapshot())
        assert got == Counter({f"evt_{i}": 1 for i in ids})
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(10)
        receiver.stop()
