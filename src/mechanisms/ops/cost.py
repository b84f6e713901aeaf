"""Cost-saving findings: scalable targets whose utilisation stayed low over a period,
the capacity that would have sufficed, and what running only that would have saved.

The utilisation is the p95 of the target's scaling metric over the whole period, read
from the store's merged sketches (a percentile of all the samples, never an average of
per-minute percentiles). The capacity that would have sufficed carries that p95 load at
the policy's target utilisation: ``ceil(peak capacity x p95 / target)``, and never less
than the target's minimum or one unit. The saving is the capacity-hours actually run
(from the capacity history) minus those of the sufficient capacity, at the unit cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role
from mechanisms.ops import autoscaling, metrics
from mechanisms.ops.tables import (
    MetricRollup,
    MetricSeries,
    OpsService,
    ScalingPolicyRow,
)

HOURS_PER_MONTH = 730  # 365 x 24 / 12
DEFAULT_DAYS = 14
# Below half the target utilisation at p95, a target runs at least twice what it needs.
DEFAULT_THRESHOLD_FRACTION = 0.5


@dataclass(frozen=True)
class Finding:
    target: str
    service: str
    metric: str
    start: datetime
    end: datetime
    p95_utilisation: float
    threshold: float
    target_utilisation: float
    average_capacity: float
    peak_capacity: int
    sufficient_capacity: int
    capacity_hours: float
    unit_cost_per_hour: float
    saving: float
    monthly_saving: float

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        return out


def capacity_hours(steps: list[tuple[datetime, int]], end: datetime) -> float:
    """The area under a step function of capacity: (from, capacity) steps up to ``end``."""
    total = 0.0
    for (at, capacity), nxt in zip(steps, [*steps[1:], (end, 0)], strict=True):
        total += capacity * max((nxt[0] - at).total_seconds(), 0) / 3600
    return total


def sufficient_capacity(
    peak_capacity: int, p95_utilisation: float, target_utilisation: float, min_capacity: int
) -> int:
    """The fewest units that carry the p95 load at the target utilisation."""
    needed = math.ceil(round(peak_capacity * p95_utilisation / target_utilisation, 9))
    return max(needed, min_capacity, 1)


def finding(
    *,
    target: str,
    service: str,
    metric: str,
    start: datetime,
    end: datetime,
    p95_utilisation: float,
    threshold: float,
    target_utilisation: float,
    steps: list[tuple[datetime, int]],
    min_capacity: int,
    unit_cost_per_hour: float,
) -> Finding | None:
    """A finding when the p95 stayed below the threshold and fewer units would have done;
    None otherwise. Pure: every input is a parameter."""
    if p95_utilisation >= threshold or target_utilisation <= 0:
        return None
    hours = (end - start).total_seconds() / 3600
    if hours <= 0:
        return None
    ran = capacity_hours(steps, end)
    peak = max(c for _, c in steps)
    enough = sufficient_capacity(peak, p95_utilisation, target_utilisation, min_capacity)
    saved_hours = ran - enough * hours
    if saved_hours <= 0:
        return None
    saving = saved_hours * unit_cost_per_hour
    return Finding(
        target=target,
        service=service,
        metric=metric,
        start=start,
        end=end,
        p95_utilisation=p95_utilisation,
        threshold=threshold,
        target_utilisation=target_utilisation,
        average_capacity=ran / hours,
        peak_capacity=peak,
        sufficient_capacity=enough,
        capacity_hours=ran,
        unit_cost_per_hour=unit_cost_per_hour,
        saving=round(saving, 2),
        monthly_saving=round(saving / hours * HOURS_PER_MONTH, 2),
    )


def window_percentile(
    session: Session,
    name: str,
    match: dict[str, str],
    quantile: float,
    start: datetime,
    end: datetime,
) -> float | None:
    """One percentile of every sample of the matching series in [start, end), from their
    rollups' sketches merged into one."""
    ids = [
        s.id
        for s in session.execute(
            select(MetricSeries.id, MetricSeries.labels).where(MetricSeries.name == name)
        )
        if all(s.labels.get(k) == v for k, v in match.items())
    ]
    bins: list[metrics.SketchBins] = []
    low, high = math.inf, -math.inf
    for first in range(0, len(ids), 500):
        for row in session.execute(
            select(MetricRollup.sketch, MetricRollup.min, MetricRollup.max).where(
                MetricRollup.series_id.in_(ids[first : first + 500]),
                MetricRollup.bucket_start >= start,
                MetricRollup.bucket_start < end,
            )
        ):
            bins.append(metrics.SketchBins.of(row.sketch))
            low, high = min(low, row.min), max(high, row.max)
    if not bins:
        return None
    found = metrics.merged(bins).get_quantile_value(quantile)
    return None if found is None else min(max(found, low), high)


def findings(ctx: Ctx, days: int = DEFAULT_DAYS, threshold: float | None = None) -> list[Finding]:
    """Targets whose p95 utilisation over the last ``days`` stayed below ``threshold``
    (by default half of each policy's target value), largest saving first. A target's
    utilisation metric is that of its first scaling policy."""
    require_site_role(ctx, Role.VIEWER)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
        raise InvalidInput("days: 1 to 366", details={"field": "days"})
    if threshold is not None and (not math.isfinite(threshold) or threshold <= 0):
        raise InvalidInput("threshold: a positive number", details={"field": "threshold"})
    end = ctx.now.replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    found = []
    for target in autoscaling.list_targets(ctx):
        policy = ctx.session.execute(
            select(ScalingPolicyRow)
            .where(ScalingPolicyRow.target_id == target.id)
            .order_by(ScalingPolicyRow.id)
            .limit(1)
        ).scalar_one_or_none()
        if policy is None:
            continue
        # Before the target existed nothing ran (and nothing was paid for) under its name.
        since = max(start, target.created_at)
        p95 = window_percentile(ctx.session, policy.metric, policy.match, 0.95, since, end)
        if p95 is None:
            continue
        service = ctx.session.get(OpsService, target.service_id)
        result = finding(
            target=target.key,
            service=service.key,
            metric=policy.metric,
            start=since,
            end=end,
            p95_utilisation=p95,
            threshold=policy.target_value * DEFAULT_THRESHOLD_FRACTION
            if threshold is None
            else threshold,
            target_utilisation=policy.target_value,
            steps=autoscaling.capacity_changes(ctx.session, target, since, end),
            min_capacity=target.min_capacity,
            unit_cost_per_hour=target.unit_cost_per_hour,
        )
        if result is not None:
            found.append(result)
    return sorted(found, key=lambda f: -f.saving)
