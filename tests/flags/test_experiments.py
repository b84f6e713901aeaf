"""Experiments: exposures and feedback in, per-variant results, one-step decisions, and
guardrails that roll a deployment back."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from mechanisms.core.errors import Conflict, InvalidInput
from mechanisms.flags import deployments, experiments, service
from mechanisms.flags.tables import FlagFeedback
from tests.flags.conftest import engine, evaluate

SPLIT = {
    "variants": {"control": "old", "treatment": "new"},
    "off_variant": "control",
    "fallthrough": {
        "split": [{"variant": "control", "percent": 50}, {"variant": "treatment", "percent": 50}]
    },
}
METRICS = [
    {"name": "purchase", "kind": "conversion"},
    {
        "name": "latency_ms",
        "kind": "numeric",
        "higher_is_better": False,
        "guardrail": {"direction": "increase_is_bad", "bound": 0.05},
    },
]


@pytest.fixture
def experiment(org, run):
    run(service.create_app, "shop", "Shop", "payments")
    run(
        service.create_flag,
        "shop",
        "checkout",
        flag_type="string",
        kind="experiment",
        variants={"control": "old", "treatment": "new"},
        off_variant="control",
    )
    run(service.set_config, "shop", "checkout", "gamma", SPLIT)
    return run(
        experiments.start,
        "shop",
        "checkout",
        "gamma",
        control="control",
        metrics=METRICS,
        hypothesis="the new checkout sells more",
    )


def expose(db, run, keys, latency=lambda variant: 100.0, converts=lambda variant: False):
    """Evaluate like an SDK, report exposures, then feedback per unit."""
    rules = engine(db, "shop", "gamma")
    exposures, feedback = [], []
    rng = random.Random(3)
    for key in keys:
        variant = rules.evaluate("checkout", {"targetingKey": key}).variant
        exposures.append({"flag": "checkout", "targetingKey": key, "variant": variant})
        feedback.append(
            {
                "targetingKey": key,
                "metric": "latency_ms",
                "value": latency(variant) + rng.gauss(0, 10),
            }
        )
        if converts(variant):
            feedback.append(
                {"targetingKey": key, "metric": "purchase", "comment": f"bought ({variant})"}
            )
    for start in range(0, len(exposures), 1000):
        run(experiments.record_exposures, "shop", "gamma", exposures[start : start + 1000])
    for start in range(0, len(feedback), 1000):
        run(experiments.record_feedback, "shop", "gamma", feedback[start : start + 1000])


def test_an_experiment_needs_a_split_and_a_control_in_it(org, run):
    run(service.create_app, "shop", "Shop", "payments")
    run(service.create_flag, "shop", "plain")
    with pytest.raises(InvalidInput, match="no percentage split"):
        run(experiments.start, "shop", "plain", "gamma", control="off", metrics=METRICS)
    run(
        service.set_config,
        "shop",
        "plain",
        "gamma",
        {**SPLIT, "variants": {"control": True, "treatment": False}},
    )
    with pytest.raises(InvalidInput, match="control must be one of"):
        run(experiments.start, "shop", "plain", "gamma", control="nope", metrics=METRICS)
    with pytest.raises(InvalidInput, match="metrics.0.guardrail.bound"):
        run(
            experiments.start,
            "shop",
            "plain",
            "gamma",
            control="control",
            metrics=[{"name": "x", "guardrail": {"direction": "increase_is_bad", "bound": -1}}],
        )


def test_results_per_variant_with_statistics(db, run, experiment):
    rng = random.Random(1)
    expose(
        db,
        run,
        [f"user-{i}" for i in range(3000)],
        converts=lambda v: rng.random() < (0.20 if v == "treatment" else 0.10),
    )
    found = run(experiments.results, experiment.id)
    assert sum(found.exposures.values()) == 3000
    assert not found.sample_ratio.mismatch
    purchase = found.metrics[0].analysis
    control, treatment = purchase.variants["control"], purchase.variants["treatment"]
    assert abs(control.mean - 0.10) < 0.03 and abs(treatment.mean - 0.20) < 0.03
    result = purchase.treatments["treatment"]
    assert result.comparison.p_value < 0.001 and result.comparison.ci_low > 0
    assert result.bayesian.chance_to_beat_control > 0.99
    assert result.sequential.p_value < 0.05
    assert found.comments["treatment"][0].startswith("bought")


def test_exposures_keep_the_first_variant_and_bad_batches_store_nothing(db, run, experiment):
    run(
        experiments.record_exposures,
        "shop",
        "gamma",
        [{"flag": "checkout", "targetingKey": "u1", "variant": "control"}],
    )
    run(
        experiments.record_exposures,
        "shop",
        "gamma",
        [{"flag": "checkout", "targetingKey": "u1", "variant": "treatment"}],
    )
    assert run(experiments.results, experiment.id).exposures == {"control": 1, "treatment": 0}
    with pytest.raises(InvalidInput) as refused:
        run(
            experiments.record_feedback,
            "shop",
            "gamma",
            [
                {"targetingKey": "u1", "metric": "latency_ms", "value": 120},
                {"targetingKey": "u1", "metric": "latency_ms", "value": float("nan")},
            ],
        )
    assert refused.value.details["field"] == "events.1.value"
    with db.transaction(write=False) as session:
        assert session.execute(select(func.count()).select_from(FlagFeedback)).scalar_one() == 0


def test_a_skewed_split_is_a_sample_ratio_mismatch(db, run, experiment):
    exposures = [
        {
            "flag": "checkout",
            "targetingKey": f"u{i}",
            "variant": "control" if i % 10 else "treatment",
        }
        for i in range(1000)
    ]
    run(experiments.record_exposures, "shop", "gamma", exposures)
    assert run(experiments.results, experiment.id).sample_ratio.mismatch


def test_shipping_starts_a_gradual_rollout_of_the_winner(db, run, clock, worker, experiment):
    change = run(experiments.decide, experiment.id, "ship", "sells 2x", variant="treatment")
    assert change.deployment.strategy_name == "Linear20PercentEvery6Minutes"
    for _ in range(6):
        clock.advance(minutes=6)
        worker.run_until_idle()
    clock.advance(minutes=31)
    worker.run_until_idle()
    assert {
        evaluate(db, "shop", "gamma", "checkout", {"targetingKey": f"u{i}"}).value
        for i in range(50)
    } == {"new"}
    decided = run(experiments.get, experiment.id)
    assert (decided.state, decided.decision_variant, decided.reason) == (
        "shipped",
        "treatment",
        "sells 2x",
    )
    with pytest.raises(Conflict, match="already decided"):
        run(experiments.decide, experiment.id, "rollback", "changed my mind")


def test_rolling_back_serves_the_control_at_once(db, run, experiment):
    run(experiments.decide, experiment.id, "rollback", "no effect")
    rules = engine(db, "shop", "gamma")
    assert {rules.evaluate("checkout", {"targetingKey": f"u{i}"}).value for i in range(50)} == {
        "old"
    }


def test_a_crossed_guardrail_rolls_the_deployment_back(db, run, clock, worker, experiment):
    clock.advance(minutes=11)  # the experiment's own version finishes baking
    worker.run_until_idle()
    # A new version (same split, new copy) goes out watching the experiment's guardrails.
    run(
        service.set_config,
        "shop",
        "checkout",
        "gamma",
        {**SPLIT, "targets": {"treatment": ["qa"]}},
        strategy="Linear20PercentEvery6Minutes",
        monitors={"guardrails": True},
    )
    expose(
        db,
        run,
        [f"user-{i}" for i in range(2000)],
        latency=lambda v: 150.0 if v == "treatment" else 100.0,
    )
    clock.advance(minutes=6)
    worker.run_until_idle()
    deployment = run(deployments.deployments, "shop", "checkout", "gamma")[0]
    assert deployment.state == "rolled_back"
    assert "guardrail crossed: latency_ms (treatment)" in deployment.reason
