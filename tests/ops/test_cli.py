"""`mech ops …` from the command line: JSON in and out, exit codes 0 / 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core.config import get_settings


@pytest.fixture
def mech(db, org, monkeypatch):
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, input=None: runner.invoke(app, list(args), input=input)
    get_settings.cache_clear()


def test_services_are_created_and_listed(mech):
    created = mech("ops", "create-service", "checkout", "--owner", "payments", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["key"] == "checkout"
    listed = json.loads(mech("ops", "services", "--json").stdout)
    assert [s["key"] for s in listed] == ["checkout"]


def test_an_unknown_team_is_a_usage_error(mech):
    result = mech("ops", "create-service", "checkout", "--owner", "nobody")
    assert result.exit_code == 2
    assert "nobody" in result.output
