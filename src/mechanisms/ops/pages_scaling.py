"""Scaling pages: the scalable targets, one target's capacity history graph (a step line
of desired capacity with the metric against its target, drawn here as SVG), and the
cost-saving findings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mechanisms.ops import alarms, autoscaling, cost
from mechanisms.ops.pages import render
from mechanisms.web.http import UnitOfWorkRoute
from mechanisms.web.pages import PageCtx

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)

WIDTH, HEIGHT = 1000.0, 300.0
MAX_POINTS = 300


@dataclass(frozen=True)
class Chart:
    capacity_path: str
    metric_path: str
    target_y: float | None
    capacity_ticks: list[tuple[float, int]]
    metric_ticks: list[tuple[float, str]]
    time_ticks: list[tuple[float, str]]
    caption: str


def _x(at: datetime, start: datetime, end: datetime) -> float:
    return round((at - start) / (end - start) * WIDTH, 1)


def scaling_chart(
    steps: list[tuple[datetime, int]],
    points: list[tuple[datetime, float | None]],
    target_value: float | None,
    start: datetime,
    end: datetime,
    max_capacity: int,
) -> Chart:
    """Geometry of the graph: capacity on the left scale (0 to the maximum), the metric
    and its target on the right scale (0 to a little above the larger of the two)."""
    top = max(max_capacity, max(c for _, c in steps), 1)

    def cy(capacity: int) -> float:
        return round(HEIGHT - capacity / top * HEIGHT, 1)

    first_at, first_capacity = steps[0]
    moves = [f"M{_x(max(first_at, start), start, end)},{cy(first_capacity)}"]
    for at, capacity in steps[1:]:
        moves.append(f"H{_x(at, start, end)} V{cy(capacity)}")
    moves.append(f"H{WIDTH}")
    values = [v for _, v in points if v is not None]
    metric_top = max([*values, target_value or 0, 1e-9]) * 1.15

    def my(value: float) -> float:
        return round(HEIGHT - value / metric_top * HEIGHT, 1)

    segments, pen_down = [], False
    for at, value in points:
        if value is None:
            pen_down = False
            continue
        segments.append(f"{'L' if pen_down else 'M'}{_x(at, start, end)},{my(value)}")
        pen_down = True
    span = end - start
    time_ticks = [
        (_x(start + span * i / 4, start, end), (start + span * i / 4).strftime("%m-%d %H:%M"))
        for i in range(5)
    ]
    capacity_ticks = sorted({(cy(c), c) for c in (0, top // 2, top)})
    metric_ticks = [(my(metric_top * f), f"{metric_top * f:.3g}") for f in (0, 0.5, 1)]
    final = steps[-1][1]
    caption = (
        f"capacity from {steps[0][1]} to {final} over {len(steps) - 1} change(s)"
        + (f"; metric peak {max(values):.3g}" if values else "; no metric data")
        + (f" against a target of {target_value:g}" if target_value is not None else "")
    )
    return Chart(
        " ".join(moves),
        " ".join(segments),
        my(target_value) if target_value is not None else None,
        capacity_ticks,
        metric_ticks,
        time_ticks,
        caption,
    )


@router.get("/ops/scaling")
def targets(request: Request, ctx: PageCtx) -> Response:
    rows = [autoscaling.describe_target(ctx, t) for t in autoscaling.list_targets(ctx)]
    return render(request, "scaling_targets.html", tab="scaling", rows=rows)


@router.get("/ops/scaling/{key}")
def target_page(
    request: Request,
    key: str,
    ctx: PageCtx,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 6,
) -> Response:
    target = autoscaling.get_target(ctx, key)
    policies = autoscaling.list_policies(ctx, key)
    end = ctx.now
    start = end - timedelta(hours=hours)
    steps = autoscaling.capacity_changes(ctx.session, target, start, end)
    points: list[tuple[datetime, float | None]] = []
    policy = policies[0] if policies else None
    if policy is not None:
        minutes = max(policy.period_seconds // 60, math.ceil(hours * 60 / MAX_POINTS))
        points = alarms.query(
            ctx, policy.metric, policy.match, policy.statistic, start, end, minutes * 60
        )
    chart = scaling_chart(
        steps,
        points,
        policy.target_value if policy else None,
        start,
        end,
        target.max_capacity,
    )
    names = {p.id: p.name for p in policies}
    return render(
        request,
        "scaling_target.html",
        tab="scaling",
        target=autoscaling.describe_target(ctx, target),
        policies=policies,
        policy=policy,
        decisions=autoscaling.history(ctx, key, limit=200),
        names=names,
        chart=chart,
        hours=hours,
    )


@router.get("/ops/costs")
def costs(
    request: Request,
    ctx: PageCtx,
    days: Annotated[int, Query(ge=1, le=366)] = cost.DEFAULT_DAYS,
) -> Response:
    found = cost.findings(ctx, days)
    return render(
        request,
        "scaling_costs.html",
        tab="costs",
        findings=found,
        days=days,
        total=round(sum(f.monthly_saving for f in found), 2),
    )
