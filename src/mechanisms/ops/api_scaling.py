"""HTTP API of ops scaling (`/api/v1/ops/scaling/…`) and cost findings
(`/api/v1/ops/costs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from mechanisms.core.context import Ctx
from mechanisms.ops import autoscaling, cost
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

# Included by ops/api.py under its /api/v1/ops prefix.
router = APIRouter(route_class=UnitOfWorkRoute, tags=["ops"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
Key = Annotated[str, Path(min_length=1, max_length=128)]
PolicyName = Annotated[str, Path(min_length=1, max_length=200)]
Capacity = Annotated[int, Field(ge=0, le=100_000)]
Seconds = Annotated[int, Field(ge=0, le=86_400)]


class EventAction(Input):
    kind: Literal["event"]


class WebhookAction(Input):
    kind: Literal["webhook"]
    webhook_id: Annotated[int, Field(ge=1, le=2_147_483_647)]


class CommandAction(Input):
    kind: Literal["command"]
    argv: list[Annotated[Text, Field(min_length=1, max_length=1000)]] = Field(
        min_length=1, max_length=32
    )
    timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 30


Action = Annotated[EventAction | WebhookAction | CommandAction, Field(discriminator="kind")]


class TargetIn(Input):
    key: Text = Field(min_length=1, max_length=128)
    service: Text = Field(min_length=1, max_length=128)
    min_capacity: Capacity
    max_capacity: Capacity
    desired_capacity: Capacity | None = None
    unit_cost_per_hour: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = 0.0
    action: Action | None = None
    description: Text = Field(default="", max_length=2000)


class TargetPatch(Input):
    min_capacity: Capacity | None = None
    max_capacity: Capacity | None = None
    unit_cost_per_hour: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] | None = None
    action: Action | None = None
    description: Text | None = Field(default=None, max_length=2000)


class CapacityIn(Input):
    current_capacity: Capacity


class TargetOut(BaseModel):
    key: str
    service: str
    description: str
    desired_capacity: int
    current_capacity: int
    min_capacity: int
    max_capacity: int
    unit_cost_per_hour: float
    action: dict[str, Any]
    updated_at: datetime


class PolicyIn(Input):
    name: Text = Field(min_length=1, max_length=200)
    target: Text = Field(min_length=1, max_length=128)
    metric: Text = Field(min_length=1, max_length=200)
    match: dict[Annotated[Text, Field(max_length=100)], Annotated[Text, Field(max_length=500)]] = (
        Field(default_factory=dict, max_length=20)
    )
    statistic: Text = Field(default="avg", max_length=10)
    period_seconds: Annotated[int, Field(ge=60, le=86_400)] = 60
    target_value: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]
    tolerance: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1
    scale_out_cooldown_seconds: Seconds = 300
    scale_in_cooldown_seconds: Seconds = 300
    disable_scale_in: bool = False
    alarm: Text | None = Field(default=None, min_length=1, max_length=200)
    alarm_states: list[Literal["OK", "ALARM", "INSUFFICIENT_DATA"]] = Field(
        default_factory=lambda: ["ALARM"], max_length=3
    )


class PolicyPatch(Input):
    target_value: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)] | None = None
    tolerance: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] | None = None
    scale_out_cooldown_seconds: Seconds | None = None
    scale_in_cooldown_seconds: Seconds | None = None
    disable_scale_in: bool | None = None
    enabled: bool | None = None
    statistic: Text | None = Field(default=None, max_length=10)
    period_seconds: Annotated[int, Field(ge=60, le=86_400)] | None = None
    alarm: Text | None = Field(default=None, min_length=1, max_length=200)
    alarm_states: list[Literal["OK", "ALARM", "INSUFFICIENT_DATA"]] | None = Field(
        default=None, max_length=3
    )


class PolicyOut(BaseModel):
    name: str
    target: str
    metric: str
    match: dict[str, str]
    statistic: str
    period_seconds: int
    target_value: float
    tolerance: float
    scale_out_cooldown_seconds: int
    scale_in_cooldown_seconds: int
    disable_scale_in: bool
    alarm: str | None
    alarm_states: list[str]
    enabled: bool
    evaluated_at: datetime | None
    next_evaluation_at: datetime


class DecisionOut(BaseModel):
    id: int
    at: datetime
    policy: str | None
    from_capacity: int
    to_capacity: int
    formula_capacity: int
    metric_value: float | None
    target_value: float | None
    reason: str
    trigger: str
    actor: str
    action_kind: str
    action_status: str
    action_attempts: int
    action_exit_code: int | None
    action_output: str
    action_finished_at: datetime | None


def target_out(ctx: Ctx, target: Any) -> TargetOut:
    return TargetOut(**autoscaling.describe_target(ctx, target))


def policy_out(ctx: Ctx, policy: Any) -> PolicyOut:
    return PolicyOut(**autoscaling.describe_policy(ctx, policy))


def decision_out(d: Any, names: dict[int, str]) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        at=d.at,
        policy=names.get(d.policy_id) if d.policy_id else None,
        from_capacity=d.from_capacity,
        to_capacity=d.to_capacity,
        formula_capacity=d.formula_capacity,
        metric_value=d.metric_value,
        target_value=d.target_value,
        reason=d.reason,
        trigger=d.trigger,
        actor=d.actor,
        action_kind=d.action_kind,
        action_status=d.action_status,
        action_attempts=d.action_attempts,
        action_exit_code=d.action_exit_code,
        action_output=d.action_output,
        action_finished_at=d.action_finished_at,
    )


def _action(body: Any) -> Any:
    return None if body is None else body.model_dump()


@router.get("/scaling/targets", response_model=list[TargetOut])
def list_targets(ctx: CtxDep) -> list[TargetOut]:
    return [target_out(ctx, t) for t in autoscaling.list_targets(ctx)]


@router.post("/scaling/targets", response_model=TargetOut, status_code=201)
def create_target(body: TargetIn, ctx: CtxDep) -> TargetOut:
    target = autoscaling.create_target(
        ctx,
        body.key,
        body.service,
        min_capacity=body.min_capacity,
        max_capacity=body.max_capacity,
        desired_capacity=body.desired_capacity,
        unit_cost_per_hour=float(body.unit_cost_per_hour),
        action=_action(body.action),
        description=body.description,
    )
    return target_out(ctx, target)


@router.get("/scaling/targets/{key}", response_model=TargetOut)
def get_target(key: Key, ctx: CtxDep) -> TargetOut:
    return target_out(ctx, autoscaling.get_target(ctx, key))


@router.patch("/scaling/targets/{key}", response_model=TargetOut)
def update_target(key: Key, body: TargetPatch, ctx: CtxDep) -> TargetOut:
    changes: dict[str, Any] = {
        "min_capacity": body.min_capacity,
        "max_capacity": body.max_capacity,
        "unit_cost_per_hour": None
        if body.unit_cost_per_hour is None
        else float(body.unit_cost_per_hour),
        "description": body.description,
    }
    if "action" in body.model_fields_set:
        changes["action"] = _action(body.action)
    return target_out(ctx, autoscaling.update_target(ctx, key, **changes))


@router.put("/scaling/targets/{key}/capacity", response_model=TargetOut)
def report_capacity(key: Key, body: CapacityIn, ctx: CtxDep) -> TargetOut:
    """The actuator reports the capacity that runs now."""
    return target_out(ctx, autoscaling.report_capacity(ctx, key, body.current_capacity))


@router.delete("/scaling/targets/{key}", status_code=204)
def delete_target(key: Key, ctx: CtxDep) -> Response:
    autoscaling.delete_target(ctx, key)
    return Response(status_code=204)


@router.get("/scaling/targets/{key}/history", response_model=list[DecisionOut])
def target_history(
    key: Key,
    ctx: CtxDep,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[DecisionOut]:
    names = {p.id: p.name for p in autoscaling.list_policies(ctx, key)}
    return [decision_out(d, names) for d in autoscaling.history(ctx, key, since, limit)]


@router.get("/scaling/policies", response_model=list[PolicyOut])
def list_policies(
    ctx: CtxDep, target: Annotated[str | None, Query(max_length=128)] = None
) -> list[PolicyOut]:
    return [policy_out(ctx, p) for p in autoscaling.list_policies(ctx, target)]


@router.post("/scaling/policies", response_model=PolicyOut, status_code=201)
def create_policy(body: PolicyIn, ctx: CtxDep) -> PolicyOut:
    policy = autoscaling.create_policy(
        ctx,
        body.name,
        body.target,
        metric=body.metric,
        match=body.match,
        statistic=body.statistic,
        period_seconds=body.period_seconds,
        target_value=float(body.target_value),
        tolerance=float(body.tolerance),
        scale_out_cooldown_seconds=body.scale_out_cooldown_seconds,
        scale_in_cooldown_seconds=body.scale_in_cooldown_seconds,
        disable_scale_in=body.disable_scale_in,
        alarm=body.alarm,
        alarm_states=list(body.alarm_states),
    )
    return policy_out(ctx, policy)


@router.get("/scaling/policies/{name}", response_model=PolicyOut)
def get_policy(name: PolicyName, ctx: CtxDep) -> PolicyOut:
    return policy_out(ctx, autoscaling.get_policy(ctx, name))


@router.patch("/scaling/policies/{name}", response_model=PolicyOut)
def update_policy(name: PolicyName, body: PolicyPatch, ctx: CtxDep) -> PolicyOut:
    changes = body.model_dump(exclude_unset=True)
    for number in ("target_value", "tolerance"):
        if changes.get(number) is not None:
            changes[number] = float(changes[number])
    return policy_out(ctx, autoscaling.update_policy(ctx, name, **changes))


@router.delete("/scaling/policies/{name}", status_code=204)
def delete_policy(name: PolicyName, ctx: CtxDep) -> Response:
    autoscaling.delete_policy(ctx, name)
    return Response(status_code=204)


@router.post("/scaling/policies/{name}/evaluate", response_model=DecisionOut)
def evaluate_policy(name: PolicyName, ctx: CtxDep) -> DecisionOut:
    """Evaluate the policy now; the decision is recorded whatever it is."""
    decision = autoscaling.evaluate_now(ctx, name)
    return decision_out(decision, {decision.policy_id: name})


@router.get("/costs", response_model=list[cost.Finding])
def cost_findings(
    ctx: CtxDep,
    days: Annotated[int, Query(ge=1, le=366)] = cost.DEFAULT_DAYS,
    threshold: Annotated[float | None, Query(gt=0, le=1e12)] = None,
) -> list[cost.Finding]:
    """Targets whose p95 utilisation stayed below the threshold (by default half of the
    policy's target), with the capacity that would have sufficed and the saving."""
    return cost.findings(ctx, days, threshold)
