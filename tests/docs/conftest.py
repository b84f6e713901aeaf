"""The acme org of the shared fixtures plus two more engineers of payments (rex, pia), and
a way to act as any of them the way a web session does."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal, system_principal

BODY = """# Cache the checkout page

## Why now

Checkout latency doubled in the peak season and customers abandon carts.

## Components affected and how

The checkout service gains a read-through cache in front of the catalog.

## Alternatives considered

A bigger database was discarded because it costs four times as much.

## Customer impact

Pages load in half the time.

## Decision

We cache; a two-way door.
"""


@pytest.fixture
def team(db, clock, org):
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        for name in ("rex", "pia"):
            accounts.create_user(ctx, name)
            accounts.set_membership(ctx, "payments", name, "engineer")
    return org


@pytest.fixture
def as_user(db) -> Callable[[str], Principal]:
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
