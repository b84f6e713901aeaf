"""Storage: engines, the declarative base, portable column types and the unit of work.

The rule (DESIGN.md): the request or job wrapper opens one transaction and alone
commits or rolls back; services only ``flush()``. ``Database.transaction`` is that
wrapper for everything that is not an HTTP request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, Table, create_engine, event, exc, insert, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from mechanisms.core.errors import MechanismsError, RecordedRefusal

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# Rows a bulk INSERT sends at once on SQLite: bounded so one statement's parameters stay small.
_ROWS_PER_INSERT = 2_000


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows into a table in the session's transaction, in order (ascending ids),
    without ORM objects and without fetching anything back: a Core executemany on SQLite,
    COPY on PostgreSQL (where an executemany is still one INSERT per row for the server)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, table, rows)
        return
    for first in range(0, len(rows), _ROWS_PER_INSERT):
        session.execute(insert(table), list(rows[first : first + _ROWS_PER_INSERT]))


def _copy(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    from psycopg import sql
    from psycopg.types.json import Json

    names = list(rows[0])
    columns = [table.c[name] for name in names]
    dialect = session.get_bind().dialect
    convert: list[Any] = []
    for column in columns:
        if isinstance(column.type, JSON):
            convert.append(lambda v: None if v is None else Json(v, dumps=canonical_json))
        elif isinstance(column.type, TypeDecorator):
            convert.append(lambda v, t=column.type: t.process_bind_param(v, dialect))
        else:
            convert.append(None)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [row[n] if f is None else f(row[n]) for n, f in zip(names, convert, strict=True)]
            )


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the write lock up front: a deferred transaction that
        # later tries to write can fail with SQLITE_BUSY instead of waiting.
        if conn.get_execution_options().get("mech_write", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


# A server connection idle in the pool for longer than this is pinged before it is handed
# out; one back from its last transaction sooner is used as it is (decision 0018). Keep it
# well under any idle timeout between here and the server (PostgreSQL's
# idle_session_timeout, a proxy's, a firewall's).
PING_AFTER_IDLE_SECONDS = 10.0
# A server connection older than this is replaced at its next checkout, whatever its use.
RECYCLE_SECONDS = 30 * 60


def _ping_when_idle(engine: Engine) -> None:
    """Check a connection that sat idle before a transaction uses it, and only then.

    ``pool_pre_ping`` pings on every checkout: one more round trip per transaction (three
    per API request: the token check, its touch, the request), which a short read such as
    the deploys gate feels. Connections die while they sit idle (a server restart or
    failover, an idle timeout), so that is when one is checked.
    A dead one found here is dropped and another checked out, as with ``pool_pre_ping``.
    One that dies within seconds of its last use fails the transaction that gets it; the
    engine then sees the disconnect and replaces every connection opened before it."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["mech_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("mech_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool invalidates this connection and checks out another (three tries).
            raise exc.DisconnectionError(f"connection lost while idle: {error}") from error


class ReadOnlySession(RuntimeError):
    """A read session was asked to write: a bug in the caller, never bad input."""


def _refuse_writes(readers: sessionmaker[Session]) -> None:
    """A read session writes nothing: on PostgreSQL it runs in autocommit, where a write
    would be committed at once, so an attempt fails loudly on every backend."""

    @event.listens_for(readers, "before_flush")
    def _no_flush(session: Session, _context: Any, _instances: Any) -> None:
        if session.new or session.dirty or session.deleted:
            raise ReadOnlySession("a read-only session cannot write; open a write transaction")

    @event.listens_for(readers, "do_orm_execute")
    def _no_dml(state: Any) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            raise ReadOnlySession("a read-only session cannot insert, update or delete")


class DatabaseDriverMissing(MechanismsError):
    """The URL names PostgreSQL and its driver is not installed (it is an extra)."""

    code = "database_driver_missing"


# What to install for each PostgreSQL driver a URL may name; psycopg 3 is the one we ship.
_POSTGRES_DRIVERS = {
    "psycopg": "pip install 'mechanisms[postgres]'",
    "psycopg2": "pip install 'mechanisms[postgres]' and write the URL as postgresql+psycopg://…",
}


def _server_engine(url: str, **options: Any) -> Engine:
    try:
        return create_engine(url, **options)
    except ModuleNotFoundError as exc:
        driver = (exc.name or "").split(".")[0]
        if driver not in _POSTGRES_DRIVERS:
            raise
        raise DatabaseDriverMissing(
            f"the database URL names PostgreSQL, whose driver {driver} is not installed: "
            f"{_POSTGRES_DRIVERS[driver]}"
        ) from None


class Database:
    """One database: its engine and sessions for reading and for writing."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        if self.is_sqlite:
            self.engine = create_engine(
                url,
                echo=echo,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=8,
                max_overflow=8,
            )
            _configure_sqlite(self.engine)
        else:
            self.engine = _server_engine(
                url, echo=echo, pool_size=10, max_overflow=10, pool_recycle=RECYCLE_SECONDS
            )
            _ping_when_idle(self.engine)
        self._writer = sessionmaker(
            bind=self.engine.execution_options(mech_write=True), expire_on_commit=False
        )
        reads = {"mech_write": False}
        if not self.is_sqlite:
            # No BEGIN and no ROLLBACK around a read: two round trips fewer (decision 0021).
            # Under READ COMMITTED each statement had its own snapshot anyway.
            reads["isolation_level"] = "AUTOCOMMIT"
        self._reader = sessionmaker(
            bind=self.engine.execution_options(**reads), expire_on_commit=False, autoflush=False
        )
        _refuse_writes(self._reader)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, *, write: bool = True) -> Session:
        return (self._writer if write else self._reader)()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back on any error but a
        RecordedRefusal, whose record of the refusal is kept (as the request wrapper does)."""
        session = self.session(write=write)
        try:
            yield session
            if write:
                session.commit()
            # A reader just closes: rollback() would expire what it loaded.
        except RecordedRefusal:
            if write:
                session.commit()
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
