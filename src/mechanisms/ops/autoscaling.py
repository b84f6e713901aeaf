"""Autoscaling service: scalable targets, target-tracking policies over the built-in
metrics, the capacity history, and the actions that carry each decision out.

A decision is made and recorded in one transaction (``evaluate_policy``); the action
runs after it commits:

- ``event`` (the default): the ``ops.scaling.decided`` event, which the event outbox
  delivers to in-process subscribers and to every webhook subscribed to it.
- ``webhook``: the same event, also addressed to one registered webhook (signed and
  retried by the outbox like every webhook delivery).
- ``command``: an argv a site admin configured, run by the worker without a shell and
  outside any transaction (``scaling_worker``), with the decision as JSON on stdin.

A command action is recorded ``pending`` with the decision, claimed as ``running`` in a
transaction of its own, run, and its outcome recorded in a third. After a crash:

- ``pending`` actions simply run (nothing was started);
- a ``running`` action whose lease ran out was started by a worker that stopped before
  it recorded the outcome. The command sets an absolute capacity, so running it again is
  safe: it is retried (the history says the earlier attempt's outcome is unknown) while
  it is still its target's latest decision and has used fewer than ``MAX_ATTEMPTS``;
  otherwise it is recorded ``superseded`` or ``unknown``, never silently dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mechanisms.core import audit, events, webhooks
from mechanisms.core.clock import ensure_utc
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    require_site_role,
    require_team_role,
    require_visible_team,
    visible_teams_filter,
)
from mechanisms.ops import alarm_rules, alarms, metrics
from mechanisms.ops.scaling import ScalingActivity, ScalingPolicy, decide
from mechanisms.ops.tables import (
    OpsService,
    ScalableTarget,
    ScalingDecisionRow,
    ScalingPolicyRow,
)

EVALUATION_INTERVAL = timedelta(seconds=60)
DECIDED_EVENT = "ops.scaling.decided"
ACTION_KINDS = ("event", "webhook", "command")
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
MAX_ATTEMPTS = 3
MAX_OUTPUT_CHARS = 4000
# A running command's lease: its timeout plus this, so only a worker that died lets it lapse.
LEASE_MARGIN = timedelta(seconds=60)
MAX_COMMAND_TIMEOUT = 600


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def _check_key(value: str, field: str, longest: int = 128) -> str:
    if (
        not value
        or len(value) > longest
        or not value.replace("-", "").replace("_", "").replace(".", "").isalnum()
        or not value.isascii()
    ):
        raise _invalid(field, f"1-{longest} letters, digits, '.', '_' or '-'")
    return value


# --- actions ------------------------------------------------------------------------


def check_action(ctx: Ctx, action: Any) -> dict[str, Any]:
    """The stored form of an action. Webhooks and commands reach outside the system, so
    only a site admin configures them."""
    if action is None:
        return {"kind": "event"}
    if not isinstance(action, dict) or action.get("kind") not in ACTION_KINDS:
        raise _invalid("action.kind", "event, webhook or command")
    kind = action["kind"]
    extra = set(action) - {"kind", "webhook_id", "argv", "timeout_seconds"}
    if extra:
        raise _invalid(f"action.{sorted(extra)[0]}", "not a field of an action")
    if kind == "event":
        return {"kind": "event"}
    require_site_role(ctx, Role.ADMIN)
    if kind == "webhook":
        webhook_id = action.get("webhook_id")
        if isinstance(webhook_id, bool) or not isinstance(webhook_id, int) or webhook_id < 1:
            raise _invalid("action.webhook_id", "the id of a registered webhook")
        try:
            webhooks.get(ctx, webhook_id)
        except NotFound:
            raise _invalid("action.webhook_id", f"no webhook {webhook_id}") from None
        return {"kind": "webhook", "webhook_id": webhook_id}
    argv = action.get("argv")
    if (
        not isinstance(argv, list)
        or not 1 <= len(argv) <= 32
        or not all(isinstance(a, str) and 0 < len(a) <= 1000 and "\x00" not in a for a in argv)
    ):
        raise _invalid("action.argv", "a list of 1-32 non-empty arguments, the program first")
    if not argv[0].startswith("/"):
        raise _invalid("action.argv", "the program must be an absolute path (no PATH lookup)")
    timeout = action.get("timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 600:
        raise _invalid("action.timeout_seconds", f"1-{MAX_COMMAND_TIMEOUT} seconds")
    return {"kind": "command", "argv": argv, "timeout_seconds": timeout}


def _announce(
    ctx: Ctx,
    action: str,
    object_type: str,
    key: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """The audit record and the event of a change to a target or a policy."""
    audit.record(ctx, action, object_type, key, before=before, after=after)
    events.emit(ctx, action, object_type, key, after if after is not None else {"key": key})


# --- scalable targets ---------------------------------------------------------------


def target_snapshot(target: ScalableTarget) -> dict[str, Any]:
    return {
        "key": target.key,
        "desired_capacity": target.desired_capacity,
        "current_capacity": target.current_capacity,
        "min_capacity": target.min_capacity,
        "max_capacity": target.max_capacity,
        "unit_cost_per_hour": target.unit_cost_per_hour,
        "action": target.action,
    }


def _check_bounds(low: Any, high: Any) -> None:
    for name, value in (("min_capacity", low), ("max_capacity", high)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
            raise _invalid(name, "a whole number from 0 to 100,000")
    if high < low:
        raise _invalid("max_capacity", f"must not be below min_capacity ({low})")


def _check_cost(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid("unit_cost_per_hour", "a number")
    if not math.isfinite(value) or not 0 <= value <= 1e9:
        raise _invalid("unit_cost_per_hour", "a finite number from 0 to 1e9")
    return float(value)


def create_target(
    ctx: Ctx,
    key: str,
    service_key: str,
    *,
    min_capacity: int,
    max_capacity: int,
    desired_capacity: int | None = None,
    unit_cost_per_hour: float = 0.0,
    action: dict[str, Any] | None = None,
    description: str = "",
) -> ScalableTarget:
    """A scalable target of a service, starting at ``desired_capacity`` (the minimum by
    default)."""
    require_site_role(ctx, Role.ENGINEER)
    service = alarms.get_service(ctx, service_key)
    require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    _check_key(key, "key")
    _check_bounds(min_capacity, max_capacity)
    start = min_capacity if desired_capacity is None else desired_capacity
    if (
        isinstance(start, bool)
        or not isinstance(start, int)
        or not min_capacity <= start <= max_capacity
    ):
        raise _invalid("desired_capacity", f"a whole number in [{min_capacity}, {max_capacity}]")
    cost = _check_cost(unit_cost_per_hour)
    stored_action = check_action(ctx, action)
    if ctx.session.execute(select(ScalableTarget.id).where(ScalableTarget.key == key)).first():
        raise Conflict(f"scalable target {key!r} already exists", details={"field": "key"})
    target = ScalableTarget(
        key=key,
        service_id=service.id,
        description=description.strip(),
        desired_capacity=start,
        current_capacity=start,
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        unit_cost_per_hour=cost,
        action=stored_action,
        version=0,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(target)
    ctx.session.flush()
    _announce(
        ctx, "ops.scaling.target_created", "scalable_target", key, None, target_snapshot(target)
    )
    return target


def _one(ctx: Ctx, column: Any, value: str, what: str, field: str) -> Any:
    require_site_role(ctx, Role.VIEWER)
    found = None
    if "\x00" not in value:  # PostgreSQL refuses NUL in text; no key holds one
        found = ctx.session.execute(
            select(column.class_).where(column == value)
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{what} {value!r} not found", details={"field": field})
    return found


def get_target(ctx: Ctx, key: str) -> ScalableTarget:
    target = _one(ctx, ScalableTarget.key, key, "scalable target", "target")
    service = ctx.session.get(OpsService, target.service_id)
    require_visible_team(ctx, service.owner_team_id, f"scalable target {key!r}")
    return target


def _visible_targets(ctx: Ctx) -> Any:
    """The ids of the targets of the caller's organisations' services."""
    return (
        select(ScalableTarget.id)
        .join(OpsService, OpsService.id == ScalableTarget.service_id)
        .where(visible_teams_filter(ctx, OpsService.owner_team_id))
    )


def list_targets(ctx: Ctx) -> list[ScalableTarget]:
    require_site_role(ctx, Role.VIEWER)
    query = select(ScalableTarget).where(ScalableTarget.id.in_(_visible_targets(ctx)))
    return list(ctx.session.execute(query.order_by(ScalableTarget.key)).scalars())


def _own_samples(ctx: Ctx, target: ScalableTarget, match: dict[str, str]) -> dict[str, str]:
    service = ctx.session.get(OpsService, target.service_id)
    return alarms.own_samples(service, match, "a scaling policy")


def _check_visible_alarm(ctx: Ctx, name: str | None) -> None:
    """A policy that scales when an alarm moves names one its author can see."""
    if name is None:
        return
    try:
        alarms.get_alarm(ctx, name)
    except NotFound:
        raise _invalid("alarm", f"no ops alarm is named {name!r}") from None


def _editable_target(ctx: Ctx, key: str) -> ScalableTarget:
    require_site_role(ctx, Role.ENGINEER)
    target = get_target(ctx, key)
    service = ctx.session.get(OpsService, target.service_id)
    require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    return target


_UNSET: Any = object()


def update_target(
    ctx: Ctx,
    key: str,
    *,
    min_capacity: int | None = None,
    max_capacity: int | None = None,
    unit_cost_per_hour: float | None = None,
    action: dict[str, Any] | None = _UNSET,
    description: str | None = None,
) -> ScalableTarget:
    """Change a target's bounds, unit cost, action or description. New bounds apply at
    the next evaluation (which brings the capacity inside them)."""
    target = _editable_target(ctx, key)
    low = target.min_capacity if min_capacity is None else min_capacity
    high = target.max_capacity if max_capacity is None else max_capacity
    _check_bounds(low, high)
    cost = (
        target.unit_cost_per_hour if unit_cost_per_hour is None else _check_cost(unit_cost_per_hour)
    )
    stored_action = target.action if action is _UNSET else check_action(ctx, action)
    before = target_snapshot(target)
    target.min_capacity, target.max_capacity = low, high
    target.unit_cost_per_hour, target.action = cost, stored_action
    if description is not None:
        target.description = description.strip()
    target.updated_at, target.version = ctx.now, target.version + 1
    ctx.session.flush()
    _announce(
        ctx, "ops.scaling.target_updated", "scalable_target", key, before, target_snapshot(target)
    )
    return target


def report_capacity(ctx: Ctx, key: str, current_capacity: int) -> ScalableTarget:
    """The actuator (a webhook receiver, an operator) reports what is running now."""
    target = _editable_target(ctx, key)
    if (
        isinstance(current_capacity, bool)
        or not isinstance(current_capacity, int)
        or not 0 <= current_capacity <= 100_000
    ):
        raise _invalid("current_capacity", "a whole number from 0 to 100,000")
    before = {"current_capacity": target.current_capacity}
    target.current_capacity, target.updated_at = current_capacity, ctx.now
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.scaling.capacity_reported",
        "scalable_target",
        key,
        before=before,
        after={"current_capacity": current_capacity},
    )
    return target


def delete_target(ctx: Ctx, key: str) -> None:
    """Delete a target with its policies and capacity history."""
    target = _editable_target(ctx, key)
    before = target_snapshot(target)
    ctx.session.execute(delete(ScalingDecisionRow).where(ScalingDecisionRow.target_id == target.id))
    ctx.session.execute(delete(ScalingPolicyRow).where(ScalingPolicyRow.target_id == target.id))
    ctx.session.delete(target)
    ctx.session.flush()
    _announce(ctx, "ops.scaling.target_deleted", "scalable_target", key, before, None)


# --- policies -----------------------------------------------------------------------


_POLICY_SNAPSHOT = (
    "name",
    "metric",
    "match",
    "statistic",
    "period_seconds",
    "target_value",
    "tolerance",
    "scale_out_cooldown_seconds",
    "scale_in_cooldown_seconds",
    "disable_scale_in",
    "alarm",
    "alarm_states",
    "enabled",
)


def policy_snapshot(policy: ScalingPolicyRow) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in _POLICY_SNAPSHOT}


def describe_target(ctx: Ctx, target: ScalableTarget) -> dict[str, Any]:
    """The target as interfaces show it (with its service's key)."""
    service = ctx.session.get(OpsService, target.service_id)
    return {
        **target_snapshot(target),
        "service": service.key,
        "description": target.description,
        "updated_at": target.updated_at,
    }


def describe_policy(ctx: Ctx, policy: ScalingPolicyRow) -> dict[str, Any]:
    """The policy as interfaces show it (with its target's key)."""
    target = ctx.session.get(ScalableTarget, policy.target_id)
    return {
        **policy_snapshot(policy),
        "target": target.key,
        "evaluated_at": policy.evaluated_at,
        "next_evaluation_at": policy.next_evaluation_at,
    }


def domain_policy(policy: ScalingPolicyRow, target: ScalableTarget) -> ScalingPolicy:
    return ScalingPolicy(
        target_value=policy.target_value,
        min_capacity=target.min_capacity,
        max_capacity=target.max_capacity,
        tolerance=policy.tolerance,
        scale_out_cooldown_seconds=policy.scale_out_cooldown_seconds,
        scale_in_cooldown_seconds=policy.scale_in_cooldown_seconds,
        disable_scale_in=policy.disable_scale_in,
    )


def _check_policy(
    metric: Any, match: Any, statistic: Any, period_seconds: Any, alarm_states: Any
) -> None:
    if not isinstance(metric, str) or not metrics.NAME_RE.match(metric):
        raise _invalid("metric", "a Prometheus metric name")
    if not isinstance(match, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\x00" not in k + v for k, v in match.items()
    ):
        raise _invalid("match", "an object of label names to values")
    if not isinstance(statistic, str) or not metrics.STATISTIC_RE.match(statistic):
        raise _invalid("statistic", "avg, sum, min, max, count or pNN (e.g. p95)")
    if (
        isinstance(period_seconds, bool)
        or not isinstance(period_seconds, int)
        or period_seconds % 60
        or not 60 <= period_seconds <= 86_400
    ):
        raise _invalid("period_seconds", "a multiple of 60 from 60 to 86,400")
    if not isinstance(alarm_states, list) or not all(s in ALARM_STATES for s in alarm_states):
        raise _invalid("alarm_states", "a list of OK, ALARM or INSUFFICIENT_DATA")


def _validated(policy: ScalingPolicyRow, target: ScalableTarget) -> None:
    try:
        domain_policy(policy, target)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "policy"
        raise _invalid(field, first["msg"].removeprefix("Value error, ")) from None


def create_policy(
    ctx: Ctx,
    name: str,
    target_key: str,
    *,
    metric: str,
    target_value: float,
    match: dict[str, str] | None = None,
    statistic: str = "avg",
    period_seconds: int = 60,
    tolerance: float = 0.1,
    scale_out_cooldown_seconds: int = 300,
    scale_in_cooldown_seconds: int = 300,
    disable_scale_in: bool = False,
    alarm: str | None = None,
    alarm_states: list[str] | None = None,
) -> ScalingPolicyRow:
    """A target-tracking policy, evaluated every minute by the worker and at once when
    ``alarm`` moves into one of ``alarm_states`` (ALARM by default)."""
    require_site_role(ctx, Role.ENGINEER)
    target = _editable_target(ctx, target_key)
    _check_key(name, "name", 200)
    states = ["ALARM"] if alarm_states is None else alarm_states
    labels = match or {}
    _check_policy(metric, labels, statistic, period_seconds, states)
    labels = _own_samples(ctx, target, labels)
    if alarm is not None and (not alarm or len(alarm) > 200 or "\x00" in alarm):
        raise _invalid("alarm", "the name of an alarm")
    _check_visible_alarm(ctx, alarm)
    if ctx.session.execute(
        select(ScalingPolicyRow.id).where(ScalingPolicyRow.name == name)
    ).first():
        raise Conflict(f"scaling policy {name!r} already exists", details={"field": "name"})
    policy = ScalingPolicyRow(
        name=name,
        target_id=target.id,
        metric=metric,
        match=labels,
        statistic=statistic,
        period_seconds=period_seconds,
        target_value=target_value,
        tolerance=tolerance,
        scale_out_cooldown_seconds=scale_out_cooldown_seconds,
        scale_in_cooldown_seconds=scale_in_cooldown_seconds,
        disable_scale_in=disable_scale_in,
        alarm=alarm,
        alarm_states=states,
        enabled=True,
        next_evaluation_at=ctx.now,
        created_at=ctx.now,
    )
    _validated(policy, target)
    ctx.session.add(policy)
    ctx.session.flush()
    after = {**policy_snapshot(policy), "target": target.key}
    _announce(ctx, "ops.scaling.policy_created", "scaling_policy", name, None, after)
    return policy


def get_policy(ctx: Ctx, name: str) -> ScalingPolicyRow:
    policy = _one(ctx, ScalingPolicyRow.name, name, "scaling policy", "policy")
    visible = ctx.session.execute(
        _visible_targets(ctx).where(ScalableTarget.id == policy.target_id)
    ).first()
    if visible is None:
        raise NotFound(f"scaling policy {name!r} not found", details={"field": "policy"})
    return policy


def list_policies(ctx: Ctx, target_key: str | None = None) -> list[ScalingPolicyRow]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(ScalingPolicyRow)
        .where(ScalingPolicyRow.target_id.in_(_visible_targets(ctx)))
        .order_by(ScalingPolicyRow.name)
    )
    if target_key is not None:
        query = query.where(ScalingPolicyRow.target_id == get_target(ctx, target_key).id)
    return list(ctx.session.execute(query).scalars())


_POLICY_FIELDS = (
    "target_value",
    "tolerance",
    "scale_out_cooldown_seconds",
    "scale_in_cooldown_seconds",
    "disable_scale_in",
    "enabled",
    "statistic",
    "period_seconds",
    "match",
    "alarm",
    "alarm_states",
)


def update_policy(ctx: Ctx, name: str, **changes: Any) -> ScalingPolicyRow:
    """Change some of a policy's settings (those in ``_POLICY_FIELDS``; None keeps one)."""
    require_site_role(ctx, Role.ENGINEER)
    policy = get_policy(ctx, name)
    target = ctx.session.get(ScalableTarget, policy.target_id)
    _editable_target(ctx, target.key)
    unknown = set(changes) - set(_POLICY_FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], "not a setting of a scaling policy")
    before = policy_snapshot(policy)
    for field, value in changes.items():
        if value is not None:
            setattr(policy, field, value)
    if changes.get("enabled") is True and not before["enabled"]:
        policy.next_evaluation_at = ctx.now
    if isinstance(policy.alarm, str) and (not policy.alarm or "\x00" in policy.alarm):
        raise _invalid("alarm", "the name of an alarm")
    _check_policy(
        policy.metric, policy.match, policy.statistic, policy.period_seconds, policy.alarm_states
    )
    policy.match = _own_samples(ctx, target, policy.match)
    if changes.get("alarm") is not None:
        _check_visible_alarm(ctx, policy.alarm)
    if not isinstance(policy.enabled, bool):
        raise _invalid("enabled", "true or false")
    _validated(policy, target)
    ctx.session.flush()
    _announce(
        ctx, "ops.scaling.policy_updated", "scaling_policy", name, before, policy_snapshot(policy)
    )
    return policy


def delete_policy(ctx: Ctx, name: str) -> None:
    require_site_role(ctx, Role.ENGINEER)
    policy = get_policy(ctx, name)
    target = ctx.session.get(ScalableTarget, policy.target_id)
    _editable_target(ctx, target.key)
    before = policy_snapshot(policy)
    ctx.session.delete(policy)
    ctx.session.flush()
    _announce(ctx, "ops.scaling.policy_deleted", "scaling_policy", name, before, None)


# --- decisions ----------------------------------------------------------------------


def metric_value(session: Session, policy: ScalingPolicyRow, now: datetime) -> float | None:
    """The policy's statistic over its last complete period (None without data)."""
    end = alarm_rules.period_start(now, policy.period_seconds)
    start = end - timedelta(seconds=policy.period_seconds)
    points = metrics.query(
        session, policy.metric, policy.match, policy.statistic, start, end, policy.period_seconds
    )
    values = [v for _, v in points if v is not None]
    return values[-1] if values else None


def _recent_activities(
    session: Session, target: ScalableTarget, now: datetime, policy: ScalingPolicyRow
) -> list[ScalingActivity]:
    horizon = now - timedelta(
        seconds=max(policy.scale_out_cooldown_seconds, policy.scale_in_cooldown_seconds)
    )
    rows = session.execute(
        select(
            ScalingDecisionRow.at, ScalingDecisionRow.from_capacity, ScalingDecisionRow.to_capacity
        ).where(
            ScalingDecisionRow.target_id == target.id,
            ScalingDecisionRow.at >= horizon,
            ScalingDecisionRow.from_capacity != ScalingDecisionRow.to_capacity,
        )
    )
    return [ScalingActivity(r.at, r.from_capacity, r.to_capacity) for r in rows]


def decision_payload(
    decision: ScalingDecisionRow, target: ScalableTarget, policy_name: str | None
) -> dict[str, Any]:
    """What the action receives (event data, webhook body, command stdin)."""
    return {
        "decision_id": decision.id,
        "target": target.key,
        "policy": policy_name,
        "at": decision.at.isoformat(),
        "from_capacity": decision.from_capacity,
        "to_capacity": decision.to_capacity,
        "formula_capacity": decision.formula_capacity,
        "metric_value": decision.metric_value,
        "target_value": decision.target_value,
        "reason": decision.reason,
        "trigger": decision.trigger,
    }


def evaluate_policy(ctx: Ctx, policy: ScalingPolicyRow, trigger: str) -> ScalingDecisionRow | None:
    """Decide the target's capacity from the policy now, record the decision and set its
    action going. Returns the decision, or None when there was nothing worth recording
    (the capacity stays and nothing held a change back, or no data on a scheduled run)."""
    target = ctx.session.get(ScalableTarget, policy.target_id, with_for_update=True)
    policy.evaluated_at = ctx.now
    policy.next_evaluation_at = ctx.now + EVALUATION_INTERVAL
    value = metric_value(ctx.session, policy, ctx.now)
    current = target.desired_capacity
    if value is None:
        if trigger == "schedule":
            return None
        return _record(
            ctx,
            target,
            policy,
            trigger,
            current=current,
            new=current,
            formula=current,
            value=None,
            reason=f"No datapoint of {policy.metric} ({policy.statistic}) in the last period; "
            f"the capacity stays {current}.",
        )
    history = _recent_activities(ctx.session, target, ctx.now, policy)
    decision = decide(domain_policy(policy, target), current, value, ctx.now, history)
    if not decision.changed and decision.desired_capacity == current and trigger == "schedule":
        return None
    return _record(
        ctx,
        target,
        policy,
        trigger,
        current=current,
        new=decision.new_capacity,
        formula=decision.desired_capacity,
        value=value,
        reason=decision.reason,
    )


def _record(
    ctx: Ctx,
    target: ScalableTarget,
    policy: ScalingPolicyRow | None,
    trigger: str,
    *,
    current: int,
    new: int,
    formula: int,
    value: float | None,
    reason: str,
) -> ScalingDecisionRow:
    changed = new != current
    kind = target.action.get("kind", "event")
    row = ScalingDecisionRow(
        target_id=target.id,
        policy_id=policy.id if policy else None,
        at=ctx.now,
        from_capacity=current,
        to_capacity=new,
        formula_capacity=formula,
        metric_value=value,
        target_value=policy.target_value if policy else None,
        reason=reason[:4000],
        trigger=trigger[:300],
        actor=ctx.principal.actor[:200],
        action_kind=kind if changed else "none",
        action_status=("pending" if kind == "command" else "emitted") if changed else "none",
        action_attempts=0,
        action_output="",
    )
    ctx.session.add(row)
    ctx.session.flush()
    if changed:
        before = target_snapshot(target)
        target.desired_capacity, target.updated_at = new, ctx.now
        target.version += 1
        if kind == "event":
            # Nothing outside reports back: what was asked for is what runs.
            target.current_capacity = new
        if kind == "command":
            # Only the latest absolute capacity matters; older actions not yet run are moot.
            ctx.session.execute(
                update(ScalingDecisionRow)
                .where(
                    ScalingDecisionRow.target_id == target.id,
                    ScalingDecisionRow.action_status == "pending",
                    ScalingDecisionRow.id != row.id,
                )
                .values(
                    action_status="superseded", action_output=f"superseded by decision {row.id}"
                )
            )
        payload = decision_payload(row, target, policy.name if policy else None)
        event = events.emit(ctx, DECIDED_EVENT, "scalable_target", target.key, payload)
        row.event_id = event.id
        if kind == "webhook" and not events.address_to_webhook(
            ctx.session, event, target.action["webhook_id"], ctx.now
        ):
            row.action_output = (
                f"webhook {target.action['webhook_id']} is subscribed to {DECIDED_EVENT}, "
                "disabled or deleted: it gets the event through its subscription or not at all"
            )
        audit.record(
            ctx,
            DECIDED_EVENT,
            "scalable_target",
            target.key,
            before={"desired_capacity": before["desired_capacity"]},
            after={"desired_capacity": new},
            details={"reason": row.reason, "trigger": row.trigger, "decision": row.id},
        )
    ctx.session.flush()
    return row


def evaluate_now(ctx: Ctx, policy_name: str) -> ScalingDecisionRow:
    """Evaluate a policy by hand (the decision is always recorded)."""
    require_site_role(ctx, Role.ENGINEER)
    policy = get_policy(ctx, policy_name)
    target = ctx.session.get(ScalableTarget, policy.target_id)
    _editable_target(ctx, target.key)
    decision = evaluate_policy(ctx, policy, "manual")
    assert decision is not None
    return decision


def evaluate_due(ctx: Ctx, limit: int = 500) -> int:
    """Evaluate every enabled policy that is due; returns how many decisions changed a
    capacity. Runs in the worker's transaction."""
    due = list(
        ctx.session.execute(
            select(ScalingPolicyRow)
            .where(
                ScalingPolicyRow.enabled.is_(True), ScalingPolicyRow.next_evaluation_at <= ctx.now
            )
            .order_by(ScalingPolicyRow.next_evaluation_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    changed = 0
    for policy in due:
        decision = evaluate_policy(ctx, policy, "schedule")
        if decision is not None and decision.to_capacity != decision.from_capacity:
            changed += 1
    ctx.session.flush()
    return changed


def on_alarm(ctx: Ctx, alarm_name: str, state: str) -> list[ScalingDecisionRow]:
    """An alarm changed state: evaluate at once every enabled policy that names it for
    this state."""
    policies = ctx.session.execute(
        select(ScalingPolicyRow).where(
            ScalingPolicyRow.alarm == alarm_name, ScalingPolicyRow.enabled.is_(True)
        )
    ).scalars()
    decided = []
    for policy in policies:
        if state in policy.alarm_states:
            decision = evaluate_policy(ctx, policy, f"alarm:{alarm_name} -> {state}")
            if decision is not None:
                decided.append(decision)
    return decided


def history(
    ctx: Ctx, target_key: str, since: datetime | None = None, limit: int = 500
) -> list[ScalingDecisionRow]:
    """The target's decisions, newest first."""
    target = get_target(ctx, target_key)
    query = (
        select(ScalingDecisionRow)
        .where(ScalingDecisionRow.target_id == target.id)
        .order_by(ScalingDecisionRow.id.desc())
        .limit(max(1, min(limit, 5000)))
    )
    if since is not None:
        try:
            query = query.where(ScalingDecisionRow.at >= ensure_utc(since))
        except OverflowError:
            raise _invalid("since", "a date and time within the years 1 to 9999") from None
    return list(ctx.session.execute(query).scalars())


def capacity_at(session: Session, target: ScalableTarget, at: datetime) -> int:
    """The desired capacity in force at ``at``, from the history."""
    last = session.execute(
        select(ScalingDecisionRow.to_capacity)
        .where(ScalingDecisionRow.target_id == target.id, ScalingDecisionRow.at <= at)
        .order_by(ScalingDecisionRow.at.desc(), ScalingDecisionRow.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last is not None:
        return last
    first = session.execute(
        select(ScalingDecisionRow.from_capacity)
        .where(ScalingDecisionRow.target_id == target.id)
        .order_by(ScalingDecisionRow.at, ScalingDecisionRow.id)
        .limit(1)
    ).scalar_one_or_none()
    return target.desired_capacity if first is None else first


def capacity_changes(
    session: Session, target: ScalableTarget, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """The desired capacity as a step function over [start, end): (from, capacity) steps."""
    steps = [(start, capacity_at(session, target, start))]
    for at, capacity in session.execute(
        select(ScalingDecisionRow.at, ScalingDecisionRow.to_capacity)
        .where(
            ScalingDecisionRow.target_id == target.id,
            ScalingDecisionRow.at > start,
            ScalingDecisionRow.at < end,
            ScalingDecisionRow.from_capacity != ScalingDecisionRow.to_capacity,
        )
        .order_by(ScalingDecisionRow.at, ScalingDecisionRow.id)
    ):
        steps.append((at, capacity))
    return steps


# --- command actions (run by the worker, outside transactions) ----------------------


@dataclass(frozen=True)
class CommandRun:
    decision_id: int
    attempt: int
    argv: list[str]
    timeout_seconds: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class CommandOutcome:
    exit_code: int | None
    output: str
    succeeded: bool


def pending_action_ids(session: Session, limit: int = 50) -> list[int]:
    return list(
        session.execute(
            select(ScalingDecisionRow.id)
            .where(ScalingDecisionRow.action_status == "pending")
            .order_by(ScalingDecisionRow.id)
            .limit(limit)
        ).scalars()
    )


def claim_action(ctx: Ctx, decision_id: int) -> CommandRun | None:
    """Mark a pending command action running (in its own transaction, committed before
    the command starts); None when another worker took it or it is no longer pending."""
    row = ctx.session.get(ScalingDecisionRow, decision_id)
    if row is None or row.action_status != "pending":
        return None
    target = ctx.session.get(ScalableTarget, row.target_id)
    action = target.action
    if action.get("kind") != "command":
        _finish(ctx, row, "failed", None, "the target's action is no longer a command; not run")
        return None
    claimed = ctx.session.execute(
        update(ScalingDecisionRow)
        .where(ScalingDecisionRow.id == decision_id, ScalingDecisionRow.action_status == "pending")
        .values(
            action_status="running",
            action_attempts=ScalingDecisionRow.action_attempts + 1,
            action_lease_until=ctx.now
            + timedelta(seconds=action["timeout_seconds"])
            + LEASE_MARGIN,
        )
        .returning(ScalingDecisionRow.action_attempts)
    ).scalar_one_or_none()
    if claimed is None:
        return None
    ctx.session.refresh(row)
    policy = ctx.session.get(ScalingPolicyRow, row.policy_id) if row.policy_id else None
    return CommandRun(
        decision_id,
        claimed,
        list(action["argv"]),
        int(action["timeout_seconds"]),
        decision_payload(row, target, policy.name if policy else None),
    )


def _finish(
    ctx: Ctx, row: ScalingDecisionRow, status: str, exit_code: int | None, output: str
) -> None:
    target = ctx.session.get(ScalableTarget, row.target_id)
    row.action_status, row.action_exit_code = status, exit_code
    row.action_output = (row.action_output + ("\n" if row.action_output else "") + output)[
        -MAX_OUTPUT_CHARS:
    ]
    row.action_finished_at, row.action_lease_until = ctx.now, None
    if status == "succeeded" and target.desired_capacity == row.to_capacity:
        target.current_capacity = row.to_capacity
    ctx.session.flush()
    audit.record(
        ctx,
        f"ops.scaling.action_{status}",
        "scalable_target",
        target.key,
        details={"decision": row.id, "exit_code": exit_code, "attempt": row.action_attempts},
    )
    if status in ("failed", "unknown"):
        events.emit(
            ctx,
            "ops.scaling.action_failed",
            "scalable_target",
            target.key,
            {
                "decision_id": row.id,
                "status": status,
                "exit_code": exit_code,
                "output": row.action_output[-500:],
            },
        )


def finish_action(ctx: Ctx, run: CommandRun, outcome: CommandOutcome) -> bool:
    """Record what the command did, if this attempt still holds the action."""
    row = ctx.session.get(ScalingDecisionRow, run.decision_id, with_for_update=True)
    if row is None or row.action_status != "running" or row.action_attempts != run.attempt:
        return False
    _finish(
        ctx, row, "succeeded" if outcome.succeeded else "failed", outcome.exit_code, outcome.output
    )
    return True


def recover_stalled(ctx: Ctx) -> int:
    """Running actions whose lease ran out (the worker stopped while the command ran):
    retried while still the target's latest decision and under ``MAX_ATTEMPTS``, else
    recorded superseded or unknown (the rule in this module's docstring)."""
    stalled = list(
        ctx.session.execute(
            select(ScalingDecisionRow)
            .where(
                ScalingDecisionRow.action_status == "running",
                ScalingDecisionRow.action_lease_until <= ctx.now,
            )
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    for row in stalled:
        note = f"attempt {row.action_attempts}: outcome unknown (the worker stopped while the command ran)"
        latest = ctx.session.execute(
            select(ScalingDecisionRow.id)
            .where(
                ScalingDecisionRow.target_id == row.target_id,
                ScalingDecisionRow.action_kind == "command",
            )
            .order_by(ScalingDecisionRow.id.desc())
            .limit(1)
        ).scalar_one()
        if latest != row.id:
            _finish(
                ctx, row, "superseded", None, f"{note}; not retried: decision {latest} is newer"
            )
        elif row.action_attempts >= MAX_ATTEMPTS:
            _finish(ctx, row, "unknown", None, f"{note}; not retried after {MAX_ATTEMPTS} attempts")
        else:
            row.action_status, row.action_lease_until = "pending", None
            row.action_output = (
                row.action_output + ("\n" if row.action_output else "") + note + "; retried"
            )[-MAX_OUTPUT_CHARS:]
            audit.record(
                ctx,
                "ops.scaling.action_retried",
                "scalable_target",
                ctx.session.get(ScalableTarget, row.target_id).key,
                details={"decision": row.id, "attempt": row.action_attempts},
            )
    ctx.session.flush()
    return len(stalled)


def command_input(run: CommandRun) -> tuple[bytes, dict[str, str]]:
    """The decision as JSON on stdin, and the environment variables that name it."""
    payload = run.payload
    env = {
        "MECH_SCALING_DECISION_ID": str(run.decision_id),
        "MECH_SCALING_TARGET": str(payload["target"]),
        "MECH_SCALING_FROM": str(payload["from_capacity"]),
        "MECH_SCALING_TO": str(payload["to_capacity"]),
        "MECH_SCALING_ATTEMPT": str(run.attempt),
    }
    return json.dumps(payload).encode(), env
