"""Issue #14, item 13: password guessing is throttled per account and per client address,
a lockout cannot keep a person out for long or from where they sign in, failed sign-ins
are audited, and the answer's time does not tell whether a username exists. Each test
performs the attack through the login form, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import text

from mechanisms.app import attach, create_app
from mechanisms.core import accounts, signin
from mechanisms.core.config import Settings
from mechanisms.core.context import Ctx
from mechanisms.core.errors import NotAuthenticated
from mechanisms.core.identity import ANONYMOUS, system_principal
from mechanisms.core.worker import ForgetSigninFailures, Worker
from tests.conftest import PASSWORD

ATTACKER = ("198.51.100.66", 40000)
ADA_HOME = ("203.0.113.10", 40000)
WRONG = "not the password"


@pytest.fixture
def browser(app, db, clock) -> Iterator:
    """Browsers at given addresses, all talking to the test app on this test's database."""
    attach(app, db, clock)
    opened: list[TestClient] = []

    def at(address: tuple[str, int]) -> TestClient:
        client = TestClient(app, raise_server_exceptions=False, client=address)
        opened.append(client.__enter__())
        return client

    yield at
    for client in opened:
        client.__exit__(None, None, None)


def submit(client: TestClient, username: str, password: str, **headers: str):
    page = client.get("/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"username": username, "password": password, "login_csrf": login_csrf, "next": "/"},
        headers=headers,
        follow_redirects=False,
    )


def guess(client: TestClient, username: str, times: int, **headers: str) -> list[int]:
    return [submit(client, username, WRONG, **headers).status_code for _ in range(times)]


def failed_signins(db) -> list[dict]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor, object_id, details FROM audit_records "
                "WHERE action = 'user.login_failed' ORDER BY seq"
            )
        )
        return [
            {
                "actor": r[0],
                "username": r[1],
                "details": r[2] if isinstance(r[2], dict) else json.loads(r[2]),
            }
            for r in rows
        ]


def test_guessing_one_accounts_password_is_locked_out_then_let_in_again(browser, org, clock):
    attacker = browser(ATTACKER)
    free = signin.FREE_FAILURES["acct"]
    assert guess(attacker, "ada", free) == [401] * free
    refused = submit(attacker, "ada", WRONG)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == signin.FIRST_LOCK.total_seconds()
    assert "Too many failed sign-ins" in refused.text
    # While locked, even the right password is not checked: guessing gains nothing.
    locked = submit(attacker, "ada", PASSWORD)
    assert locked.status_code == 429 and "mech_session" not in attacker.cookies
    clock.advance(signin.FIRST_LOCK)
    assert submit(attacker, "ada", PASSWORD).status_code == 303


def test_the_lockout_grows_but_never_beyond_fifteen_minutes(browser, org, clock):
    attacker = browser(ATTACKER)
    waits = []
    for _ in range(20):
        assert guess(attacker, "ada", 1) == [401]
        refused = submit(attacker, "ada", WRONG)
        if refused.status_code == 429:
            waits.append(int(refused.headers["Retry-After"]))
            clock.advance(seconds=waits[-1])
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert max(waits) == signin.MAX_LOCK.total_seconds()


def test_an_attacker_elsewhere_cannot_lock_a_person_out(browser, org, clock):
    ada = browser(ADA_HOME)
    assert submit(ada, "ada", PASSWORD).status_code == 303
    attacker = browser(ATTACKER)
    # Enough to lock every per-account counter, from the attacker's address.
    guess(attacker, "ada", signin.FREE_FAILURES["user"] + 5)
    assert submit(attacker, "ada", PASSWORD).status_code == 429
    # Ada, from where she signed in before, is not affected.
    assert submit(browser(ADA_HOME), "ada", PASSWORD).status_code == 303


def test_guessing_spread_over_many_addresses_is_throttled_per_account(browser, org):
    for n in range(signin.FREE_FAILURES["user"]):
        assert guess(browser((f"198.51.100.{n + 1}", 1)), "leo", 1) == [401]
    fresh = browser(("198.51.100.200", 1))
    assert submit(fresh, "leo", PASSWORD).status_code == 429


def test_spraying_many_accounts_from_one_address_is_throttled(browser, org):
    attacker = browser(ATTACKER)
    for n in range(signin.FREE_FAILURES["addr"]):
        assert guess(attacker, f"user{n}", 1) == [401]
    assert submit(attacker, "vic", PASSWORD).status_code == 429


def test_a_forged_forwarded_for_header_does_not_escape_the_throttle(browser, org):
    """Without trusted proxies the socket peer is the client, whatever the request claims."""
    attacker = browser(ATTACKER)
    statuses = [
        submit(attacker, "ada", WRONG, **{"X-Forwarded-For": f"10.0.0.{n}"}).status_code
        for n in range(signin.FREE_FAILURES["acct"] + 1)
    ]
    assert statuses[-1] == 429


def test_a_trusted_proxy_names_the_client(db, clock, org):
    """Behind a proxy the admin trusts, its X-Forwarded-For is the client: one client
    locked out does not lock out the others behind the same proxy."""
    app = create_app(db, clock=clock, settings=Settings(trusted_proxies="203.0.113.1"))
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.1", 1)) as proxy:
        attacker = {"X-Forwarded-For": "198.51.100.66"}
        guess(proxy, "ada", signin.FREE_FAILURES["acct"], **attacker)
        assert submit(proxy, "ada", PASSWORD, **attacker).status_code == 429
        other = {"X-Forwarded-For": "192.0.2.44"}
        assert submit(proxy, "ada", PASSWORD, **other).status_code == 303
    assert {f["details"]["address"] for f in failed_signins(db)} == {"198.51.100.66"}


def test_failed_sign_ins_are_audited_without_the_password(browser, org, db):
    attacker = browser(ATTACKER)
    submit(attacker, "ada", "hunter2-secret")
    submit(attacker, "nobody-here", "hunter3-secret")
    failed = failed_signins(db)
    assert [(f["actor"], f["username"]) for f in failed] == [
        ("anonymous", "ada"),
        ("anonymous", "nobody-here"),
    ]
    assert all(f["details"]["address"] == ATTACKER[0] for f in failed)
    assert "secret" not in repr(failed)


def test_an_unknown_username_takes_as_long_as_a_wrong_password(db, clock, monkeypatch):
    # A hasher costly enough to measure (the suite's default one is nearly free).
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=2, memory_cost=16384))
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        accounts.create_user(ctx, "lena", password=PASSWORD)

    def answer_time(username: str) -> float:
        with db.transaction() as session:
            started = time.perf_counter()
            with pytest.raises(NotAuthenticated):
                accounts.login(
                    Ctx(session, ANONYMOUS, clock.now()), username, WRONG, timedelta(hours=1)
                )
            return time.perf_counter() - started

    answer_time("nobody")  # the dummy hash is made once, on first use
    known = statistics.median(answer_time("lena") for _ in range(5))
    unknown = statistics.median(answer_time("nobody") for _ in range(5))
    assert unknown > 0.6 * known, (unknown, known)


def test_the_worker_forgets_old_counters_but_not_known_addresses(browser, org, db, clock):
    """An attacker's many addresses and names do not pile up in the database."""
    assert submit(browser(ADA_HOME), "ada", PASSWORD).status_code == 303
    for n in range(3):
        guess(browser((f"198.51.100.{n + 1}", 1)), f"name{n}", 1)
    clock.advance(signin.FORGET_AFTER + timedelta(minutes=1))
    worker = Worker(db, clock=clock, settings=Settings(), jobs=[ForgetSigninFailures()])
    try:
        worker.tick()
    finally:
        worker.close()
    with db.engine.connect() as conn:
        keys = [r[0] for r in conn.execute(text("SELECT key FROM signin_throttle"))]
    assert keys == [f"known:ada@{ADA_HOME[0]}"]
