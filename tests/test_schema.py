"""The migrations create exactly the tables the models describe, on both backends, and
the vendored static files are the versions we recorded."""

from __future__ import annotations

import hashlib
import re

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mechanisms.core import migrate
from mechanisms.web.pages import STATIC_DIR


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), migrate.target_metadata())
    assert diff == [], f"models and migrations differ; write a migration: {diff}"
    assert migrate.is_up_to_date(db)


def test_upgrading_twice_is_harmless(db):
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()


def test_vendored_files_match_their_recorded_hashes():
    vendor = STATIC_DIR / "vendor"
    table = (vendor / "VENDORED.md").read_text()
    rows = re.findall(r"^\| (\S+) \| .+? \| (\S+) \| ([0-9a-f]{64}) \|$", table, re.MULTILINE)
    assert {name for name, _, _ in rows} == {"htmx-2.0.11.min.js", "pico-2.1.1.min.css"}
    for name, _version, digest in rows:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
