"""The ops part of the demo organisation: two services with synthetic latency and CPU
metrics (two days of history, then a minute at a time from the worker), and alarms over
them in every state: checkout's latency in ALARM (an incident is under way when the demo
starts, and it cuts a ticket), search's CPU OK, a backlog alarm on a metric nobody sends
in INSUFFICIENT_DATA, and a composite over two of them; a scaling history and a cost
finding."""

from __future__ import annotations

from datetime import timedelta

from mechanisms.core.context import Ctx
from mechanisms.demo import extend
from mechanisms.ops import alarms, scaling_demo, synthetic

SERVICES = [
    # key, name, owner team (teams of mechanisms.demo)
    ("checkout", "Checkout", "payments"),
    ("search", "Search", "search"),
]
PROFILES = [
    synthetic.ServiceProfile(service="checkout", latency_ms=120, cpu_percent=62),
    # Search is over-provisioned: its CPU stays low, which cost findings point out.
    synthetic.ServiceProfile(service="search", latency_ms=45, cpu_percent=18),
]
SEED = 5
# The incident under way when the demo starts: checkout's alarm fires at once and
# recovers a few minutes after it ends.
INCIDENT_BEFORE_START = timedelta(minutes=8)
INCIDENT_MINUTES = 20


def _every_minute(statistic: str, comparison: str, threshold: float, **more: object) -> dict:
    return {
        "statistic": statistic,
        "comparison": comparison,
        "threshold": threshold,
        "period_seconds": 60,
        "evaluation_periods": 5,
        "datapoints_to_alarm": 3,
        **more,
    }


@extend
def seed_ops(ctx: Ctx) -> None:
    seed_services(ctx)
    start_synthetic_metrics(ctx)
    seed_alarms(ctx)
    seed_scaling(ctx)
    # The first evaluation: the alarms show their states before the worker's first tick
    # (the worker then delivers the transitions, and checkout's ticket is cut).
    alarms.evaluate_due(ctx)


def seed_services(ctx: Ctx) -> None:
    for key, name, team in SERVICES:
        alarms.create_service(ctx, key, name, team)


def start_synthetic_metrics(ctx: Ctx) -> None:
    incident = synthetic.Incident(
        service="checkout",
        start=(ctx.now - INCIDENT_BEFORE_START).replace(second=0, microsecond=0),
        minutes=INCIDENT_MINUTES,
    )
    config = synthetic.SyntheticConfig(seed=SEED, services=PROFILES, incidents=[incident])
    synthetic.enable(ctx, config)
    synthetic.generate(ctx, config)


def seed_alarms(ctx: Ctx) -> None:
    checkout = {"service": "checkout"}
    alarms.create_alarm(
        ctx,
        "checkout-latency-p99",
        "checkout",
        metric=synthetic.LATENCY_METRIC,
        match=checkout,
        definition=_every_minute("p99", "GreaterThanThreshold", 1000),
        severity=2,
        description="Checkout's p99 latency above one second: customers abandon carts.",
    )
    alarms.create_alarm(
        ctx,
        "search-cpu-high",
        "search",
        metric=synthetic.CPU_METRIC,
        match={"service": "search"},
        definition=_every_minute("avg", "GreaterThanThreshold", 85),
        severity=3,
        description="Search's CPU above 85 %: time to scale out.",
    )
    alarms.create_alarm(
        ctx,
        "search-index-backlog",
        "search",
        metric="search_index_backlog",
        match={"service": "search"},
        definition=_every_minute("max", "GreaterThanThreshold", 10_000),
        severity=4,
        description="Documents waiting to be indexed (the indexer does not report yet).",
    )
    alarms.create_alarm(
        ctx,
        "storefront-degraded",
        "checkout",
        rule="ALARM(checkout-latency-p99) OR ALARM(search-cpu-high)",
        severity=3,
        description="Either half of the storefront is in trouble.",
    )


def seed_scaling(ctx: Ctx) -> None:
    """Checkout's web fleet followed two days of traffic (a capacity history to look at);
    search's workers stayed oversized for two weeks (a cost finding)."""
    scaling_demo.seed_tracked_fleet(ctx, "checkout")
    scaling_demo.seed_idle_fleet(ctx, "search")
