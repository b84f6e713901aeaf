"""Target tracking: worked examples from the Kubernetes HPA documentation, cooldowns,
scale-in protection, and properties that hold for every input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mechanisms.ops.scaling import ScalingActivity, ScalingPolicy, decide

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def policy(**change: object) -> ScalingPolicy:
    fields: dict[str, object] = {"target_value": 100.0, "min_capacity": 1, "max_capacity": 20}
    fields.update(change)
    return ScalingPolicy(**fields)  # type: ignore[arg-type]


def test_the_hpa_documentation_examples():
    """kubernetes.io, "Horizontal Pod Autoscaling", algorithm details:
    desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)];
    200m against a target of 100m doubles the replicas, 50m halves them, and a ratio
    within the 0.1 tolerance changes nothing."""
    doubled = decide(policy(), 3, 200.0, NOW)
    assert (doubled.new_capacity, doubled.changed, doubled.direction) == (6, True, "out")
    assert "ceil(3 x 2) = 6" in doubled.reason
    halved = decide(policy(), 6, 50.0, NOW)
    assert (halved.new_capacity, halved.direction) == (3, "in")
    for close in (91.0, 105.0, 110.0, 90.0):
        kept = decide(policy(), 3, close, NOW)
        assert (kept.new_capacity, kept.changed) == (3, False), close
        assert "within 10% of the target" in kept.reason
    assert decide(policy(), 3, 111.0, NOW).new_capacity == 4
    assert decide(policy(), 10, 0.0, NOW).new_capacity == 1  # the minimum


def test_rounding_is_up_and_not_fooled_by_floating_point():
    assert decide(policy(target_value=0.1, max_capacity=50), 3, 0.7, NOW).new_capacity == 21
    assert decide(policy(), 3, 150.0, NOW).new_capacity == 5  # ceil(4.5)
    assert decide(policy(), 4, 60.0, NOW).new_capacity == 3  # ceil(2.4)


def test_the_result_is_kept_within_min_and_max():
    capped = decide(policy(max_capacity=8), 5, 400.0, NOW)
    assert capped.new_capacity == 8 and "kept to the maximum 8" in capped.reason
    floored = decide(policy(min_capacity=4), 6, 10.0, NOW)
    assert floored.new_capacity == 4 and "kept to the minimum 4" in floored.reason
    huge = decide(policy(target_value=1e-300), 5, 1e300, NOW)
    assert huge.new_capacity == 20


def test_a_capacity_outside_the_bounds_is_brought_inside_even_during_cooldown():
    recent = [ScalingActivity(NOW - timedelta(seconds=10), 30, 25)]
    decision = decide(policy(max_capacity=10), 25, 100.0, NOW, recent)
    assert decision.new_capacity == 10 and decision.direction == "in"
    low = decide(policy(min_capacity=3, disable_scale_in=True), 1, 10.0, NOW)
    assert low.new_capacity == 3


def test_scale_out_waits_for_the_scale_out_cooldown_of_the_last_scale_out():
    history = [ScalingActivity(NOW - timedelta(seconds=120), 2, 3)]
    held = decide(policy(scale_out_cooldown_seconds=300), 3, 200.0, NOW, history)
    assert (held.new_capacity, held.changed) == (3, False)
    assert held.desired_capacity == 6
    assert held.blocked_until == NOW + timedelta(seconds=180)
    assert "scale-out cooldown" in held.reason
    later = decide(
        policy(scale_out_cooldown_seconds=300), 3, 200.0, NOW + timedelta(seconds=180), history
    )
    assert later.new_capacity == 6
    # a recent scale-in does not hold a scale-out back
    after_in = [ScalingActivity(NOW - timedelta(seconds=10), 4, 3)]
    assert decide(policy(), 3, 200.0, NOW, after_in).new_capacity == 6


def test_scale_in_waits_for_the_scale_in_cooldown_of_any_last_activity():
    after_out = [ScalingActivity(NOW - timedelta(seconds=200), 3, 6)]
    held = decide(policy(scale_in_cooldown_seconds=300), 6, 50.0, NOW, after_out)
    assert (held.new_capacity, held.blocked_until) == (6, NOW + timedelta(seconds=100))
    assert "scale-in cooldown" in held.reason
    assert (
        decide(
            policy(scale_in_cooldown_seconds=300), 6, 50.0, NOW + timedelta(seconds=100), after_out
        ).new_capacity
        == 3
    )
    assert decide(policy(scale_in_cooldown_seconds=0), 6, 50.0, NOW, after_out).new_capacity == 3


def test_scale_in_protection():
    protected = decide(policy(disable_scale_in=True), 6, 10.0, NOW)
    assert (protected.new_capacity, protected.changed) == (6, False)
    assert "scale-in is disabled" in protected.reason
    assert decide(policy(disable_scale_in=True), 6, 300.0, NOW).new_capacity == 18


def test_scaling_from_zero():
    assert decide(policy(min_capacity=0), 0, 5.0, NOW).new_capacity == 1
    assert decide(policy(min_capacity=0), 0, 0.0, NOW).new_capacity == 0


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"target_value": float("nan")}, "target_value", "finite"),
        ({"target_value": 0.0}, "target_value", "greater than 0"),
        ({"max_capacity": 0, "min_capacity": 2}, "max_capacity", "must not be below"),
        ({"min_capacity": -1}, "min_capacity", "greater than or equal to 0"),
        ({"tolerance": 1.0}, "tolerance", "less than 1"),
        ({"tolerance": float("inf")}, "tolerance", "finite"),
        ({"scale_in_cooldown_seconds": -5}, "scale_in_cooldown_seconds", "greater than or equal"),
        ({"disable_scale_in": "yes"}, "disable_scale_in", "valid boolean"),
        ({"min_capacity": True}, "min_capacity", "valid integer"),
        ({"warmup": 60}, "warmup", "Extra inputs"),
    ],
)
def test_a_bad_policy_names_the_field(change, field, words):
    with pytest.raises(ValidationError) as caught:
        policy(**change)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert words in errors[0]["msg"]


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="metric_value"):
        decide(policy(), 3, float("nan"), NOW)
    with pytest.raises(ValueError, match="metric_value"):
        decide(policy(), 3, float("inf"), NOW)
    with pytest.raises(ValueError, match="metric_value"):
        decide(policy(), 3, -1.0, NOW)
    with pytest.raises(ValueError, match="metric_value"):
        decide(policy(), 3, 10**400, NOW)
    with pytest.raises(ValueError, match="current_capacity"):
        decide(policy(), -1, 1.0, NOW)
    with pytest.raises(ValueError, match="current_capacity"):
        decide(policy(), True, 1.0, NOW)
    with pytest.raises(ValueError, match="now: must be timezone-aware"):
        decide(policy(), 3, 1.0, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match=r"history\[0\].at"):
        decide(policy(), 3, 1.0, NOW, [ScalingActivity(datetime(2025, 1, 1), 1, 2)])
    with pytest.raises(ValueError, match=r"history\[0\]: expected a ScalingActivity"):
        decide(policy(), 3, 1.0, NOW, [("yesterday", 1, 2)])  # type: ignore[list-item]


policies = st.builds(
    lambda low, extra, target, tolerance, out_cd, in_cd, protect: ScalingPolicy(
        target_value=target,
        min_capacity=low,
        max_capacity=low + extra,
        tolerance=tolerance,
        scale_out_cooldown_seconds=out_cd,
        scale_in_cooldown_seconds=in_cd,
        disable_scale_in=protect,
    ),
    st.integers(0, 20),
    st.integers(0, 50),
    st.floats(0.01, 1e4),
    st.floats(0, 0.5),
    st.sampled_from([0, 60, 300]),
    st.sampled_from([0, 60, 300]),
    st.booleans(),
)
metrics = st.floats(0, 1e6, allow_nan=False)
histories = st.lists(
    st.builds(
        ScalingActivity,
        st.integers(0, 600).map(lambda s: NOW - timedelta(seconds=s)),
        st.integers(0, 80),
        st.integers(0, 80),
    ),
    max_size=3,
)


@given(policies, st.integers(0, 100), metrics, histories)
def test_never_outside_min_and_max(p, current, metric, history):
    decision = decide(p, current, metric, NOW, history)
    assert p.min_capacity <= decision.new_capacity <= p.max_capacity
    assert decision.changed == (decision.new_capacity != current)


@given(policies, st.integers(1, 100), st.floats(-1, 1), histories)
def test_within_the_tolerance_nothing_changes(p, current, where, history):
    metric = p.target_value * (1 + where * p.tolerance * 0.999)
    decision = decide(p, current, metric, NOW, history)
    assert decision.new_capacity == min(max(current, p.min_capacity), p.max_capacity)


@given(policies, st.integers(0, 100), metrics, metrics, histories)
def test_monotone_in_the_metric(p, current, a, b, history):
    low, high = sorted((a, b))
    assert (
        decide(p, current, low, NOW, history).new_capacity
        <= decide(p, current, high, NOW, history).new_capacity
    )
