"""Property-based run of every operation in the app's own OpenAPI description.

Schemathesis generates valid and invalid requests for each operation and checks that
the app never answers with a server error and that every answer is what the OpenAPI
description promises: a documented status code, the documented content type, a body
that matches the documented schema, and the documented headers. Path parameters point
at real objects about half the time, so the success paths run too, not only the 404s.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import update

from mechanisms.app import attach, create_app
from mechanisms.core import accounts, webhooks
from mechanisms.core.clock import ManualClock
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import ApiToken, Delivery, Event
from tests.conftest import PG_ENV


def negative_data_rejected(ctx, response, case):  # noqa: ANN001, ANN201 - schemathesis' check
    """Schemathesis' check that invalid data is refused, also counting a 413: a generated
    body past the server's size limit is refused before anyone reads it."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejected,
    unsupported_method,
]


def add_delivery(db: Database, clock: ManualClock, status: str, target: str) -> int:
    """A delivery in the given state, written directly: the worker is not under test here."""
    now = clock.now()
    with db.transaction() as session:
        event = Event(
            type="identity.user_created",
            object_type="user",
            object_id="1",
            payload={"username": "ada"},
            actor="test",
            occurred_at=now,
            fanned_out=True,
        )
        session.add(event)
        session.flush()
        delivery = Delivery(
            event_id=event.id,
            target=target,
            object_key="user:1",
            status=status,
            attempts=8 if status == "dead" else 1,
            next_attempt_at=now,
            last_error="HTTP 500" if status == "dead" else None,
            last_status_code=500 if status == "dead" else 200,
            delivered_at=now if status == "delivered" else None,
        )
        session.add(delivery)
        session.flush()
        return delivery.id


# One backend, to keep the run short: PostgreSQL when configured, because it is the
# stricter one (it refuses 32-bit overflows, NUL bytes and bad encodings that SQLite
# stores), else SQLite.
FUZZ_BACKEND = "postgresql" if os.environ.get(PG_ENV) else "sqlite"


@pytest.fixture(params=[FUZZ_BACKEND])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class Fuzzed:
    def __init__(self, db: Database, token: str, token_id: int) -> None:
        self.db = db
        self.headers = {"Authorization": f"Bearer {token}"}
        self.token_id = token_id

    def keep_token_usable(self) -> None:
        # The fuzzer may well revoke the very token it authenticates with (ids are small
        # integers); un-revoke it so every example after that still gets past sign-in.
        with self.db.transaction() as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == self.token_id).values(revoked_at=None)
            )


@pytest.fixture
def fuzzed(db: Database, clock: ManualClock, org) -> Fuzzed:
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        token, secret = accounts.create_token(ctx, "ada", "fuzzer", "admin")
        token_id = token.id
        webhooks.create(ctx, "https://hooks.example.com/mech", ["*"], "fuzz target")
    return Fuzzed(db, secret, token_id)


class CurrentApp:
    """The ASGI app schemathesis calls: forwards to the app of the running test.

    Schemathesis' fixture-based (lazy) schemas do not work with this pytest, so the
    schema is loaded once at import and each test points this proxy at its own app,
    which runs on that test's database."""

    def __init__(self) -> None:
        self.app: Any = None
        # Path parameter values that name existing objects, filled per test.
        self.real: dict[str, list[Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # Each test's app is created without a worker; nothing to start or stop.
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.app(scope, receive, send)


CURRENT = CurrentApp()
schema = schemathesis.openapi.from_dict(
    create_app(Database(f"sqlite:///{tempfile.gettempdir()}/mech-openapi-only.db")).openapi()
)
schema.app = CURRENT
# The test sends its own token; generated Authorization headers would only make
# "negative" cases that the token then makes valid again.
schema.config.generation.update(with_security_parameters=False)


@schema.hook
def flatmap_case(context, case):
    # Only valid (positive) cases: a path parameter generated to be invalid stays invalid.
    params = case.path_parameters or {}
    known = {n: CURRENT.real[n] for n in params if n in CURRENT.real}
    if not known or case.meta is None or case.meta.generation.mode.is_negative:
        return st.just(case)

    def pointing_at(ids: dict[str, Any]) -> Any:
        case.path_parameters = {**params, **ids}
        return case

    existing = st.fixed_dictionaries({n: st.sampled_from(v) for n, v in known.items()})
    return st.one_of(st.just(case), existing.map(pointing_at))


@pytest.fixture
def live(app: FastAPI, db: Database, clock: ManualClock, fuzzed: Fuzzed) -> Iterator[Fuzzed]:
    dead = add_delivery(db, clock, "dead", "webhook:1")
    pending = add_delivery(db, clock, "pending", "webhook:1")
    delivered = add_delivery(db, clock, "delivered", "handler:audit")
    with db.transaction(write=False) as session:
        token_ids = [t.id for t in session.query(ApiToken).all() if t.id != fuzzed.token_id]
    CURRENT.real = {
        "username": ["ada", "leo", "eve", "vic", "robot"],
        "slug": ["acme", "payments"],
        "token_id": token_ids,
        "webhook_id": [1],
        "delivery_id": [dead, pending, delivered],
    }
    attach(app, db, clock)
    CURRENT.app = app
    yield fuzzed
    CURRENT.app, CURRENT.real = None, {}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, live):
    live.keep_token_usable()
    case.call_and_validate(headers=live.headers, checks=CHECKS)


def test_every_operation_is_fuzzed(client):
    """A guard on the run above: it covers the whole API, machine endpoints included."""
    raw = client.get("/openapi.json").json()
    assert raw == schema.raw_schema
    operations = {(m.upper(), p) for p, ops in raw["paths"].items() for m in ops}
    assert len(operations) >= 20
    assert {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")} <= operations
    for path, ops in raw["paths"].items():
        if path.startswith("/api/"):
            for method, op in ops.items():
                assert {"401", "403", "404", "422"} <= set(op["responses"]), (method, path)
