"""`mech ops synthetic …`: turning the generator on and off from the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core.config import get_settings
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, synthetic


@pytest.fixture
def mech(db, org, run, monkeypatch):
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    get_settings.cache_clear()
    run(alarms.create_service, "checkout", "Checkout", "payments")
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_on_status_and_off(mech, db, clock, run):
    assert json.loads(mech("ops", "synthetic", "status", "--json").stdout) == {"enabled": False}
    turned = mech(
        "ops", "synthetic", "on", "checkout", "--latency-ms", "80", "--seed", "7", "--json"
    )
    assert turned.exit_code == 0, turned.output
    status = json.loads(mech("ops", "synthetic", "status", "--json").stdout)
    assert status["enabled"] and status["seed"] == 7
    assert status["services"][0]["service"] == "checkout"
    assert status["services"][0]["latency_ms"] == 80
    worker = Worker(db, clock=clock, jobs=[synthetic.GenerateSyntheticMetrics()])
    try:
        assert worker.tick() == 2 * 24 * 60
        assert mech("ops", "synthetic", "off").exit_code == 0
        clock.advance(minutes=5)
        assert worker.tick() == 0
    finally:
        worker.close()
    assert "off" in mech("ops", "synthetic", "status").output


def test_bad_input_is_a_usage_error_naming_the_problem(mech):
    unknown = mech("ops", "synthetic", "on", "nowhere")
    assert unknown.exit_code == 2 and "nowhere" in unknown.output
    negative = mech("ops", "synthetic", "on", "checkout", "--cpu-percent", "150")
    assert negative.exit_code == 2 and "cpu_percent" in negative.output
    assert json.loads(mech("ops", "synthetic", "status", "--json").stdout) == {"enabled": False}
