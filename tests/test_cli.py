"""The `mech` command line: exit codes 0 / 1 / 2, --json output, clear errors."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core import migrate
from mechanisms.core.config import get_settings
from mechanisms.core.db import Database


@pytest.fixture
def mech(db, monkeypatch):
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    yield invoke
    get_settings.cache_clear()


def test_people_teams_and_tokens(mech):
    assert mech("team", "add", "acme", "--name", "Acme").exit_code == 0
    assert mech("team", "add", "infra", "--parent", "acme").exit_code == 0
    added = mech("user", "add", "kim", "--password", "long enough pw", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["username"] == "kim"
    assert mech("user", "add", "deploy-bot", "--bot").exit_code == 0
    assert mech("team", "member", "add", "infra", "kim", "--role", "leader").exit_code == 0
    members = json.loads(mech("team", "member", "list", "infra", "--json").stdout)
    assert members == [{"username": "kim", "name": "kim", "role": "leader"}]
    created = json.loads(mech("token", "create", "deploy-bot", "--name", "ci", "--json").stdout)
    assert created["token"].startswith("mech_") and created["scope"] == "engineer"
    listed = json.loads(mech("token", "list", "deploy-bot", "--json").stdout)
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    assert mech("token", "revoke", str(created["id"])).exit_code == 0
    assert json.loads(mech("token", "list", "deploy-bot", "--json").stdout)[0]["revoked"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["team", "member", "add", "nope", "kim"], "team 'nope' not found"),
        (["user", "add", "Bad Name!", "--password", "long enough pw"], "username must be"),
        (["user", "add", "short", "--password", "x"], "at least 8 characters"),
        (["team", "add", "acme"], "already exists"),
        (["token", "create", "ghost"], "user 'ghost' not found"),
        (["webhook", "add", "ftp://example.org"], "http or https"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(mech, args, message):
    mech("team", "add", "acme")
    result = mech(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_audit_verify_and_list(mech):
    mech("team", "add", "acme")
    verified = mech("audit", "verify", "--json")
    assert verified.exit_code == 0
    assert json.loads(verified.stdout)["ok"] is True
    rows = json.loads(mech("audit", "list", "--json").stdout)
    assert rows[0]["action"] == "team.created" and rows[0]["actor"] == "system:cli"


def test_webhooks_from_the_cli(mech):
    added = json.loads(
        mech("webhook", "add", "https://example.org/h", "--event", "flags.*", "--json").stdout
    )
    assert added["secret"].startswith("whsec_")
    listed = json.loads(mech("webhook", "list", "--json").stdout)
    assert listed["webhooks"][0]["event_types"] == ["flags.*"]


def test_db_current_and_a_schema_that_is_behind(mech, tmp_path, monkeypatch):
    assert mech("db", "current").exit_code == 0
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("MECH_DATABASE_URL", empty)
    get_settings.cache_clear()
    assert mech("db", "current").exit_code == 1
    refused = mech("team", "list")
    assert refused.exit_code == 2 and "mech db upgrade" in refused.output
    assert mech("db", "upgrade").exit_code == 0
    assert migrate.is_up_to_date(Database(empty))


def test_demo_seeds_once_and_prints_a_fresh_token(mech):
    first = mech("demo")
    assert first.exit_code == 0, first.output
    assert "seeded" in first.output and "alice" in first.output and "mech_" in first.output
    second = mech("demo")
    assert "already present" in second.output
    tokens = json.loads(mech("token", "list", "alice", "--json").stdout)
    assert [t["revoked"] for t in tokens] == [True, False]


@pytest.mark.parametrize(
    "url, driver, advice",
    [
        ("postgresql+psycopg://mech@127.0.0.1:1/mech", "psycopg", ""),
        (
            "postgresql+psycopg2://mech@127.0.0.1:1/mech",
            "psycopg2",
            " and write the URL as postgresql+psycopg://…",
        ),
    ],
)
def test_postgresql_without_its_driver_names_the_extra_to_install(monkeypatch, url, driver, advice):
    """psycopg is the `postgres` extra: a SQLite install that points at PostgreSQL is told
    what to install in one line, not shown a traceback."""
    monkeypatch.setitem(sys.modules, driver, None)  # what `import` sees when it is not installed
    monkeypatch.setenv("MECH_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "current"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: the database URL names PostgreSQL, whose driver {driver} is not installed: "
        f"pip install 'mechanisms[postgres]'{advice}"
    ]
