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


def test_scaling_targets_policies_history_and_costs_from_the_command_line(mech):
    mech("ops", "create-service", "checkout", "--owner", "payments")
    target = mech(
        "ops", "scaling", "create-target", "checkout-web", "--service", "checkout",
        "--min", "1", "--max", "6", "--desired", "3", "--unit-cost", "0.5", "--json",
    )  # fmt: skip
    assert target.exit_code == 0, target.output
    assert json.loads(target.stdout)["desired_capacity"] == 3
    policy = mech(
        "ops", "scaling", "create-policy", "checkout-cpu", "--target", "checkout-web",
        "--metric", "cpu_utilization", "--match", "service=checkout", "--target-value", "50",
        "--json",
    )  # fmt: skip
    assert policy.exit_code == 0, policy.output
    decided = mech("ops", "scaling", "evaluate", "checkout-cpu", "--json")
    assert decided.exit_code == 0, decided.output
    assert "No datapoint of cpu_utilization" in json.loads(decided.stdout)["reason"]
    history = json.loads(mech("ops", "scaling", "history", "checkout-web", "--json").stdout)
    assert [(h["from_capacity"], h["to_capacity"], h["actor"]) for h in history] == [
        (3, 3, "system:cli")
    ]
    listed = json.loads(mech("ops", "scaling", "targets", "--json").stdout)
    assert [t["key"] for t in listed] == ["checkout-web"]
    costs = mech("ops", "costs", "--days", "7", "--json")
    assert costs.exit_code == 0 and json.loads(costs.stdout) == []
    bad = mech(
        "ops", "scaling", "create-target", "x", "--service", "checkout", "--min", "3", "--max", "1"
    )
    assert bad.exit_code == 2 and "max_capacity" in bad.output
