"""Alarms on the built-in metrics: evaluated by the worker, with history and the event
that rolls back a flag rollout (the alarm → rollback loop, end to end)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mechanisms.core.errors import InvalidInput
from mechanisms.core.worker import Worker
from mechanisms.flags import deployments
from mechanisms.flags import service as flags
from mechanisms.ops import alarm_dependents, alarms, autoscaling

P99_OVER_500 = {
    "statistic": "p99",
    "comparison": "GreaterThanThreshold",
    "threshold": 500,
    "period_seconds": 60,
    "evaluation_periods": 3,
    "datapoints_to_alarm": 3,
    "treat_missing_data": "missing",
}


@pytest.fixture
def checkout(org, run):
    run(alarms.create_service, "checkout", "Checkout", "payments")
    return run(
        alarms.create_alarm,
        "checkout-latency",
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition=P99_OVER_500,
        severity=2,
    )


def minute_of(run, clock, latency):
    now = clock.now()
    run(
        alarms.ingest_json,
        {
            "samples": [
                {
                    "name": "api_latency_ms",
                    "labels": {"service": "checkout"},
                    "value": latency,
                    "timestamp": (now - timedelta(seconds=s)).timestamp(),
                }
                for s in range(0, 60, 2)
            ]
        },
    )


def test_an_alarm_goes_to_alarm_after_three_breaching_minutes_and_back(db, run, clock, checkout):
    worker = Worker(db, clock=clock)
    try:
        for _ in range(3):
            clock.advance(minutes=1)
            minute_of(run, clock, 200)
            worker.tick()
        assert run(alarms.get_alarm, "checkout-latency").state == "OK"
        for _ in range(3):
            clock.advance(minutes=1)
            minute_of(run, clock, 900)
            worker.tick()
        alarm = run(alarms.get_alarm, "checkout-latency")
        assert alarm.state == "ALARM"
        assert "3 out of the last 3 datapoints" in alarm.state_reason
        clock.advance(minutes=1)
        minute_of(run, clock, 100)
        clock.advance(minutes=1)
        worker.tick()
        assert run(alarms.get_alarm, "checkout-latency").state == "OK"
        transitions = run(alarms.history, "checkout-latency")
        assert [(t.from_state, t.to_state) for t in reversed(transitions)] == [
            ("INSUFFICIENT_DATA", "OK"),
            ("OK", "ALARM"),
            ("ALARM", "OK"),
        ]
        assert all(p["value"] > 500 for p in transitions[1].datapoints if p["value"] is not None)
    finally:
        worker.close()


def test_a_firing_alarm_rolls_back_the_flag_rollout_watching_it(db, run, clock, checkout):
    run(flags.create_app, "shop", "Shop", "payments")
    run(flags.create_flag, "shop", "checkout-v2")
    on = {
        "variants": {"on": True, "off": False},
        "off_variant": "off",
        "fallthrough": {"variant": "on"},
    }
    run(
        flags.set_config,
        "shop",
        "checkout-v2",
        "beta",
        on,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency"]},
    )
    worker = Worker(db, clock=clock)
    try:
        for _ in range(3):
            clock.advance(minutes=1)
            minute_of(run, clock, 1200)
            worker.run_until_idle()
    finally:
        worker.close()
    deployment = run(deployments.deployments, "shop", "checkout-v2", "beta")[0]
    assert deployment.state == "rolled_back"
    assert "checkout-latency" in deployment.reason


def test_composite_alarms_follow_their_rule(db, run, clock, checkout):
    run(
        alarms.create_alarm,
        "checkout-errors",
        "checkout",
        metric="api_errors",
        definition={**P99_OVER_500, "statistic": "sum", "threshold": 5},
    )
    run(
        alarms.create_alarm,
        "checkout-down",
        "checkout",
        rule='ALARM("checkout-latency") AND ALARM("checkout-errors")',
        severity=1,
    )
    run(alarms.evaluate_due)  # the metric alarms' first look: no data yet
    run(alarms.set_state, "checkout-latency", "ALARM", "drill")
    run(alarms.set_state, "checkout-errors", "ALARM", "drill")
    run(alarms.evaluate_due)
    assert run(alarms.get_alarm, "checkout-down").state == "ALARM"
    with pytest.raises(InvalidInput, match="unknown alarm 'ghost'"):
        run(alarms.create_alarm, "x", "checkout", rule='ALARM("ghost")')
    with pytest.raises(InvalidInput, match="rule"):
        run(alarms.create_alarm, "y", "checkout", rule='ALARM("checkout-latency") AND')


def test_bad_definitions_name_the_field(db, run, checkout):
    with pytest.raises(InvalidInput) as refused:
        run(
            alarms.create_alarm,
            "bad",
            "checkout",
            metric="m",
            definition={**P99_OVER_500, "datapoints_to_alarm": 5},
        )
    assert refused.value.details["field"].startswith("definition")
    with pytest.raises(InvalidInput, match="statistic"):
        run(
            alarms.create_alarm,
            "bad2",
            "checkout",
            metric="m",
            definition={**P99_OVER_500, "statistic": "median"},
        )


def test_an_alarm_a_composite_or_a_scaling_policy_reads_is_neither_deleted_nor_renamed(
    run, checkout
):
    run(alarms.create_alarm, "checkout-down", "checkout", rule='ALARM("checkout-latency")')
    with pytest.raises(alarm_dependents.AlarmInUse) as refused:
        run(alarm_dependents.delete_alarm, "checkout-latency")
    assert refused.value.details["dependents"] == ["composite alarm checkout-down"]
    run(alarm_dependents.delete_alarm, "checkout-down")

    run(autoscaling.create_target, "checkout-web", "checkout", min_capacity=1, max_capacity=4)
    run(
        autoscaling.create_policy,
        "checkout-cpu",
        "checkout-web",
        metric="cpu_utilization",
        target_value=50.0,
        alarm="checkout-latency",
    )
    with pytest.raises(alarm_dependents.AlarmInUse, match="scaling policy checkout-cpu"):
        run(alarm_dependents.rename_alarm, "checkout-latency", "latency")
    assert run(alarms.get_alarm, "checkout-latency").name == "checkout-latency"
