"""Scaling for the demo organisation: a fleet whose policy followed two days of a daily
traffic wave (a capacity history worth looking at), and a fleet kept oversized by
scale-in protection for two weeks (a cost finding).

Time runs backwards here the way the rest of the demo does it: each step acts with a
context whose ``now`` is in the past, so samples land inside the store's late window
and decisions carry their own times.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta

from mechanisms.core.context import Ctx
from mechanisms.ops import alarms, autoscaling
from mechanisms.ops.tables import ScalableTarget

METRIC = "cpu_utilization"


def _samples(
    ctx: Ctx, labels: dict[str, str], utilisation: float, count: int, rng: random.Random
) -> None:
    alarms.ingest_json(
        ctx,
        {
            "samples": [
                {
                    "name": METRIC,
                    "labels": labels,
                    "value": round(max(0.0, utilisation * rng.uniform(0.9, 1.1)), 2),
                    "timestamp": (ctx.now + timedelta(seconds=5 + 50 * i / count)).timestamp(),
                }
                for i in range(count)
            ]
        },
    )


def seed_tracked_fleet(ctx: Ctx, service: str, key: str = "web", days: int = 2) -> ScalableTarget:
    """A target-tracking fleet over ``days`` of a daily wave of load, evaluated every ten
    minutes: it scales out in the mornings and back in at night."""
    rng = random.Random(7)
    start = ctx.now.replace(second=0, microsecond=0) - timedelta(days=days)
    then = replace(ctx, now=start)
    target = autoscaling.create_target(
        then,
        key,
        service,
        min_capacity=2,
        max_capacity=12,
        desired_capacity=3,
        unit_cost_per_hour=0.12,
        description="the web fleet of the service",
    )
    policy = autoscaling.create_policy(
        then,
        f"{key}-cpu",
        key,
        metric=METRIC,
        match={"service": service, "fleet": key},
        target_value=55.0,
        scale_out_cooldown_seconds=600,
        scale_in_cooldown_seconds=1800,
    )
    for slot in range(days * 144):
        at = replace(ctx, now=start + timedelta(minutes=10 * slot))
        hour = (at.now.hour + at.now.minute / 60) % 24
        # Units of work: a quiet night near 1.5 and an afternoon peak near 5.5.
        load = 3.5 - 2.0 * math.cos((hour - 3) / 24 * 2 * math.pi) + rng.uniform(-0.2, 0.2)
        _samples(
            at, {"service": service, "fleet": key}, 100 * load / target.desired_capacity, 6, rng
        )
        autoscaling.evaluate_policy(
            replace(at, now=at.now + timedelta(minutes=1)), policy, "schedule"
        )
    return target


def seed_idle_fleet(ctx: Ctx, service: str, key: str = "workers", days: int = 15) -> ScalableTarget:
    """Six units kept by scale-in protection while their p95 utilisation stayed near
    15 % for ``days``: the cost findings page lists it."""
    rng = random.Random(11)
    start = ctx.now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    then = replace(ctx, now=start)
    target = autoscaling.create_target(
        then,
        key,
        service,
        min_capacity=1,
        max_capacity=10,
        desired_capacity=6,
        unit_cost_per_hour=0.35,
        description="background workers",
    )
    autoscaling.create_policy(
        then,
        f"{key}-cpu",
        key,
        metric=METRIC,
        match={"service": service, "fleet": key},
        target_value=60.0,
        disable_scale_in=True,
    )
    for hour in range(days * 24):
        at = replace(ctx, now=start + timedelta(hours=hour))
        _samples(at, {"service": service, "fleet": key}, 12.0 + rng.uniform(-3, 3), 4, rng)
    return target
