"""The flags part of the demo organisation: an application with flags in every state a
new user should see: a rollout in progress, one rolled back by an alarm, an experiment
with results, a change request waiting for approval, an allow list, a stale flag."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal
from mechanisms.demo import extend
from mechanisms.flags import deployments, experiments, service
from mechanisms.flags.domain import Engine
from mechanisms.ops import alarms as ops_alarms

ON = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "fallthrough": {"variant": "on"},
}
SPLIT = {
    "variants": {"control": "Classic", "treatment": "One-page"},
    "off_variant": "control",
    "fallthrough": {
        "split": [{"variant": "control", "percent": 50}, {"variant": "treatment", "percent": 50}]
    },
}


def _watched_alarm(
    ctx: Ctx, name: str, service: str, team: str, statistic: str, threshold: float
) -> None:
    """An ops alarm a rollout watches (the ops demo may have made it already); silent
    metrics leave it in the state it is set to."""
    if not any(s.key == service for s in ops_alarms.list_services(ctx)):
        ops_alarms.create_service(ctx, service, service.title(), team)
    if any(a.name == name for a in ops_alarms.list_alarms(ctx)):
        return
    ops_alarms.create_alarm(
        ctx,
        name,
        service,
        metric="http_errors_total" if statistic == "count" else "api_latency_ms",
        match={"service": service},
        definition={
            "statistic": statistic,
            "comparison": "GreaterThanThreshold",
            "threshold": threshold,
            "period_seconds": 60,
            "evaluation_periods": 3,
            "datapoints_to_alarm": 3,
            "treat_missing_data": "ignore",
        },
        severity=2,
    )


@extend
def seed_flags(ctx: Ctx) -> None:
    # A flag that has served one value for 40 days: the staleness report shows it.
    then = replace(ctx, now=ctx.now - timedelta(days=40))
    service.create_app(then, "shop", "Shop", "payments")
    service.create_flag(
        then, "shop", "legacy-banner", description="the 2025 banner; nobody turned it off"
    )

    service.create_flag(ctx, "shop", "checkout-v2", description="the new checkout flow")
    service.set_config(ctx, "shop", "checkout-v2", "beta", ON, comment="everyone in beta")
    _watched_alarm(ctx, "checkout-latency", "checkout", "payments", "p99", 400)
    ops_alarms.set_state(ctx, "checkout-latency", "OK", "p99 under 400 ms")
    service.set_config(
        ctx,
        "shop",
        "checkout-v2",
        "gamma",
        ON,
        comment="gradual rollout in gamma",
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency"]},
    )
    erin = _person(ctx, "erin")
    service.set_config(
        replace(ctx, principal=erin), "shop", "checkout-v2", "prod", ON, comment="ready for prod?"
    )

    service.create_flag(ctx, "shop", "new-search", description="the rewritten search backend")
    # A rollout watches alarms that exist: the alarm first, then the rollout that watches it.
    _watched_alarm(ctx, "search-errors", "search", "search", "count", 100)
    service.set_config(
        ctx,
        "shop",
        "new-search",
        "gamma",
        ON,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["search-errors"]},
        comment="try the new backend",
    )
    ops_alarms.set_state(ctx, "search-errors", "ALARM", "5xx rate 4 % (threshold 1 %)")
    deployments.rollback_on_alarm(ctx, "search-errors")

    service.create_flag(
        ctx, "shop", "dark-mode", kind="permission", description="dark mode for the beta programme"
    )
    service.set_segment(
        ctx,
        "shop",
        "beta-programme",
        {
            "included": ["alice", "erin"],
            "rules": [[{"attribute": "email", "op": "ends_with", "values": ["@acme.example"]}]],
        },
    )
    service.set_config(
        ctx,
        "shop",
        "dark-mode",
        "gamma",
        {
            **ON,
            "fallthrough": {"variant": "off"},
            "targets": {"on": ["vip-1", "vip-2"]},
            "rules": [
                {
                    "id": "beta",
                    "clauses": [
                        {
                            "attribute": "segment",
                            "op": "segment_match",
                            "values": ["beta-programme"],
                        }
                    ],
                    "serve": {"variant": "on"},
                }
            ],
        },
    )

    _seed_experiment(ctx)


def _person(ctx: Ctx, username: str) -> Principal:
    from mechanisms.core import accounts

    user = accounts.get_user(ctx, username)
    return Principal(user_id=user.id, username=user.username, via="session")


def _seed_experiment(ctx: Ctx) -> None:
    service.create_flag(
        ctx,
        "shop",
        "checkout-layout",
        flag_type="string",
        kind="experiment",
        variants={"control": "Classic", "treatment": "One-page"},
        off_variant="control",
        description="does a one-page checkout sell more?",
    )
    service.set_config(ctx, "shop", "checkout-layout", "gamma", SPLIT, comment="50/50 experiment")
    experiment = experiments.start(
        ctx,
        "shop",
        "checkout-layout",
        "gamma",
        control="control",
        hypothesis="a one-page checkout sells more",
        metrics=[
            {"name": "purchase", "kind": "conversion"},
            {"name": "rating", "kind": "numeric"},
            {
                "name": "latency_ms",
                "kind": "numeric",
                "higher_is_better": False,
                "guardrail": {"direction": "increase_is_bad", "bound": 0.1},
            },
        ],
    )
    app = service.get_app(ctx, "shop")
    engine = Engine(service.ruleset(ctx.session, app, service.get_environment(ctx, app, "gamma")))
    rng = random.Random(42)
    exposures, feedback = [], []
    for i in range(2400):
        key = f"customer-{i}"
        variant = engine.evaluate("checkout-layout", {"targetingKey": key}).variant
        exposures.append({"flag": "checkout-layout", "targetingKey": key, "variant": variant})
        feedback.append(
            {
                "targetingKey": key,
                "metric": "latency_ms",
                "value": rng.gauss(320 if variant == "control" else 330, 40),
            }
        )
        if rng.random() < (0.12 if variant == "control" else 0.15):
            feedback.append({"targetingKey": key, "metric": "purchase"})
        if rng.random() < 0.1:
            rating = rng.choice([3, 4, 5] if variant == "treatment" else [2, 3, 4, 5])
            comment = rng.choice(["quick", "easy", "confusing", "fine", "love it"])
            feedback.append(
                {"targetingKey": key, "metric": "rating", "value": rating, "comment": comment}
            )
    for start in range(0, len(exposures), 1000):
        experiments.record_exposures(ctx, "shop", "gamma", exposures[start : start + 1000])
    for start in range(0, len(feedback), 1000):
        experiments.record_feedback(ctx, "shop", "gamma", feedback[start : start + 1000])
    del experiment
