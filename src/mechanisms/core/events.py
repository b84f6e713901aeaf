"""Domain events: the outbox, in-process subscribers, and at-least-once delivery.

``emit`` writes an event in the caller's transaction, so an event exists if and
only if the change it announces was committed. The worker then fans each event
out into one delivery per subscriber (in-process handlers and webhooks) and
delivers them: at least once, and in event order per (subscriber, object).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from mechanisms.core.context import Ctx
from mechanisms.core.db import bulk_insert, canonical_json
from mechanisms.core.tables import Delivery, Event, Webhook

log = logging.getLogger(__name__)

HANDLER_PREFIX = "handler:"
WEBHOOK_PREFIX = "webhook:"
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class EventMessage:
    """What a subscriber receives: a committed event, detached from the session."""

    id: int
    type: str
    object_type: str
    object_id: str
    payload: dict[str, Any]
    actor: str
    occurred_at: datetime

    @classmethod
    def of(cls, row: Event) -> EventMessage:
        return cls(
            row.id,
            row.type,
            row.object_type,
            row.object_id,
            row.payload,
            row.actor,
            row.occurred_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "actor": self.actor,
            "occurred_at": self.occurred_at.isoformat(),
            "payload": self.payload,
        }


Handler = Callable[[Ctx, EventMessage], None]


@dataclass(frozen=True)
class Subscriber:
    name: str
    patterns: tuple[str, ...]
    handler: Handler = field(compare=False)

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)


_subscribers: dict[str, Subscriber] = {}


def subscribe(name: str, *patterns: str) -> Callable[[Handler], Handler]:
    """Register an in-process subscriber. Handlers run inside the transaction that marks the
    delivery done, so their database writes happen exactly once; anything else they do
    (mail, HTTP) must be idempotent, because a crash can deliver an event twice."""
    if not patterns:
        raise ValueError("a subscriber needs at least one event type pattern")

    def register(handler: Handler) -> Handler:
        _subscribers[name] = Subscriber(name, tuple(patterns), handler)
        return handler

    return register


def subscribers() -> dict[str, Subscriber]:
    return dict(_subscribers)


def unsubscribe(name: str) -> None:
    _subscribers.pop(name, None)


def webhook_wants(webhook: Webhook, event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in webhook.event_types)


def emit(
    ctx: Ctx, event_type: str, object_type: str, object_id: Any, payload: dict[str, Any]
) -> Event:
    row = Event(
        type=event_type,
        object_type=object_type,
        object_id=str(object_id),
        payload=json.loads(canonical_json(payload)),
        actor=ctx.principal.actor,
        occurred_at=ctx.now,
        fanned_out=False,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def address_to_webhook(session: Session, event: Event, webhook_id: int, now: datetime) -> bool:
    """Deliver ``event`` to one more webhook: one that an object names as its own receiver
    although its event types do not ask for this type. A webhook whose types ask for it
    gets it from the fan-out (once). Returns whether a delivery was added."""
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or not webhook.active or webhook_wants(webhook, event.type):
        return False
    session.add(
        Delivery(
            event_id=event.id,
            target=WEBHOOK_PREFIX + str(webhook.id),
            object_key=f"{event.object_type}:{event.object_id}",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            version=0,
        )
    )
    session.flush()
    return True


@dataclass(frozen=True)
class Emitted:
    """One event for ``emit_many``: the arguments ``emit`` takes."""

    type: str
    object_type: str
    object_id: Any
    payload: dict[str, Any]


def emit_many(ctx: Ctx, emitted: Sequence[Emitted]) -> int:
    """Write many events to the outbox in order, as that many ``emit`` calls would, with
    bulk INSERTs and no ORM objects. Returns how many."""
    rows = [
        {
            "type": e.type,
            "object_type": e.object_type,
            "object_id": str(e.object_id),
            "payload": json.loads(canonical_json(e.payload)),
            "actor": ctx.principal.actor,
            "occurred_at": ctx.now,
            "fanned_out": False,
        }
        for e in emitted
    ]
    if rows:
        ctx.session.flush()  # earlier events of this transaction keep their place
    bulk_insert(ctx.session, Event.__table__, rows)
    return len(rows)


def fan_out(session: Session, now: datetime, limit: int) -> int:
    """Turn new events into one pending delivery per interested subscriber."""
    events = list(
        session.execute(
            select(Event)
            .where(Event.fanned_out.is_(False))
            .order_by(Event.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not events:
        return 0
    webhooks = list(session.execute(select(Webhook).where(Webhook.active.is_(True))).scalars())
    handlers = list(_subscribers.values())
    for event in events:
        targets = [HANDLER_PREFIX + s.name for s in handlers if s.wants(event.type)]
        targets += [WEBHOOK_PREFIX + str(w.id) for w in webhooks if webhook_wants(w, event.type)]
        for target in targets:
            session.add(
                Delivery(
                    event_id=event.id,
                    target=target,
                    object_key=f"{event.object_type}:{event.object_id}",
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    version=0,
                )
            )
        event.fanned_out = True
    session.flush()
    return len(events)


def due_delivery_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Pending deliveries whose time has come and that no earlier delivery of the same object
    to the same subscriber is still waiting for (this keeps per-object order)."""
    earlier = aliased(Delivery)
    blocked = exists().where(
        and_(
            earlier.target == Delivery.target,
            earlier.object_key == Delivery.object_key,
            earlier.event_id < Delivery.event_id,
            earlier.status == "pending",
        )
    )
    query = (
        select(Delivery.id)
        .where(
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now),
            ~blocked,
        )
        .order_by(Delivery.event_id)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def claim(session: Session, delivery_id: int, now: datetime, lease: timedelta) -> int | None:
    """Take a lease on one delivery; returns its new version, or None if another worker won.

    A worker that dies holding a lease simply lets it run out; then the delivery is due
    again. The lease must outlast the slowest attempt, or two workers may both try it."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == "pending",
            or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now),
        )
        .values(
            lease_until=now + lease,
            version=Delivery.version + 1,
            attempts=Delivery.attempts + 1,
        )
        .returning(Delivery.version)
    )
    return result.scalar_one_or_none()


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with up to 10 % jitter so failing receivers are not hit in step."""
    delay = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    jitter = (rng or random).uniform(0, 0.1)
    return delay * (1 + jitter)


def mark_delivered(
    session: Session, delivery_id: int, version: int, now: datetime, status_code: int | None = None
) -> bool:
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.version == version)
        .values(
            status="delivered",
            delivered_at=now,
            lease_until=None,
            last_error=None,
            last_status_code=status_code,
        )
    )
    return result.rowcount == 1


def mark_failed(
    session: Session,
    delivery_id: int,
    version: int,
    now: datetime,
    error: str,
    max_attempts: int,
    status_code: int | None = None,
) -> str | None:
    """Schedule a retry, or dead-letter the delivery once it has used up its attempts."""
    row = session.get(Delivery, delivery_id)
    if row is None or row.version != version:
        return None
    row.last_error = error[:2000]
    row.last_status_code = status_code
    row.lease_until = None
    if row.attempts >= max_attempts:
        row.status = "dead"
    else:
        row.next_attempt_at = now + backoff(row.attempts)
    session.flush()
    return row.status


def load_message(session: Session, delivery_id: int) -> tuple[Delivery, EventMessage]:
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    event = session.get(Event, delivery.event_id)
    assert event is not None
    return delivery, EventMessage.of(event)
