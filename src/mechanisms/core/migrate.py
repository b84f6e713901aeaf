"""Schema migrations (Alembic), shipped inside the package so ``mech db upgrade`` works
from any directory on any installed copy."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text

from mechanisms.core.db import Base, Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed number: replicas starting together take turns at upgrading PostgreSQL.
PG_MIGRATION_LOCK = 0x6D656368


def target_metadata() -> MetaData:
    from mechanisms import modules

    modules.import_all()
    return Base.metadata


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    config = _config()
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def is_up_to_date(db: Database) -> bool:
    return current_revision(db) == head_revision()


def autogenerate(db: Database, message: str) -> None:
    """Write a new revision from the difference between the models and the database."""
    config = _config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)
