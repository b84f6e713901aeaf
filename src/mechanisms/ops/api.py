"""HTTP API of the ops mechanism (`/api/v1/ops/…`): services, metrics in and out, alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, MechanismsError
from mechanisms.ops import alarms
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

router = APIRouter(prefix="/api/v1/ops", route_class=UnitOfWorkRoute, tags=["ops"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]


class ServiceIn(Input):
    key: Text = Field(min_length=1, max_length=128)
    name: Text = Field(default="", max_length=200)
    owner_team: Text = Field(max_length=64)


class ServiceOut(BaseModel):
    key: str
    name: str
    owner_team_id: int


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    series_created: int
    buckets: int


class Datapoint(BaseModel):
    at: datetime
    value: float | None


class AlarmIn(Input):
    name: Text = Field(min_length=1, max_length=200)
    service: Text = Field(max_length=128)
    metric: Text | None = Field(default=None, max_length=200)
    match: dict[str, str] = Field(default_factory=dict)
    definition: dict[str, Any] | None = None
    rule: Text | None = Field(default=None, max_length=10_240)
    severity: int = Field(default=3, ge=1, le=5)
    description: Text = Field(default="", max_length=2000)


class AlarmOut(BaseModel):
    name: str
    kind: str
    metric: str | None
    match: dict[str, str]
    definition: dict[str, Any]
    severity: int
    state: str
    state_reason: str
    state_changed_at: datetime
    evaluated_at: datetime | None


class StateIn(Input):
    state: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: Text = Field(min_length=1, max_length=2000)


class TransitionOut(BaseModel):
    at: datetime
    from_state: str
    to_state: str
    reason: str
    datapoints: list[dict[str, Any]]


def _alarm_out(alarm: Any) -> AlarmOut:
    return AlarmOut(
        name=alarm.name,
        kind=alarm.kind,
        metric=alarm.metric,
        match=alarm.match,
        definition=alarm.definition,
        severity=alarm.severity,
        state=alarm.state,
        state_reason=alarm.state_reason,
        state_changed_at=alarm.state_changed_at,
        evaluated_at=alarm.evaluated_at,
    )


@router.get("/services", response_model=list[ServiceOut])
def list_services(ctx: CtxDep) -> list[ServiceOut]:
    return [
        ServiceOut(key=s.key, name=s.name, owner_team_id=s.owner_team_id)
        for s in alarms.list_services(ctx)
    ]


@router.post("/services", response_model=ServiceOut, status_code=201)
def create_service(body: ServiceIn, ctx: CtxDep) -> ServiceOut:
    s = alarms.create_service(ctx, body.key, body.name, body.owner_team)
    return ServiceOut(key=s.key, name=s.name, owner_team_id=s.owner_team_id)


@router.post(
    "/metrics",
    response_model=IngestOut,
    status_code=202,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["samples"],
                        "properties": {
                            "samples": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string"},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "value": {"type": "number"},
                                        "timestamp": {"type": ["number", "string"]},
                                    },
                                },
                            }
                        },
                    }
                }
            }
        }
    },
)
async def ingest_json(request: Request, ctx: CtxDep) -> IngestOut:
    """Samples as JSON: {"samples": [{"name", "labels", "value", "timestamp"?}]}. A batch is
    stored whole or refused whole, with every problem named."""
    import json

    from starlette.concurrency import run_in_threadpool

    try:
        raw = json.loads(await request.body())
    except ValueError:
        raise MechanismsError("the request body is not valid JSON", code="malformed_json") from None
    result = await run_in_threadpool(alarms.ingest_json, ctx, raw)
    return IngestOut(**result.__dict__)


@router.post(
    "/metrics/prometheus",
    response_model=IngestOut,
    status_code=202,
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def ingest_prometheus(request: Request, ctx: CtxDep) -> IngestOut:
    """Samples in the Prometheus text exposition format (0.0.4)."""
    from starlette.concurrency import run_in_threadpool

    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8 text", details={"field": "body"}) from None
    result = await run_in_threadpool(alarms.ingest_prometheus, ctx, text)
    return IngestOut(**result.__dict__)


@router.get("/metrics/query", response_model=list[Datapoint])
def query_metric(
    ctx: CtxDep,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    start: datetime,
    end: datetime,
    statistic: Annotated[str, Query(max_length=10)] = "avg",
    period: Annotated[int, Query(ge=60, le=86_400)] = 60,
    match: Annotated[
        list[str] | None, Query(max_length=20, description="label=value; repeat")
    ] = None,
) -> list[Datapoint]:
    labels: dict[str, str] = {}
    for item in match or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput("match takes label=value", details={"field": "match"})
        labels[key] = value
    return [
        Datapoint(at=at, value=v)
        for at, v in alarms.query(ctx, name, labels, statistic, start, end, period)
    ]


@router.get("/alarms", response_model=list[AlarmOut])
def list_alarms(
    ctx: CtxDep, state: Literal["OK", "ALARM", "INSUFFICIENT_DATA"] | None = None
) -> list[AlarmOut]:
    return [_alarm_out(a) for a in alarms.list_alarms(ctx, state)]


@router.post("/alarms", response_model=AlarmOut, status_code=201)
def create_alarm(body: AlarmIn, ctx: CtxDep) -> AlarmOut:
    alarm = alarms.create_alarm(
        ctx,
        body.name,
        body.service,
        metric=body.metric,
        match=body.match,
        definition=body.definition,
        rule=body.rule,
        severity=body.severity,
        description=body.description,
    )
    return _alarm_out(alarm)


@router.get("/alarms/{name}", response_model=AlarmOut)
def get_alarm(name: str, ctx: CtxDep) -> AlarmOut:
    return _alarm_out(alarms.get_alarm(ctx, name))


@router.get("/alarms/{name}/history", response_model=list[TransitionOut])
def alarm_history(
    name: str, ctx: CtxDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[TransitionOut]:
    return [
        TransitionOut(
            at=t.at,
            from_state=t.from_state,
            to_state=t.to_state,
            reason=t.reason,
            datapoints=t.datapoints,
        )
        for t in alarms.history(ctx, name, limit)
    ]


@router.put("/alarms/{name}/state", response_model=AlarmOut)
def set_alarm_state(name: str, body: StateIn, ctx: CtxDep) -> AlarmOut:
    return _alarm_out(alarms.set_state(ctx, name, body.state, body.reason))
