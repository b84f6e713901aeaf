"""HTTP API of the ops mechanism (`/api/v1/ops/…`): services, metrics in and out, alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field

from mechanisms.core import inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, MechanismsError
from mechanisms.ops import alarm_dependents, alarms, ingest_keys, tickets
from mechanisms.ops.api_alerts import IntegrationKeyOut
from mechanisms.ops.api_alerts import router as alerts_router
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

router = APIRouter(prefix="/api/v1/ops", route_class=UnitOfWorkRoute, tags=["ops"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
IngestKeyHeader = Annotated[
    str | None,
    Header(
        alias=ingest_keys.HEADER,
        max_length=200,
        description="a service's ingest key, instead of an API token: writes for that "
        "service alone",
    ),
]


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


class AlarmRenameIn(Input):
    name: Text = Field(min_length=1, max_length=200)


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


def decode_samples(body: bytes) -> Any:
    """json.loads of a large batch builds hundreds of thousands of small objects, and the
    garbage collector would walk them again and again while they are built (more than half
    of the decoding time, measured in benchmarks/ops_ingest.py). None of them can form a
    cycle, so collection waits until the batch is decoded."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return inputs.parse_json(body)
    finally:
        if was_enabled:
            gc.enable()


def _ingest(write: Any, ctx: Ctx, samples: Any, ingest_key: str | None) -> Any:
    """Samples written with the caller's credential, or with a service's ingest key."""
    if ingest_key is None:
        return write(ctx, samples)
    return write(ctx, samples, key_service=ingest_keys.service_of(ctx, ingest_key))


class IngestKeyIn(Input):
    name: Text = Field(min_length=1, max_length=ingest_keys.NAME_MAX)


class IngestKeyOut(IntegrationKeyOut):
    created_by: str


class IngestKeySecretOut(IngestKeyOut):
    key: str = Field(description=f"send it as {ingest_keys.HEADER}; shown once, stored hashed")


def _ingest_key_out(key: Any, service: Any, secret: str | None = None) -> Any:
    shown = ingest_keys.describe(key, service)
    return IngestKeyOut(**shown) if secret is None else IngestKeySecretOut(**shown, key=secret)


ServiceKey = Annotated[str, Path(max_length=128)]
KeyName = Annotated[str, Path(max_length=ingest_keys.NAME_MAX)]


@router.get("/services/{service}/ingest-keys", response_model=list[IngestKeyOut])
def list_ingest_keys(service: ServiceKey, ctx: CtxDep) -> list[IngestKeyOut]:
    return [_ingest_key_out(k, s) for k, s in ingest_keys.list_keys(ctx, service)]


@router.post("/services/{service}/ingest-keys", response_model=IngestKeySecretOut, status_code=201)
def create_ingest_key(service: ServiceKey, body: IngestKeyIn, ctx: CtxDep) -> IngestKeySecretOut:
    """A key that writes this service's samples and nothing else (leaders of its team)."""
    return _ingest_key_out(*ingest_keys.create(ctx, service, body.name))


@router.post("/services/{service}/ingest-keys/{name}/rotate", response_model=IngestKeySecretOut)
def rotate_ingest_key(service: ServiceKey, name: KeyName, ctx: CtxDep) -> IngestKeySecretOut:
    """A new secret for the key; the old one stops working at once."""
    return _ingest_key_out(*ingest_keys.rotate(ctx, service, name))


@router.delete("/services/{service}/ingest-keys/{name}", status_code=204)
def revoke_ingest_key(service: ServiceKey, name: KeyName, ctx: CtxDep) -> None:
    ingest_keys.revoke(ctx, service, name)


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
async def ingest_json(
    request: Request, ctx: CtxDep, ingest_key: IngestKeyHeader = None
) -> IngestOut:
    """Samples as JSON: {"samples": [{"name", "labels", "value", "timestamp"?}]}. A batch is
    stored whole or refused whole, with every problem named."""

    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    try:
        raw = await run_in_threadpool(decode_samples, body)
    except ValueError:
        raise MechanismsError("the request body is not valid JSON", code="malformed_json") from None
    result = await run_in_threadpool(_ingest, alarms.ingest_json, ctx, raw, ingest_key)
    return IngestOut(**result.__dict__)


@router.post(
    "/metrics/prometheus",
    response_model=IngestOut,
    status_code=202,
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def ingest_prometheus(
    request: Request, ctx: CtxDep, ingest_key: IngestKeyHeader = None
) -> IngestOut:
    """Samples in the Prometheus text exposition format (0.0.4)."""
    from starlette.concurrency import run_in_threadpool

    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8 text", details={"field": "body"}) from None
    result = await run_in_threadpool(_ingest, alarms.ingest_prometheus, ctx, text, ingest_key)
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


@router.patch("/alarms/{name}", response_model=AlarmOut)
def rename_alarm(name: str, body: AlarmRenameIn, ctx: CtxDep) -> AlarmOut:
    """Rename an alarm; refused (409 ``alarm_in_use``, the dependents as details) while a
    running flag rollout, a deploy pipeline stage or another alarm or policy watches it."""
    return _alarm_out(alarm_dependents.rename_alarm(ctx, name, body.name))


@router.delete("/alarms/{name}", status_code=204)
def delete_alarm(name: str, ctx: CtxDep) -> None:
    """Delete an alarm and its history; refused like a rename while anything watches it."""
    alarm_dependents.delete_alarm(ctx, name)


@router.put("/alarms/{name}/state", response_model=AlarmOut)
def set_alarm_state(name: str, body: StateIn, ctx: CtxDep) -> AlarmOut:
    return _alarm_out(alarms.set_state(ctx, name, body.state, body.reason))


# --- tickets ------------------------------------------------------------------------


class TicketIn(Input):
    service: Text = Field(max_length=128)
    title: Text = Field(min_length=1, max_length=500)
    severity: int = Field(default=3, ge=1, le=5)
    text: Text = Field(default="", max_length=5000)


class TicketOut(BaseModel):
    id: int
    title: str
    severity: int
    state: str
    assignee: str | None
    alarm: str | None
    dedup_key: str | None
    links: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class TicketEventOut(BaseModel):
    at: datetime
    actor: str
    kind: str
    text: str


class TextIn(Input):
    text: Text = Field(default="", max_length=5000)


def _ticket_out(t: Any) -> TicketOut:
    return TicketOut(
        id=t.id,
        title=t.title,
        severity=t.severity,
        state=t.state,
        assignee=t.assignee,
        alarm=t.alarm,
        dedup_key=t.dedup_key,
        links=t.links,
        created_at=t.created_at,
        updated_at=t.updated_at,
        resolved_at=t.resolved_at,
    )


TicketId = Annotated[int, Path(ge=1, le=2_147_483_647)]


@router.get("/tickets", response_model=list[TicketOut])
def list_tickets(
    ctx: CtxDep,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    severity: Annotated[int | None, Query(ge=1, le=5)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TicketOut]:
    return [_ticket_out(t) for t in tickets.list_tickets(ctx, state, severity, limit)]


@router.post("/tickets", response_model=TicketOut, status_code=201)
def create_ticket(body: TicketIn, ctx: CtxDep) -> TicketOut:
    return _ticket_out(tickets.create(ctx, body.service, body.title, body.severity, body.text))


@router.get("/tickets/{ticket_id}", response_model=TicketOut)
def get_ticket(ticket_id: TicketId, ctx: CtxDep) -> TicketOut:
    return _ticket_out(tickets.get(ctx, ticket_id))


@router.get("/tickets/{ticket_id}/timeline", response_model=list[TicketEventOut])
def ticket_timeline(ticket_id: TicketId, ctx: CtxDep) -> list[TicketEventOut]:
    return [
        TicketEventOut(at=e.at, actor=e.actor, kind=e.kind, text=e.text)
        for e in tickets.timeline(ctx, ticket_id)
    ]


@router.post("/tickets/{ticket_id}/comments", response_model=TicketOut)
def comment_ticket(ticket_id: TicketId, body: TextIn, ctx: CtxDep) -> TicketOut:
    return _ticket_out(tickets.comment(ctx, ticket_id, body.text))


@router.post("/tickets/{ticket_id}/acknowledge", response_model=TicketOut)
def acknowledge_ticket(ticket_id: TicketId, ctx: CtxDep) -> TicketOut:
    return _ticket_out(tickets.acknowledge(ctx, ticket_id))


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketOut)
def resolve_ticket(ticket_id: TicketId, body: TextIn, ctx: CtxDep) -> TicketOut:
    return _ticket_out(tickets.resolve(ctx, ticket_id, body.text))


class PromoteIn(Input):
    summary: Text = Field(min_length=1, max_length=2000)


@router.post(
    "/tickets/{ticket_id}/promote",
    response_model=TicketOut,
    description="Offer a resolved SEV1/SEV2 ticket to the roadmap as an operational finding "
    "(the `tickets.promoted` event); once per ticket.",
)
def promote_ticket(ticket_id: TicketId, body: PromoteIn, ctx: CtxDep) -> TicketOut:
    return _ticket_out(tickets.promote(ctx, ticket_id, body.summary))


# Each area's routes live in a module of its own (some import this module's models, so
# they are included last).
from mechanisms.ops import api_oncall, api_scaling, api_silences  # noqa: E402

for area in (api_scaling.router, alerts_router, api_oncall.router, api_silences.router):
    router.include_router(area)
