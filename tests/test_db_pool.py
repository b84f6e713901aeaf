"""PostgreSQL connections: pinged after sitting idle, not on every transaction (decision 0018).

Runs against a real server (MECH_TEST_DATABASE_URL); a connection is killed with
pg_terminate_backend, as a server restart or an idle timeout would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from mechanisms.core import db as db_module
from mechanisms.core.db import Database

from .conftest import backend_url


@pytest.fixture
def pg(database_urls: dict[str, str]) -> Iterator[Database]:
    database = Database(backend_url(database_urls, "postgresql"))
    yield database
    database.dispose()


@pytest.fixture
def pings(pg: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    sent: list[object] = []
    real = pg.engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        sent.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(pg.engine.dialect, "do_ping", counting)
    return sent


def backend_pid(database: Database) -> int:
    with database.transaction(write=False) as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(database: Database, pid: int) -> None:
    """Kill one server connection from outside the pool, as a restart would."""
    other = create_engine(database.url)
    with other.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def test_a_connection_back_from_its_last_transaction_moments_ago_is_not_pinged(pg, pings):
    pids = {backend_pid(pg) for _ in range(5)}
    assert len(pids) == 1  # the same pooled connection each time
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced_unseen(pg, pings, monkeypatch):
    first = backend_pid(pg)
    terminate(pg, first)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if idle for long
    second = backend_pid(pg)  # no error: the ping found it dead, the pool opened another
    assert second != first
    assert len(pings) == 1


def test_a_connection_that_dies_just_after_use_fails_one_transaction_only(pg, pings):
    """The price of not pinging every checkout, and its bound: the engine sees the
    disconnect and replaces the pool's connections, so the next transaction works."""
    first = backend_pid(pg)
    terminate(pg, first)
    with pytest.raises(OperationalError), pg.transaction(write=False) as session:
        session.execute(text("SELECT 1"))
    assert backend_pid(pg) != first
    assert pings == []
