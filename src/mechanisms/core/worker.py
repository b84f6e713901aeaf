"""The worker: a reconcile loop, not a pile of timers.

Each tick asks the database what is due and moves each item forward in its own
transaction, with optimistic concurrency, so that a crash at any point loses
nothing (the next tick finds the same work still due) and several workers on one
PostgreSQL database never move the same item twice.

Mechanisms plug in with ``register``: a ``Reconciler`` names a query for what is
due and a step that advances one item.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session

from mechanisms.core import audit_anchor, events, outbound, signin, webhooks
from mechanisms.core.clock import Clock, SystemClock
from mechanisms.core.config import Settings, get_settings
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.errors import StaleState
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Webhook

log = logging.getLogger("mechanisms.worker")
WORKER = system_principal("worker")


class Job(Protocol):
    name: str

    def run(self, worker: Worker) -> int:
        """Do a bounded amount of due work; return how many items moved."""


@dataclass(frozen=True)
class Reconciler:
    """What is due (a read) and how to move one item (a write, in its own transaction).

    ``advance`` must re-check that the item is still due and claim it with a
    conditional update (raise ``StaleState`` when another worker moved it first)."""

    name: str
    find_due: Callable[[Session, datetime, int], Sequence[Hashable]]
    advance: Callable[[Ctx, Hashable], None]

    def run(self, worker: Worker) -> int:
        now = worker.clock.now()
        with worker.db.transaction(write=False) as session:
            keys = list(self.find_due(session, now, worker.settings.worker_batch))
        moved = 0
        for key in keys:
            try:
                with worker.db.transaction() as session:
                    self.advance(Ctx(session, WORKER, worker.clock.now()), key)
                moved += 1
            except StaleState:
                continue
            except Exception:
                log.exception("%s: advancing %r failed; it stays due", self.name, key)
        return moved


_registry: dict[str, Job] = {}


def register(job: Job) -> Job:
    _registry[job.name] = job
    return job


def registered() -> list[Job]:
    return list(_registry.values())


class FanOut:
    name = "events.fan_out"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            return events.fan_out(session, worker.clock.now(), worker.settings.worker_batch)


class Deliver:
    """Deliver due event deliveries: handlers inside a transaction, webhooks over HTTP
    outside any transaction (a slow receiver must not hold database locks)."""

    name = "events.deliver"

    def run(self, worker: Worker) -> int:
        now = worker.clock.now()
        with worker.db.transaction() as session:
            due = events.due_delivery_ids(session, now, worker.settings.worker_batch)
            lease = timedelta(seconds=worker.settings.worker_lease_seconds)
            claimed = [
                (i, v) for i in due if (v := events.claim(session, i, now, lease)) is not None
            ]
        if not claimed:
            return 0
        handler_work, webhook_work = [], []
        with worker.db.transaction(write=False) as session:
            for delivery_id, version in claimed:
                delivery, message = events.load_message(session, delivery_id)
                if delivery.target.startswith(events.HANDLER_PREFIX):
                    handler_work.append((delivery_id, version, delivery.target, message))
                else:
                    hook = session.get(
                        Webhook, int(delivery.target.removeprefix(events.WEBHOOK_PREFIX))
                    )
                    webhook_work.append((delivery_id, version, hook, message))
        for item in handler_work:
            self._run_handler(worker, *item)
        if webhook_work:
            results = list(worker.pool.map(lambda w: self._send(worker, *w), webhook_work))
            for (delivery_id, version, _hook, _msg), result in zip(
                webhook_work, results, strict=True
            ):
                self._settle(worker, delivery_id, version, result)
        return len(claimed)

    @staticmethod
    def _run_handler(
        worker: Worker, delivery_id: int, version: int, target: str, message: events.EventMessage
    ) -> None:
        name = target.removeprefix(events.HANDLER_PREFIX)
        subscriber = events.subscribers().get(name)
        try:
            with worker.db.transaction() as session:
                if subscriber is None:
                    raise LookupError(f"no subscriber named {name!r} is registered in this process")
                subscriber.handler(Ctx(session, WORKER, worker.clock.now()), message)
                # The handler's writes commit only together with "delivered", and only if
                # this worker still holds the lease: that makes them happen exactly once.
                if not events.mark_delivered(session, delivery_id, version, worker.clock.now()):
                    raise StaleState("another worker took this delivery over")
        except StaleState:
            return
        except Exception as exc:
            log.warning("handler %s failed on event %s: %s", name, message.id, exc)
            with worker.db.transaction() as session:
                events.mark_failed(
                    session,
                    delivery_id,
                    version,
                    worker.clock.now(),
                    f"{type(exc).__name__}: {exc}",
                    worker.settings.webhook_max_attempts,
                )

    @staticmethod
    def _send(
        worker: Worker,
        _delivery_id: int,
        _version: int,
        hook: Webhook | None,
        message: events.EventMessage,
    ) -> webhooks.SendResult:
        if hook is None or not hook.active:
            return webhooks.SendResult(False, None, "the webhook was deleted or disabled")
        return webhooks.send(worker.http, hook, message)

    @staticmethod
    def _settle(
        worker: Worker, delivery_id: int, version: int, result: webhooks.SendResult
    ) -> None:
        with worker.db.transaction() as session:
            now = worker.clock.now()
            if result.ok:
                events.mark_delivered(session, delivery_id, version, now, result.status_code)
            else:
                events.mark_failed(
                    session,
                    delivery_id,
                    version,
                    now,
                    result.error or "failed",
                    worker.settings.webhook_max_attempts,
                    result.status_code,
                )


class AuditCheckpoints:
    """Every MECH_AUDIT_CHECKPOINT_MINUTES, append a signed checkpoint of the audit head to
    MECH_AUDIT_CHECKPOINT_FILE (when both it and a signing key are configured). Several
    workers may each append one: a checkpoint more proves the same thing."""

    name = "audit.checkpoint"

    def __init__(self) -> None:
        # When this process last found or wrote a checkpoint in each file: the file is read
        # once, not on every tick.
        self._last_at: dict[Path, datetime | None] = {}

    def run(self, worker: Worker) -> int:
        settings = worker.settings
        if not settings.audit_checkpoint_file:
            return 0
        path = Path(settings.audit_checkpoint_file)
        now = worker.clock.now()
        if path not in self._last_at:
            previous = audit_anchor.last(path)
            self._last_at[path] = previous.at if previous else None
        last_at = self._last_at[path]
        if last_at is not None and now - last_at < timedelta(
            minutes=settings.audit_checkpoint_minutes
        ):
            return 0
        key = audit_anchor.signing_key(settings)
        if key is None:
            log.warning("audit checkpoints are configured but no signing key is")
            return 0
        with worker.db.transaction(write=False) as session:
            checkpoint = audit_anchor.take(session, key, now)
        audit_anchor.append(path, checkpoint)
        self._last_at[path] = now
        return 1


class ForgetSigninFailures:
    """Hourly, drop sign-in throttle counters nobody needs any more."""

    name = "signin.forget"
    every = timedelta(hours=1)

    def __init__(self) -> None:
        self._last_run: datetime | None = None

    def run(self, worker: Worker) -> int:
        now = worker.clock.now()
        if self._last_run is not None and now - self._last_run < self.every:
            return 0
        self._last_run = now
        with worker.db.transaction() as session:
            signin.forget_stale(session, now)
        # Cleaning is never a backlog to drain at once.
        return 0


CORE_JOBS: list[Job] = [FanOut(), Deliver(), AuditCheckpoints(), ForgetSigninFailures()]


class Worker:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        settings: Settings | None = None,
        jobs: list[Job] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self.settings = settings or get_settings()
        self._jobs = jobs
        self.http = outbound.client(
            self.settings.webhook_timeout_seconds, outbound.allowance(self.settings)
        )
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")
        self.stop_event = threading.Event()

    @property
    def jobs(self) -> list[Job]:
        return self._jobs if self._jobs is not None else [*CORE_JOBS, *registered()]

    def tick(self) -> int:
        """One pass over every job; returns how many items moved."""
        moved = 0
        for job in self.jobs:
            try:
                moved += job.run(self)
            except Exception:
                log.exception("job %s failed this tick", job.name)
        return moved

    def run_until_idle(self, max_ticks: int = 1000) -> int:
        """Tick until nothing is due (tests and the CLI's one-shot mode)."""
        total = 0
        for _ in range(max_ticks):
            moved = self.tick()
            total += moved
            if moved == 0:
                break
        return total

    def run_forever(self) -> None:
        log.info("worker started")
        while not self.stop_event.is_set():
            moved = self.tick()
            # Busy: go again at once (a backlog drains fast). Idle: wait for the next tick.
            if moved == 0:
                self.stop_event.wait(self.settings.worker_tick_seconds)
        log.info("worker stopped")

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()
