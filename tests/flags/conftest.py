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


def engine(db, app: str, env: str) -> Engine:
    """The environment's rule set as an SDK would get it now, compiled."""
    with db.transaction(write=False) as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        found = service.get_app(ctx, app)
        return Engine(service.ruleset(session, found, service.get_environment(ctx, found, env)))


def evaluate(db, app: str, env: str, flag: str, context: dict):
    return engine(db, app, env).evaluate(flag, context)
