"""Domain events: written with the change, delivered at least once, in order per object,
to in-process subscribers and signed webhooks, with retries and a dead-letter state."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import standardwebhooks
from sqlalchemy import func, select

from mechanisms.core import audit, events, webhooks
from mechanisms.core import db as db_module
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Delivery, Event
from mechanisms.core.worker import Worker
from tests.conftest import RECEIVER_SETTINGS
from tests.support.receiver import Receiver

SETTINGS = RECEIVER_SETTINGS

# The receivers listen on this machine, which the server refuses unless allowed.
pytestmark = pytest.mark.usefixtures("local_receivers_allowed")


@pytest.fixture
def worker(db, clock) -> Iterator[Worker]:
    w = Worker(db, clock=clock, settings=SETTINGS)
    yield w
    w.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


class Recorder(list):
    """What the test subscriber handled, as (event id, object id); ``failing`` holds the
    event ids it refuses, to simulate a subscriber that is down."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[int] = set()


@pytest.fixture
def handled() -> Iterator[Recorder]:
    """A subscriber to test.* that records what it got and writes an audit record."""
    recorder = Recorder()

    @events.subscribe("test-recorder", "test.*")
    def record(ctx: Ctx, message: events.EventMessage) -> None:
        if message.id in recorder.failing:
            raise RuntimeError(f"refusing event {message.id}")
        recorder.append((message.id, message.object_id))
        audit.record(ctx, "test.handled", "event", message.id)

    yield recorder
    events.unsubscribe("test-recorder")


def emit(db, clock, event_type: str, object_id: str, **payload: object) -> int:
    with db.transaction() as session:
        return events.emit(
            Ctx(session, system_principal("test"), clock.now()),
            event_type,
            "thing",
            object_id,
            payload,
        ).id


def statuses(db) -> dict[str, int]:
    with db.transaction(write=False) as session:
        return dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )


def test_an_event_exists_only_if_its_change_committed(db, clock):
    with pytest.raises(RuntimeError), db.transaction() as session:
        events.emit(Ctx(session, system_principal("test"), clock.now()), "test.x", "thing", "1", {})
        raise RuntimeError("the change failed")
    with db.transaction(write=False) as session:
        assert session.execute(select(func.count()).select_from(Event)).scalar_one() == 0


def test_subscribers_get_each_event_once_with_their_writes(db, clock, worker, handled):
    ids = [emit(db, clock, "test.created", str(n)) for n in range(5)]
    emit(db, clock, "other.created", "9")  # nobody subscribes to this one
    worker.run_until_idle()
    assert [i for i, _ in handled] == ids
    assert statuses(db) == {"delivered": 5}
    with db.transaction(write=False) as session:
        assert len(audit.browse(session, audit.AuditFilter(action="test.handled"))) == 5
        assert audit.verify(session).ok
    worker.run_until_idle()
    assert len(handled) == 5  # nothing delivered twice


def test_order_is_kept_per_object_while_an_earlier_event_is_retried(db, clock, worker, handled):
    first = emit(db, clock, "test.changed", "A", step=1)
    second = emit(db, clock, "test.changed", "A", step=2)
    other = emit(db, clock, "test.changed", "B", step=1)
    handled.failing.add(first)
    worker.run_until_idle()
    # B goes ahead; A's second event waits behind its failing first.
    assert handled == [(other, "B")]
    handled.failing.clear()
    clock.advance(minutes=1)
    worker.run_until_idle()
    assert handled == [(other, "B"), (first, "A"), (second, "A")]


def test_failures_back_off_then_dead_letter_and_can_be_retried(db, clock, worker, handled, run):
    event_id = emit(db, clock, "test.broken", "X")
    handled.failing.add(event_id)
    waits = []
    for _ in range(SETTINGS.webhook_max_attempts):
        worker.run_until_idle()
        with db.transaction(write=False) as session:
            delivery = session.execute(select(Delivery)).scalar_one()
        waits.append(delivery.next_attempt_at - clock.now())
        clock.advance(hours=2)
    assert delivery.status == "dead"
    assert "refusing event" in delivery.last_error
    # Exponential: each wait about twice the one before (up to 10 % jitter).
    assert timedelta(seconds=5) <= waits[0] <= timedelta(seconds=5.5)
    assert timedelta(seconds=10) <= waits[1] <= timedelta(seconds=11)
    handled.failing.clear()
    run(webhooks.retry_dead, delivery.id)
    worker.run_until_idle()
    assert handled == [(event_id, "X")]
    assert statuses(db) == {"delivered": 1}


def test_webhooks_are_signed_to_the_standard_webhooks_spec(db, clock, worker, receiver, run):
    hook, secret = run(webhooks.create, receiver.url, ["test.*"], "probe")
    ids = [emit(db, clock, "test.signed", str(n), n=n) for n in range(3)]
    emit(db, clock, "elsewhere.ignored", "1")
    worker.run_until_idle()
    got = receiver.snapshot()
    assert len(got) == 3
    verifier = standardwebhooks.Webhook(secret)
    bodies = [verifier.verify(r.body, r.headers) for r in got]
    assert sorted(b["data"]["id"] for b in bodies) == ids
    assert {b["type"] for b in bodies} == {"test.signed"}
    assert {r.headers["webhook-id"] for r in got} == {f"evt_{i}" for i in ids}
    # A forged body does not verify.
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verifier.verify(got[0].body.replace(b"signed", b"forged"), got[0].headers)


def test_a_failing_receiver_is_retried_until_it_recovers(db, clock, worker, receiver, run):
    run(webhooks.create, receiver.url, ["*"])
    emit(db, clock, "test.retry", "1")
    receiver.status = 503
    worker.run_until_idle()
    with db.transaction(write=False) as session:
        delivery = session.execute(select(Delivery)).scalar_one()
    assert (delivery.status, delivery.last_status_code, delivery.attempts) == ("pending", 503, 1)
    worker.run_until_idle()
    assert len(receiver.snapshot()) == 1  # not before its backoff is over
    receiver.status = 204
    clock.advance(seconds=6)
    worker.run_until_idle()
    assert len(receiver.snapshot()) == 2
    assert statuses(db) == {"delivered": 1}


def test_an_unreachable_receiver_dead_letters(db, clock, worker, run):
    run(webhooks.create, "http://127.0.0.1:9/nothing-listens-here", ["*"])
    emit(db, clock, "test.lost", "1")
    for _ in range(SETTINGS.webhook_max_attempts):
        worker.run_until_idle()
        clock.advance(hours=2)
    listed = run(webhooks.list_deliveries, "dead")
    assert len(listed) == 1
    assert "ConnectError" in listed[0]["last_error"]


def test_disabled_webhooks_get_no_new_events(db, clock, worker, receiver, run):
    hook, _ = run(webhooks.create, receiver.url, ["*"])
    run(webhooks.set_active, hook.id, False)
    emit(db, clock, "test.quiet", "1")
    worker.run_until_idle()
    assert receiver.snapshot() == []


def test_a_second_worker_never_moves_the_same_delivery(db, clock, handled):
    for n in range(40):
        emit(db, clock, "test.race", str(n % 7))
    a, b = Worker(db, clock=clock, settings=SETTINGS), Worker(db, clock=clock, settings=SETTINGS)
    threads = [threading.Thread(target=w.run_until_idle) for w in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    a.close()
    b.close()
    assert sorted(i for i, _ in handled) == sorted(set(i for i, _ in handled))
    assert len(handled) == 40
    per_object: dict[str, list[int]] = {}
    for event_id, object_id in handled:
        per_object.setdefault(object_id, []).append(event_id)
    assert all(ids == sorted(ids) for ids in per_object.values())


def test_message_body_is_json_with_type_and_data(db, clock):
    event_id = emit(db, clock, "test.body", "7", answer=42)
    with db.transaction(write=False) as session:
        message = events.EventMessage.of(session.get(Event, event_id))
    body = json.loads(webhooks.message_body(message))
    assert body["type"] == "test.body"
    assert body["data"]["payload"] == {"answer": 42}
    assert body["data"]["object_id"] == "7"


def test_events_emitted_in_bulk_are_delivered_in_order_like_single_ones(
    db, org, worker, monkeypatch
):
    monkeypatch.setattr(db_module, "_ROWS_PER_INSERT", 7)  # several INSERTs on SQLite
    seen: list[events.EventMessage] = []
    events.subscribe("test.bulk", "bulk.*")(lambda _ctx, message: seen.append(message))
    try:
        with db.transaction() as session:
            ctx = Ctx(session, system_principal("test"), worker.clock.now())
            events.emit(ctx, "bulk.first", "thing", "a", {"n": 0})
            events.emit_many(
                ctx, [events.Emitted("bulk.moved", "thing", "a", {"n": i}) for i in range(1, 31)]
            )
            events.emit(ctx, "bulk.last", "thing", "a", {"n": 31})
        worker.run_until_idle()
    finally:
        events.unsubscribe("test.bulk")
    assert [m.payload["n"] for m in seen] == list(range(32))
    assert seen[0].type == "bulk.first" and seen[-1].type == "bulk.last"
    assert {m.actor for m in seen} == {"system:test"}
