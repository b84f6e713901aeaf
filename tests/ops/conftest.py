"""Fixtures the ops tests share."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core.config import get_settings


@pytest.fixture
def mech(db, org, monkeypatch):
    """`mech …` in this process, on this test's database, as the server's operator."""
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, input=None: runner.invoke(app, list(args), input=input)
    get_settings.cache_clear()
