"""`mech ops silences …` and `mech ops alarms set-state` from the command line."""

from __future__ import annotations

import json


def test_silences_are_set_listed_and_deleted(mech):
    assert mech("ops", "create-service", "checkout", "--owner", "payments").exit_code == 0
    made = mech(
        "ops",
        "silences",
        "set",
        "sunday-upgrades",
        "--start",
        "2026-01-04T02:00:00",
        "--end",
        "2026-01-04T04:00:00",
        "--zone",
        "Europe/Berlin",
        "--rrule",
        "FREQ=WEEKLY;BYDAY=SU",
        "--json",
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["rrule"] == "FREQ=WEEKLY;BYDAY=SU"
    listed = json.loads(mech("ops", "silences", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["sunday-upgrades"]
    bad = mech(
        "ops",
        "silences",
        "set",
        "x",
        "--start",
        "2026-01-04T02:00:00",
        "--end",
        "2026-01-04T01:00:00",
    )
    assert bad.exit_code == 2 and "end" in bad.output
    assert mech("ops", "silences", "delete", "sunday-upgrades").exit_code == 0
    assert json.loads(mech("ops", "silences", "list", "--json").stdout) == []


def test_an_alarm_state_is_set_by_hand(mech):
    assert mech("ops", "create-service", "checkout", "--owner", "payments").exit_code == 0
    from mechanisms.core.clock import SystemClock
    from mechanisms.core.config import get_settings
    from mechanisms.core.context import Ctx
    from mechanisms.core.db import Database
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms

    db = Database(get_settings().database_url)
    with db.transaction() as session:
        alarms.create_alarm(
            Ctx(session, system_principal("test"), SystemClock().now()),
            "checkout-latency",
            "checkout",
            metric="api_latency_ms",
            definition={
                "statistic": "p99",
                "comparison": "GreaterThanThreshold",
                "threshold": 500,
                "period_seconds": 60,
                "evaluation_periods": 1,
                "datapoints_to_alarm": 1,
            },
        )
    db.dispose()
    result = mech(
        "ops", "alarms", "set-state", "checkout-latency", "ALARM", "--reason", "drill", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "ALARM"
    assert (
        mech("ops", "alarms", "set-state", "checkout-latency", "RED", "--reason", "x").exit_code
        == 2
    )
