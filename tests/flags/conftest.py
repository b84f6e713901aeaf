"""Fixtures for the flags mechanism: an application with beta/gamma/prod owned by payments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal, system_principal
from mechanisms.core.worker import Worker
from mechanisms.flags import service
from mechanisms.flags.domain import Engine


@pytest.fixture
def checkout(org, run):
    run(service.create_app, "shop", "Shop", "payments")
    run(service.create_flag, "shop", "checkout-v2", description="the new checkout")
    return "shop"


@pytest.fixture
def as_user(db):
    """as_user("eve") → the principal of eve's web session."""
    from mechanisms.core import accounts

    def principal(username: str) -> Principal:
        with db.transaction(write=False) as session:
            user = accounts.find_user(session, username)
            return Principal(
                user_id=user.id,
                username=user.username,
                via="session",
                is_site_admin=user.is_site_admin,
            )

    return principal


@pytest.fixture
def worker(db, clock):
    w = Worker(db, clock=clock)
    yield w
    w.close()


def watched_alarm(ctx: Ctx, name: str, service_key: str = "checkout") -> None:
    """An ops alarm a deployment can watch, owned by payments; it keeps the state it is set
    to while its metric is silent (missing data ignored), so tests set it by hand."""
    from mechanisms.ops import alarms

    if not any(s.key == service_key for s in alarms.list_services(ctx)):
        alarms.create_service(ctx, service_key, service_key.title(), "payments")
    alarms.create_alarm(
        ctx,
        name,
        service_key,
        metric="api_latency_ms",
        match={"service": service_key},
        definition={
            "statistic": "p99",
            "comparison": "GreaterThanThreshold",
            "threshold": 800,
            "period_seconds": 60,
            "evaluation_periods": 3,
            "datapoints_to_alarm": 3,
            "treat_missing_data": "ignore",
        },
        severity=2,
    )


def engine(db, app: str, env: str) -> Engine:
    """The environment's rule set as an SDK would get it now, compiled."""
    with db.transaction(write=False) as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        found = service.get_app(ctx, app)
        return Engine(service.ruleset(session, found, service.get_environment(ctx, found, env)))


def evaluate(db, app: str, env: str, flag: str, context: dict):
    return engine(db, app, env).evaluate(flag, context)
