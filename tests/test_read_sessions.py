"""Read sessions write nothing (decision 0021): on PostgreSQL they run in autocommit, where
a write would be committed at once, so every backend refuses one loudly."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from mechanisms.core.db import ReadOnlySession
from mechanisms.core.tables import Team


@pytest.fixture
def team(run) -> str:
    from mechanisms.core import accounts

    run(accounts.create_team, "acme", "Acme")
    return "acme"


def name_of(db, slug: str) -> str:
    with db.transaction(write=False) as session:
        return session.execute(select(Team.name).where(Team.slug == slug)).scalar_one()


def test_a_changed_object_in_a_read_session_is_refused_not_written(db, team):
    with pytest.raises(ReadOnlySession), db.transaction(write=False) as session:
        row = session.execute(select(Team).where(Team.slug == team)).scalar_one()
        row.name = "Changed"
        session.flush()
    assert name_of(db, team) == "Acme"


def test_a_changed_object_is_not_flushed_by_the_next_query(db, team):
    with db.transaction(write=False) as session:
        row = session.execute(select(Team).where(Team.slug == team)).scalar_one()
        row.name = "Changed"  # e.g. a value adjusted for display
        session.execute(select(Team)).all()  # no autoflush in a read session
    assert name_of(db, team) == "Acme"


def test_an_update_statement_in_a_read_session_is_refused(db, team):
    with pytest.raises(ReadOnlySession), db.transaction(write=False) as session:
        session.execute(update(Team).where(Team.slug == team).values(name="Changed"))
    assert name_of(db, team) == "Acme"


def in_transaction(session) -> bool:
    """Whether the driver's connection is inside a transaction right now."""
    raw = session.connection().connection.driver_connection
    if hasattr(raw, "info"):  # psycopg
        return raw.info.transaction_status != raw.info.transaction_status.IDLE
    return raw.in_transaction  # sqlite3


def test_reads_skip_the_transaction_on_postgresql_and_writes_keep_it(db, team):
    with db.transaction(write=False) as session:
        session.execute(text("SELECT 1"))
        read_in_transaction = in_transaction(session)
    with db.transaction() as session:
        session.execute(text("SELECT 1"))
        assert in_transaction(session)
    # SQLite keeps its read transaction: one snapshot for the whole read, and no round
    # trips to save.
    assert read_in_transaction is (db.dialect == "sqlite")
