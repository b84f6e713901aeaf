"""Cost-saving findings: p95 utilisation from merged sketches over the whole period, the
capacity that would have sufficed, and the saving at the unit cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mechanisms.core.errors import InvalidInput
from mechanisms.ops import alarms, autoscaling, cost

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def test_capacity_hours_is_the_area_under_the_steps():
    steps = [(T0, 8), (T0 + timedelta(hours=6), 2), (T0 + timedelta(hours=9), 4)]
    assert cost.capacity_hours(steps, T0 + timedelta(hours=10)) == 8 * 6 + 2 * 3 + 4 * 1


def test_the_saving_of_a_target_that_scaled_in_halfway():
    end = T0 + timedelta(days=14)
    found = cost.finding(
        target="web",
        service="checkout",
        metric="cpu",
        start=T0,
        end=end,
        p95_utilisation=20.0,
        threshold=30.0,
        target_utilisation=60.0,
        steps=[(T0, 8), (T0 + timedelta(days=7), 4)],
        min_capacity=1,
        unit_cost_per_hour=0.5,
    )
    assert found is not None
    # ran 8 x 168 + 4 x 168 = 2016 unit-hours; ceil(8 x 20 / 60) = 3 units would do: 1008.
    assert found.capacity_hours == 2016
    assert found.sufficient_capacity == 3
    assert found.average_capacity == 6
    assert found.saving == (2016 - 3 * 336) * 0.5 == 504.0
    assert found.monthly_saving == round(504 / 336 * 730, 2) == 1095.0


def test_no_finding_above_the_threshold_or_when_nothing_would_be_saved():
    common = dict(
        target="web",
        service="s",
        metric="cpu",
        start=T0,
        end=T0 + timedelta(days=1),
        threshold=30.0,
        target_utilisation=60.0,
        unit_cost_per_hour=1.0,
    )
    assert cost.finding(p95_utilisation=31, steps=[(T0, 8)], min_capacity=1, **common) is None
    # Already at its minimum: nothing to save however idle.
    assert cost.finding(p95_utilisation=1, steps=[(T0, 2)], min_capacity=2, **common) is None


@pytest.fixture
def idle_fleet(org, run, clock):
    clock.set(T0)
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(
        autoscaling.create_target,
        "checkout-web",
        "checkout",
        min_capacity=1,
        max_capacity=10,
        desired_capacity=8,
        unit_cost_per_hour=0.5,
    )
    run(
        autoscaling.create_policy,
        "checkout-cpu",
        "checkout-web",
        metric="cpu_utilization",
        match={"service": "checkout"},
        target_value=60.0,
    )


def feed(run, clock, days, value_of_hour):
    """One sample per minute for the first five minutes of each hour, hour by hour."""
    for hour in range(days * 24):
        now = clock.now()
        run(
            alarms.ingest_json,
            {
                "samples": [
                    {
                        "name": "cpu_utilization",
                        "labels": {"service": "checkout"},
                        "value": value_of_hour(hour),
                        "timestamp": (now + timedelta(minutes=m)).timestamp(),
                    }
                    for m in range(5)
                ]
            },
        )
        clock.advance(hours=1)


def test_an_idle_fleet_is_found_with_its_saving(db, run, clock, idle_fleet):
    # 10 % of the hours run at 20 %, the rest at 10 %: the p95 of all samples is 20. The
    # average of the hourly p95s would be 11 and suggest 2 units, which would not do.
    feed(run, clock, 14, lambda hour: 20.0 if hour % 10 == 0 else 10.0)
    [found] = run(cost.findings)
    assert found.target == "checkout-web" and found.service == "checkout"
    assert found.p95_utilisation == pytest.approx(20.0, rel=0.01)
    assert found.threshold == 30.0  # half the target of 60
    assert found.sufficient_capacity == 3  # ceil(8 x 20 / 60)
    assert found.capacity_hours == 8 * 336
    assert found.saving == (8 - 3) * 336 * 0.5 == 840.0
    assert found.monthly_saving == (8 - 3) * 730 * 0.5


def test_a_busy_fleet_has_no_finding(db, run, clock, idle_fleet):
    feed(run, clock, 2, lambda hour: 40.0)
    assert run(cost.findings, 2) == []  # 40 is above half the target of 60
    [found] = run(cost.findings, 2, threshold=50.0)
    assert found.sufficient_capacity == 6  # ceil(8 x 40 / 60)


def test_bad_periods_are_refused(db, run, idle_fleet):
    with pytest.raises(InvalidInput, match="days"):
        run(cost.findings, 0)


def test_the_demo_seeds_a_scaling_history_and_a_cost_finding(db, org, run, clock):
    from mechanisms.ops import scaling_demo

    run(alarms.create_service, "shop", "Shop", "payments")
    run(scaling_demo.seed_tracked_fleet, "shop")
    run(scaling_demo.seed_idle_fleet, "shop")
    changes = [d for d in run(autoscaling.history, "web") if d.to_capacity != d.from_capacity]
    assert {d.to_capacity > d.from_capacity for d in changes} == {True, False}
    [found] = run(cost.findings)
    assert found.target == "workers" and found.sufficient_capacity == 2  # ceil(6 x ~15 / 60)
    assert found.saving > 0
