"""`mech flags …` from the command line: JSON in and out, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core.config import get_settings

ON = json.dumps(
    {"variants": {"on": True, "off": False}, "off_variant": "off", "fallthrough": {"variant": "on"}}
)


@pytest.fixture
def mech(db, org, monkeypatch):
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, input=None: runner.invoke(app, list(args), input=input)
    get_settings.cache_clear()


def test_a_flag_from_creation_to_kill(mech, tmp_path):
    assert mech("flags", "create-app", "shop", "--owner", "payments").exit_code == 0
    assert mech("flags", "create", "shop", "checkout").exit_code == 0
    config = tmp_path / "on.json"
    config.write_text(ON)
    changed = mech("flags", "set", "shop", "checkout", "beta", "--config", str(config), "--json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["version"] == 2
    request = json.loads(
        mech("flags", "set", "shop", "checkout", "prod", "--config", "-", "--json", input=ON).stdout
    )
    assert request["change_request"] is not None and request["version"] is None
    evaluated = json.loads(
        mech(
            "flags",
            "eval",
            "shop",
            "beta",
            "checkout",
            "--context",
            '{"targetingKey": "u1"}',
            "--json",
        ).stdout
    )
    assert (evaluated["value"], evaluated["reason"]) == (True, "DEFAULT")
    assert (
        json.loads(mech("flags", "show", "shop", "checkout", "prod", "--json").stdout)["number"]
        == 1
    )
    assert mech("flags", "kill", "shop", "checkout", "--reason", "incident 42").exit_code == 0
    after = json.loads(
        mech(
            "flags",
            "eval",
            "shop",
            "beta",
            "checkout",
            "--context",
            '{"targetingKey": "u1"}',
            "--json",
        ).stdout
    )
    assert after["reason"] == "DISABLED"
    rows = json.loads(mech("flags", "list", "shop", "--json").stdout)
    assert {r["environment"] for r in rows} == {"beta", "gamma", "prod"}


def test_input_errors_exit_2_and_failed_evaluations_exit_1(mech):
    mech("flags", "create-app", "shop", "--owner", "payments")
    mech("flags", "create", "shop", "checkout")
    bad_json = mech("flags", "set", "shop", "checkout", "beta", "--config", "{nope")
    assert bad_json.exit_code == 2 and "not valid JSON" in bad_json.output
    bad_split = mech(
        "flags",
        "set",
        "shop",
        "checkout",
        "beta",
        "--config",
        '{"variants": {"on": true, "off": false}, "off_variant": "off", "fallthrough": {"split": [{"variant": "on", "percent": 10}]}}',
    )
    assert bad_split.exit_code == 2 and "sum to 100" in bad_split.output
    assert mech("flags", "list", "nowhere").exit_code == 2
    assert (
        mech("flags", "set", "shop", "checkout", "beta", "--config", "/no/such/file").exit_code == 2
    )
    missing_key = mech("flags", "eval", "shop", "beta", "checkout")
    assert missing_key.exit_code == 0  # serves its off variant to everyone: no key needed
    assert mech("flags", "eval", "shop", "beta", "ghost").exit_code == 1
    assert "Traceback" not in bad_json.output + bad_split.output
