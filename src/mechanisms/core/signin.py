"""Sign-in with password guessing throttled per client address and per account.

Three counters of failed sign-ins, kept in the database so that every replica shares them:

- ``addr:<address>`` — everything one client address tried (password spraying across many
  accounts);
- ``acct:<user>@<address>`` — one account from one address (guessing one password);
- ``user:<user>`` — one account from addresses where it never signed in successfully
  (guessing spread over many addresses).

Each counter allows some failures for free, then locks for a time that doubles with each
further failure, capped at ``MAX_LOCK``; counts are forgotten a day after the last failure.
A lock never keeps a person out for long or from everywhere: the per-account locks only
apply to the attacker's own address or to addresses the account never signed in from, so
the person can still sign in from where they did before, and every lock ends within
``MAX_LOCK`` of the last failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mechanisms.core import accounts, audit
from mechanisms.core.context import Ctx
from mechanisms.core.errors import NotAuthenticated
from mechanisms.core.tables import SigninThrottle

# Failures each counter allows before its first lock.
FREE_FAILURES = {"addr": 50, "acct": 5, "user": 20}
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=24)
# An address where the account signed in stays known this long after the last sign-in.
KNOWN_FOR = timedelta(days=180)
MAX_ADDRESS_LENGTH = 100


# --- the policy (pure) --------------------------------------------------------------


def lock_after(kind: str, failures: int) -> timedelta | None:
    """How long a counter locks once it has seen ``failures`` failures."""
    over = failures - FREE_FAILURES[kind]
    if over < 0:
        return None
    # Capping the exponent first keeps the arithmetic small for any count.
    return min(FIRST_LOCK * 2 ** min(over, 16), MAX_LOCK)


def throttle_keys(username: str, address: str, known_address: bool) -> dict[str, str]:
    keys = {"addr": f"addr:{address}", "acct": f"acct:{username}@{address}"}
    if not known_address:
        keys["user"] = f"user:{username}"
    return keys


def known_key(username: str, address: str) -> str:
    return f"known:{username}@{address}"


# --- storage ------------------------------------------------------------------------


@dataclass
class Attempt:
    """The outcome of a sign-in attempt: signed in, refused, or refused without a look
    at the password because a counter is locked (``retry_after`` seconds)."""

    cookie: str | None = None
    signed: accounts.SignedIn | None = None
    retry_after: int | None = None


def _locked(session: Session, keys: list[str]) -> list[SigninThrottle]:
    # FOR UPDATE serialises attempts on the same counters on PostgreSQL, so concurrent
    # guesses cannot all read a count below the limit.
    return list(
        session.execute(
            select(SigninThrottle)
            .where(SigninThrottle.key.in_(keys))
            .order_by(SigninThrottle.key)
            .with_for_update()
        ).scalars()
    )


def _ensure_rows(session: Session, keys: list[str], now: datetime) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(SigninThrottle)
        .values([{"key": key, "failures": 0, "updated_at": now} for key in keys])
        .on_conflict_do_nothing(index_elements=["key"])
    )


def _is_known(session: Session, username: str, address: str) -> bool:
    return (
        session.execute(
            select(SigninThrottle.id).where(SigninThrottle.key == known_key(username, address))
        ).first()
        is not None
    )


def _wait(session: Session, keys: dict[str, str], now: datetime) -> int | None:
    ends = [
        row.locked_until
        for row in _locked(session, list(keys.values()))
        if row.locked_until is not None and row.locked_until > now
    ]
    return math.ceil((max(ends) - now).total_seconds()) if ends else None


def _count_failure(session: Session, keys: dict[str, str], now: datetime) -> int:
    """Count one failure on every counter; returns the longest lock it started (seconds)."""
    _ensure_rows(session, list(keys.values()), now)
    kinds = {key: kind for kind, key in keys.items()}
    longest = 0
    for row in _locked(session, list(keys.values())):
        if now - row.updated_at >= FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.updated_at = now
        lock = lock_after(kinds[row.key], row.failures)
        if lock is not None:
            row.locked_until = now + lock
            longest = max(longest, int(lock.total_seconds()))
    session.flush()
    return longest


def _count_success(session: Session, username: str, address: str, now: datetime) -> None:
    session.execute(
        delete(SigninThrottle).where(SigninThrottle.key == f"acct:{username}@{address}")
    )
    key = known_key(username, address)
    _ensure_rows(session, [key], now)
    for row in _locked(session, [key]):
        row.updated_at = now
    session.flush()


def forget_stale(session: Session, now: datetime) -> int:
    """Delete counters a day after their last failure (every lock has ended by then) and
    known addresses long unused, so an attacker's many addresses and names do not pile up."""
    known = SigninThrottle.key.startswith("known:")
    result = session.execute(
        delete(SigninThrottle).where(
            or_(
                and_(~known, SigninThrottle.updated_at < now - FORGET_AFTER),
                and_(known, SigninThrottle.updated_at < now - KNOWN_FOR),
            )
        )
    )
    return result.rowcount or 0


def client_address(address: str | None) -> str:
    return (address or "unknown")[:MAX_ADDRESS_LENGTH]


def sign_in(ctx: Ctx, username: str, password: str, address: str, lifetime: timedelta) -> Attempt:
    """Check a password unless a counter is locked; count and audit a failure. The failure
    is returned rather than raised, so that its count and audit record are committed."""
    name = username.strip().lower().replace("\x00", "\ufffd")
    keys = throttle_keys(name, address, _is_known(ctx.session, name, address))
    wait = _wait(ctx.session, keys, ctx.now)
    if wait is not None:
        return Attempt(retry_after=wait)
    try:
        cookie, signed = accounts.login(ctx, username, password, lifetime)
    except NotAuthenticated:
        locked = _count_failure(ctx.session, keys, ctx.now)
        audit.record(
            ctx,
            "user.login_failed",
            "signin",
            name,
            details={"address": address, "locked_seconds": locked},
        )
        return Attempt()
    _count_success(ctx.session, name, address, ctx.now)
    return Attempt(cookie=cookie, signed=signed)
