"""Shared fixtures: a migrated database per backend, per-test cleanup, a clock tests can
move, an app with a test client, and a small organisation with a token per role.

Service tests run on SQLite always and on PostgreSQL when MECH_TEST_DATABASE_URL
names a server; each run creates (and drops) its own PostgreSQL database.
Set MECH_FORBID_SKIPS=1 (CI does) to fail the run if any test was skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mechanisms.app import attach, create_app
from mechanisms.core import accounts, migrate
from mechanisms.core.audit import GENESIS_HASH, HEAD_ID
from mechanisms.core.clock import ManualClock
from mechanisms.core.config import Settings
from mechanisms.core.context import Ctx
from mechanisms.core.db import Base, Database
from mechanisms.core.identity import Principal, system_principal

# CI runs every property test with the same examples, so a failure there can be replayed.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

PG_ENV = "MECH_TEST_DATABASE_URL"
BACKENDS = ["sqlite", "postgresql"]


# --- databases ----------------------------------------------------------------------


def _create_pg_database(admin_url: str) -> str:
    name = f"mech_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'mech.db'}"}
    admin_url = os.environ.get(PG_ENV)
    if admin_url:
        urls["postgresql"] = _create_pg_database(admin_url)
    for url in urls.values():
        db = Database(url)
        migrate.upgrade(db)
        db.dispose()
    yield urls
    if admin_url:
        _drop_pg_database(admin_url, urls["postgresql"])


def backend_url(database_urls: dict[str, str], backend: str) -> str:
    if backend not in database_urls:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return database_urls[backend]


def wipe(db: Database) -> None:
    """Empty every table and reset the audit chain, so each test starts from nothing."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                conn.execute(text(f"DELETE FROM {name}"))
        conn.execute(
            text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (:id, 0, :h)"),
            {"id": HEAD_ID, "h": GENESIS_HASH},
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db(database_urls: dict[str, str], backend: str) -> Iterator[Database]:
    database = Database(backend_url(database_urls, backend))
    wipe(database)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(database_urls: dict[str, str]) -> Iterator[Database]:
    """For tests of interfaces, where the backend is not what is under test."""
    database = Database(database_urls["sqlite"])
    wipe(database)
    yield database
    database.dispose()


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """argon2 at its production cost makes every seeded user take ~100 ms; tests only need
    the same algorithm, not the same cost."""
    from argon2 import PasswordHasher

    original = accounts._hasher
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    accounts._hasher = original


# --- time and actors ----------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def run(db: Database, clock: ManualClock) -> Callable[..., object]:
    """run(fn, *args, as_=principal) calls a service in one committed unit of work."""

    def call(
        fn: Callable[..., object], *args: object, as_: Principal | None = None, **kwargs: object
    ) -> object:
        with db.transaction() as session:
            return fn(Ctx(session, as_ or system_principal("test"), clock.now()), *args, **kwargs)

    return call


@dataclass
class Org:
    """A small organisation: acme with a payments team, one person per role, a bot,
    and a token for each of them."""

    tokens: dict[str, str]

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


PEOPLE = {
    # username: (team, role, site admin)
    "ada": ("acme", "admin", True),
    "leo": ("acme", "leader", False),
    "eve": ("payments", "engineer", False),
    "vic": ("acme", "viewer", False),
}
PASSWORD = "correct horse battery"


def seed_org(db: Database, clock: ManualClock) -> Org:
    tokens = {}
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        accounts.create_team(ctx, "acme", "Acme")
        accounts.create_team(ctx, "payments", "Payments", parent="acme")
        for username, (team, role, admin) in PEOPLE.items():
            accounts.create_user(ctx, username, password=PASSWORD, is_site_admin=admin)
            accounts.set_membership(ctx, team, username, role)
            tokens[username] = accounts.create_token(ctx, username, "test", role)[1]
        accounts.create_user(ctx, "robot", is_bot=True)
        accounts.set_membership(ctx, "payments", "robot", "engineer")
        tokens["robot"] = accounts.create_token(ctx, "robot", "ci", "engineer")[1]
        # Vic's role is viewer anyway; this token is viewer-scoped too.
        tokens["vic-viewer-scope"] = accounts.create_token(ctx, "vic", "read", "viewer")[1]
        # Ada is an admin, but this token of hers may only read.
        tokens["ada-viewer-scope"] = accounts.create_token(ctx, "ada", "read", "viewer")[1]
    return Org(tokens)


@pytest.fixture
def org(db: Database, clock: ManualClock) -> Org:
    return seed_org(db, clock)


# --- the app ------------------------------------------------------------------------


TEST_SETTINGS = Settings(max_body_bytes=64_000)


@pytest.fixture(scope="session")
def app(database_urls: dict[str, str]) -> FastAPI:
    """One app for the whole run, as one serves a whole process in production; each test
    attaches it to its own database and clock. An app per test would prepare every route
    again (about a second each time) and leave thousands of them for the collector."""
    return create_app(Database(database_urls["sqlite"]), settings=TEST_SETTINGS)


@pytest.fixture
def client(app: FastAPI, db: Database, clock: ManualClock) -> Iterator[TestClient]:
    attach(app, db, clock)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# --- no silent skips in CI ----------------------------------------------------------

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MECH_FORBID_SKIPS") == "1" and _skipped:
        session.config._mech_skip_failure = True  # type: ignore[attr-defined]
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001
    if getattr(config, "_mech_skip_failure", False):
        terminalreporter.write_line(
            f"MECH_FORBID_SKIPS=1: {len(_skipped)} test(s) were skipped, which CI does not allow:",
            red=True,
        )
        for nodeid in _skipped[:50]:
            terminalreporter.write_line(f"  {nodeid}", red=True)


REPO_ROOT = Path(__file__).resolve().parent.parent


# --- outbound requests --------------------------------------------------------------

LOCAL_RECEIVERS = "127.0.0.1,::1,localhost"
# A worker for tests of deliveries to a local receiver: few, quick attempts.
RECEIVER_SETTINGS = Settings(
    webhook_max_attempts=3,
    worker_batch=50,
    webhook_timeout_seconds=5,
    outbound_allow=LOCAL_RECEIVERS,
)


@pytest.fixture
def local_receivers_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Lets the server send requests to this machine (the tests' Prometheus and webhook
    receivers), as a site administrator would with MECH_OUTBOUND_ALLOW: by default the
    server refuses loopback and private destinations."""
    from mechanisms.core.config import get_settings

    monkeypatch.setenv("MECH_OUTBOUND_ALLOW", LOCAL_RECEIVERS)
    get_settings.cache_clear()
    yield LOCAL_RECEIVERS
    monkeypatch.undo()
    get_settings.cache_clear()
