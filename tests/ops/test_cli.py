"""`mech ops …` from the command line: JSON in and out, exit codes 0 / 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest


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


# --- metrics, alarms, tickets -------------------------------------------------------------


def said(result):
    """What a command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def checkout(mech):
    _json(mech("ops", "create-service", "checkout", "--owner", "payments", "--json"))
    return mech


def _samples(values, minutes_ago=1):
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "samples": [
            {
                "name": "api_latency_ms",
                "labels": {"service": "checkout"},
                "value": v,
                "timestamp": (at + timedelta(seconds=i)).timestamp(),
            }
            for i, v in enumerate(values)
        ]
    }


def test_metrics_are_pushed_as_json_and_prometheus_text_and_queried(checkout, tmp_path):
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(_samples([120, 480, 95])))
    pushed = _json(checkout("ops", "metrics", "push", str(batch), "--json"))
    assert pushed["accepted"] == 3 and pushed["series_created"] == 1

    text = 'api_latency_ms{service="checkout"} 700\n'
    from_stdin = _json(checkout("ops", "metrics", "push", "-", "--json", input=text))
    assert from_stdin["accepted"] == 1

    points = _json(
        checkout(
            "ops",
            "metrics",
            "query",
            "api_latency_ms",
            "--statistic",
            "max",
            "--match",
            "service=checkout",
            "--since",
            "10m",
            "--json",
        )
    )
    assert max(p["value"] for p in points if p["value"] is not None) == 700
    other = _json(
        checkout("ops", "metrics", "query", "api_latency_ms", "--match", "service=search", "--json")
    )
    assert all(p["value"] is None for p in other)


def test_bad_metric_input_is_a_usage_error_and_stores_nothing(checkout, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"samples": [')
    result = checkout("ops", "metrics", "push", str(broken))
    assert result.exit_code == 2 and "not valid JSON" in said(result)

    nan = json.dumps(_samples([1.0])).replace("1.0", "NaN")
    result = checkout("ops", "metrics", "push", "-", "--format", "json", input=nan)
    assert result.exit_code == 2 and "finite" in said(result)

    result = checkout("ops", "metrics", "push", "-", input="api_latency_ms{ 12\n")
    assert result.exit_code == 2 and "exposition" in said(result)

    assert checkout("ops", "metrics", "push", str(tmp_path / "missing.json")).exit_code == 2
    assert checkout("ops", "metrics", "query", "x", "--since", "forever").exit_code == 2
    assert checkout("ops", "metrics", "query", "x", "--match", "nolabel").exit_code == 2
    assert checkout("ops", "metrics", "query", "x", "--statistic", "median").exit_code == 2
    points = _json(checkout("ops", "metrics", "query", "api_latency_ms", "--json"))
    assert all(p["value"] is None for p in points), "nothing was stored"


SLOW = {
    "name": "checkout-slow",
    "service": "checkout",
    "metric": "api_latency_ms",
    "match": {"service": "checkout"},
    "definition": {
        "statistic": "p99",
        "comparison": "GreaterThanThreshold",
        "threshold": 300,
        "period_seconds": 60,
        "evaluation_periods": 5,
        "datapoints_to_alarm": 3,
    },
    "severity": 2,
}


def test_alarms_are_created_listed_shown_set_and_their_history_kept(checkout, tmp_path):
    source = tmp_path / "alarm.json"
    source.write_text(json.dumps(SLOW))
    created = _json(checkout("ops", "alarms", "create", str(source), "--json"))
    assert created["state"] == "INSUFFICIENT_DATA"
    assert created["in_words"] == (
        'p99 of api_latency_ms{service="checkout"} > 300 for 3 of 5 periods of 1 min; '
        "missing data: missing"
    )
    composite = {"name": "checkout-down", "service": "checkout", "rule": 'ALARM("checkout-slow")'}
    _json(checkout("ops", "alarms", "create", "-", "--json", input=json.dumps(composite)))

    set_ = checkout("ops", "alarms", "set-state", "checkout-slow", "ALARM", "--reason", "drill")
    assert set_.exit_code == 0 and "checkout-slow is ALARM" in said(set_)
    firing = _json(checkout("ops", "alarms", "list", "--state", "ALARM", "--json"))
    assert [a["name"] for a in firing] == ["checkout-slow"]
    by_service = _json(checkout("ops", "alarms", "list", "--service", "checkout", "--json"))
    assert {a["name"] for a in by_service} == {"checkout-slow", "checkout-down"}

    shown = _json(checkout("ops", "alarms", "show", "checkout-down", "--json"))
    assert shown["children"] == {"checkout-slow": "ALARM"}
    assert shown["in_words"] == 'ALARM when ALARM("checkout-slow")'
    history = _json(checkout("ops", "alarms", "history", "checkout-slow", "--json"))
    assert [(h["from_state"], h["to_state"]) for h in history] == [("INSUFFICIENT_DATA", "ALARM")]
    assert "drill" in history[0]["reason"]
    human = checkout("ops", "alarms", "show", "checkout-slow")
    assert human.exit_code == 0 and "checkout-slow: ALARM since" in said(human)


def test_alarm_mistakes_are_usage_errors(checkout, tmp_path):
    bad_definition = {**SLOW, "definition": {**SLOW["definition"], "datapoints_to_alarm": 9}}
    result = checkout("ops", "alarms", "create", "-", input=json.dumps(bad_definition))
    assert result.exit_code == 2 and "datapoints_to_alarm" in said(result)
    result = checkout("ops", "alarms", "create", "-", input=json.dumps({**SLOW, "severity": "2"}))
    assert result.exit_code == 2 and "severity" in said(result)
    result = checkout("ops", "alarms", "create", "-", input=json.dumps({**SLOW, "colour": "red"}))
    assert result.exit_code == 2 and "colour" in said(result)
    assert checkout("ops", "alarms", "create", "-", input="[").exit_code == 2
    assert checkout("ops", "alarms", "show", "nothing-here").exit_code == 2
    assert checkout("ops", "alarms", "list", "--state", "FIRING").exit_code == 2
    assert checkout("ops", "alarms", "list", "--service", "nope").exit_code == 2
    result = checkout("ops", "alarms", "set-state", "nothing-here", "BROKEN", "--reason", "x")
    assert result.exit_code == 2
    assert _json(checkout("ops", "alarms", "list", "--json")) == [], "nothing was created"


def test_a_ticket_is_acknowledged_commented_and_resolved(checkout):
    made = _json(
        checkout(
            "ops", "tickets", "create", "--service", "checkout", "--title", "Slow checkout",
            "--severity", "2", "--json",
        )
    )  # fmt: skip
    number = str(made["id"])
    assert made["state"] == "open"
    acked = _json(checkout("ops", "tickets", "ack", number, "--json"))
    assert acked["state"] == "acknowledged" and acked["assignee"] == "system:cli"
    _json(checkout("ops", "tickets", "comment", number, "rolled back the cache change", "--json"))
    resolved = _json(checkout("ops", "tickets", "resolve", number, "cache restored", "--json"))
    assert resolved["state"] == "resolved" and resolved["resolved_at"]

    shown = _json(checkout("ops", "tickets", "show", number, "--json"))
    assert [e["kind"] for e in shown["timeline"]] == [
        "created",
        "acknowledged",
        "comment",
        "resolved",
    ]
    assert shown["timeline"][2]["text"] == "rolled back the cache change"
    assert _json(checkout("ops", "tickets", "list", "--state", "open", "--json")) == []
    assert [t["id"] for t in _json(checkout("ops", "tickets", "list", "--json"))] == [made["id"]]

    again = checkout("ops", "tickets", "ack", number)
    assert again.exit_code == 2 and "resolved" in said(again)
    assert checkout("ops", "tickets", "resolve", number, "twice").exit_code == 2
    assert checkout("ops", "tickets", "show", "999999").exit_code == 2
    assert checkout("ops", "tickets", "show", "zero").exit_code == 2
    assert checkout("ops", "tickets", "list", "--state", "closed").exit_code == 2
    assert checkout("ops", "tickets", "comment", number, "   ").exit_code == 2


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
