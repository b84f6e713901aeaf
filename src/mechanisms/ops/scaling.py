"""Target tracking: how many units (instances, replicas, workers) a resource should run so
that a metric stays near its target, the way AWS Application Auto Scaling target tracking
and the Kubernetes HorizontalPodAutoscaler decide it.

Pure: no database, no clock reads; ``now`` and the history of scaling activities are
parameters.

The rule, in order:

1. ``ratio = metric / target``. Within the tolerance (``|ratio - 1| <= tolerance``, 0.1
   by default like the HPA) the formula asks for no change.
2. Otherwise ``desired = ceil(current x ratio)`` (the HPA's formula), clamped to
   [min_capacity, max_capacity]. From zero units the formula cannot scale; any load
   above zero asks for one unit.
3. A capacity outside [min, max] (after the bounds changed) is brought inside them even
   when a cooldown or scale-in protection would hold a change back.
4. Scale-out waits for ``scale_out_cooldown_seconds`` after the last scale-out; scale-in
   waits for ``scale_in_cooldown_seconds`` after the last scaling activity of either
   direction, and never happens with ``disable_scale_in``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Ratios and products are rounded this finely before comparing and rounding up, so
# that 110 / 100 counts as "within 10 %" and 3 x 0.7 / 0.1 asks for 21, not 22.
_EPSILON = 1e-9

Capacity = Annotated[int, Field(strict=True, ge=0)]
Seconds = Annotated[int, Field(strict=True, ge=0)]


class ScalingPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    target_value: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
    min_capacity: Capacity
    max_capacity: Capacity
    tolerance: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, lt=1)] = 0.1
    scale_out_cooldown_seconds: Seconds = 300
    scale_in_cooldown_seconds: Seconds = 300
    disable_scale_in: Annotated[bool, Field(strict=True)] = False

    @field_validator("max_capacity")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_capacity")
        if low is not None and value < low:
            raise ValueError(f"max_capacity ({value}) must not be below min_capacity ({low})")
        return value


@dataclass(frozen=True)
class ScalingActivity:
    at: datetime
    from_capacity: int
    to_capacity: int

    @property
    def direction(self) -> Literal["out", "in", "none"]:
        if self.to_capacity > self.from_capacity:
            return "out"
        if self.to_capacity < self.from_capacity:
            return "in"
        return "none"


@dataclass(frozen=True)
class Decision:
    new_capacity: int
    reason: str
    changed: bool
    # What the formula asked for, within [min, max], before cooldowns and protection.
    desired_capacity: int
    direction: Literal["out", "in", "none"]
    # When a cooldown held the change back: when it ends.
    blocked_until: datetime | None = None


def _aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware")
    return value.astimezone(UTC)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a whole number of at least 0, got {value!r}")
    return value


def _fmt(value: float) -> str:
    return f"{value:g}"


def formula_capacity(
    policy: ScalingPolicy, current_capacity: int, metric_value: float
) -> tuple[int, str]:
    """The capacity the target-tracking formula asks for, within [min, max], and why."""
    ratio = metric_value / policy.target_value
    low, high = policy.min_capacity, policy.max_capacity
    if current_capacity == 0:
        raw = 1 if metric_value > 0 else 0
        why = f"from 0 units, a metric of {_fmt(metric_value)} asks for {raw}"
    elif abs(ratio - 1) <= policy.tolerance + _EPSILON:
        raw = current_capacity
        why = (
            f"the metric {_fmt(metric_value)} is within {_fmt(policy.tolerance * 100)}% of the "
            f"target {_fmt(policy.target_value)} (ratio {ratio:.3g})"
        )
    else:
        product = current_capacity * ratio
        if not math.isfinite(product) or product > high:
            raw = high + 1  # anything above the maximum; clamped below
            exact = f"{product:.4g}"
        else:
            raw = math.ceil(round(product, 9))
            exact = str(raw)
        why = (
            f"the metric {_fmt(metric_value)} against the target {_fmt(policy.target_value)} "
            f"gives ceil({current_capacity} x {ratio:.4g}) = {exact}"
        )
    desired = min(max(raw, low), high)
    if desired != raw:
        why += f", kept to the {'minimum' if desired == low else 'maximum'} {desired}"
    return desired, why


def decide(
    policy: ScalingPolicy,
    current_capacity: int,
    metric_value: float,
    now: datetime,
    history: Iterable[ScalingActivity] = (),
) -> Decision:
    """The capacity to run now. ``history`` holds earlier scaling activities (any order)."""
    if not isinstance(policy, ScalingPolicy):
        raise ValueError("policy: expected a ScalingPolicy")
    current = _count(current_capacity, "current_capacity")
    if isinstance(metric_value, bool) or not isinstance(metric_value, int | float):
        raise ValueError(f"metric_value: expected a number, got {type(metric_value).__name__}")
    try:
        metric = float(metric_value)
    except OverflowError:
        raise ValueError(f"metric_value: {metric_value!r} is too large") from None
    if not math.isfinite(metric) or metric < 0:
        raise ValueError(
            f"metric_value: must be a finite number of at least 0, got {metric_value!r}"
        )
    moment = _aware(now, "now")
    activities: list[tuple[datetime, ScalingActivity]] = []
    for i, activity in enumerate(history):
        if not isinstance(activity, ScalingActivity):
            raise ValueError(f"history[{i}]: expected a ScalingActivity")
        at = _aware(activity.at, f"history[{i}].at")
        _count(activity.from_capacity, f"history[{i}].from_capacity")
        _count(activity.to_capacity, f"history[{i}].to_capacity")
        if activity.direction != "none":
            activities.append((at, activity))

    desired, why = formula_capacity(policy, current, metric)
    bounded = min(max(current, policy.min_capacity), policy.max_capacity)

    def decision(new: int, reason: str, until: datetime | None = None) -> Decision:
        direction: Literal["out", "in", "none"] = (
            "out" if new > current else "in" if new < current else "none"
        )
        return Decision(new, reason, new != current, desired, direction, until)

    def held(because: str, until: datetime | None = None) -> Decision:
        if bounded == current:
            return decision(current, f"{why}; {because}, so the capacity stays {current}.", until)
        return decision(
            bounded,
            f"{why}; {because}, but {current} is outside [{policy.min_capacity}, "
            f"{policy.max_capacity}], so the capacity becomes {bounded}.",
            until,
        )

    if desired == current:
        return decision(current, f"{why}; the capacity stays {current}.")
    if desired > current:
        outs = [at for at, a in activities if a.direction == "out"]
        if outs and policy.scale_out_cooldown_seconds:
            until = max(outs) + timedelta(seconds=policy.scale_out_cooldown_seconds)
            if moment < until:
                return held(
                    "scaling out waits for the scale-out cooldown of the last scale-out "
                    f"(until {until.isoformat()})",
                    until,
                )
        return decision(desired, f"{why}; scaling out from {current} to {desired}.")
    if policy.disable_scale_in:
        return held("scale-in is disabled for this policy")
    if activities and policy.scale_in_cooldown_seconds:
        until = max(at for at, _ in activities) + timedelta(
            seconds=policy.scale_in_cooldown_seconds
        )
        if moment < until:
            return held(
                "scaling in waits for the scale-in cooldown of the last scaling activity "
                f"(until {until.isoformat()})",
                until,
            )
    return decision(desired, f"{why}; scaling in from {current} to {desired}.")
