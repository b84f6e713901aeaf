"""`mech ops oncall …`: schedules and policies from JSON, who is on, overrides, coverage,
pages listed and acknowledged."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

SCHEDULE = {
    "name": "primary",
    "team": "payments",
    "time_zone": "Europe/Berlin",
    "layers": [
        {
            "participants": ["eve", "leo"],
            "rotation": {"type": "weekly", "handoff_weekday": "mon", "handoff_time": "10:00"},
            "start": "2026-01-05T09:00:00Z",
        }
    ],
}


def test_schedules_policies_and_pages_from_the_command_line(mech, tmp_path):
    path = tmp_path / "primary.json"
    path.write_text(json.dumps(SCHEDULE))
    created = mech("ops", "oncall", "schedules", "create", str(path), "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["name"] == "primary"
    # Weekly turns that alternate and hand off on Mondays at 10:00 in Berlin.
    shown = json.loads(
        mech("ops", "oncall", "schedules", "show", "primary", "--days", "14", "--json").stdout
    )
    people = [s["person"] for s in shown["shifts"]]
    assert set(people) == {"eve", "leo"} and all(a != b for a, b in pairwise(people))
    berlin = ZoneInfo("Europe/Berlin")
    for shift in shown["shifts"][1:]:
        local = datetime.fromisoformat(shift["start"]).astimezone(berlin)
        assert (local.strftime("%a"), local.hour, local.minute) == ("Mon", 10, 0)

    override = mech(
        "ops",
        "oncall",
        "override",
        "primary",
        "--user",
        "ada",
        "--start",
        "2030-01-01T00:00:00Z",
        "--end",
        "2030-01-02T00:00:00Z",
        "--json",
    )
    assert override.exit_code == 0, override.output
    assert json.loads(override.stdout)["version"] == 2

    leo = json.loads(mech("ops", "oncall", "shifts", "leo", "--days", "14", "--json").stdout)
    assert leo and {s["schedule"] for s in leo} == {"primary"}
    now = json.loads(mech("ops", "oncall", "now", "--json").stdout)
    assert [n["schedule"] for n in now] == ["primary"] and now[0]["person"] in ("eve", "leo")

    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "name": "payments-default",
                "team": "payments",
                "levels": [
                    {"targets": [{"kind": "schedule", "name": "primary"}], "timeout_minutes": 5}
                ],
            }
        )
    )
    made = mech("ops", "oncall", "policies", "create", str(policy), "--default", "--json")
    assert made.exit_code == 0, made.output
    assert [
        p["name"] for p in json.loads(mech("ops", "oncall", "policies", "list", "--json").stdout)
    ] == ["payments-default"]

    gaps = mech("ops", "oncall", "coverage", "--schedule", "primary", "--json")
    assert gaps.exit_code == 0 and json.loads(gaps.stdout)["covered"] is True
    assert json.loads(mech("ops", "oncall", "pages", "list", "--json").stdout) == []


def test_bad_definitions_are_usage_errors(mech, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**SCHEDULE, "time_zone": "Nowhere/Land"}))
    result = mech("ops", "oncall", "schedules", "create", str(path))
    assert result.exit_code == 2
    assert "time_zone" in result.output
    missing = mech("ops", "oncall", "pages", "ack", "999")
    assert missing.exit_code == 2 and "not found" in missing.output
