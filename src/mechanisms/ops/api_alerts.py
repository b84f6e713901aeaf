"""HTTP API for alerts from existing tools: Alertmanager's webhook receiver, a PagerDuty
Events API v2 compatible ``enqueue``, their integration keys, and alarms that read from
an existing Prometheus."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mechanisms.core import inputs
from mechanisms.core.context import Ctx
from mechanisms.core.identity import ANONYMOUS
from mechanisms.ops import alerts, prometheus
from mechanisms.ops.alerts import AlertmanagerPayload
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

# Included by ops/api.py under its /api/v1/ops prefix.
router = APIRouter(route_class=UnitOfWorkRoute, tags=["ops alerts"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]

# Marks an operation whose credential is in the body (PagerDuty's routing_key), not an
# API token: a bearer token sent with it plays no part.
CREDENTIAL_MARK = "x-mech-credential"


# --- Alertmanager -------------------------------------------------------------------


class OutcomeOut(BaseModel):
    dedup_key: str
    action: Literal["opened", "updated", "acknowledged", "resolved", "none"] = Field(
        description="what the alert did to its ticket"
    )
    ticket_id: int | None


class AlertmanagerOut(BaseModel):
    outcomes: list[OutcomeOut]


def _outcome(o: alerts.Outcome) -> OutcomeOut:
    return OutcomeOut(dedup_key=o.dedup_key, action=o.action, ticket_id=o.ticket_id)


@router.post("/alerts/alertmanager", response_model=AlertmanagerOut)
def receive_alertmanager(
    body: AlertmanagerPayload,
    ctx: CtxDep,
    service: Annotated[
        str | None,
        Query(
            max_length=128,
            description="the service of alerts that carry no `service` label (one receiver "
            "per route)",
        ),
    ] = None,
    default_severity: Annotated[
        int,
        Query(ge=1, le=5, description="SEV of alerts whose `severity` label is absent or unknown"),
    ] = alerts.DEFAULT_SEVERITY,
) -> AlertmanagerOut:
    """Alertmanager's webhook receiver (payload version 4).

    Configure a `webhook_configs` entry with this URL and an API token of an engineer of
    the services' teams as `http_config.authorization.credentials`. Each firing alert
    opens a ticket, or updates the open one (one open ticket per alert fingerprint);
    each resolved alert resolves it. The `severity` label maps critical/page → SEV1,
    error/high/major → SEV2, warning/medium → SEV3, info/low/minor → SEV4, none → SEV5,
    `sevN`/`N` → SEV N. A payload that is not version 4, or whose alerts name an unknown
    service, is refused whole (422) and nothing is written."""
    outcomes = alerts.receive_alertmanager(ctx, body, service, default_severity)
    return AlertmanagerOut(outcomes=[_outcome(o) for o in outcomes])


# --- PagerDuty Events API v2 --------------------------------------------------------


class EventAccepted(BaseModel):
    status: Literal["success"]
    message: str
    dedup_key: str


class EventRefused(BaseModel):
    status: str = Field(description='"invalid event", or "throttle exceeded" with 429')
    message: str
    errors: list[str]


_PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["summary", "source", "severity"],
    "properties": {
        "summary": {"type": "string", "maxLength": 1024},
        "source": {"type": "string"},
        "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "component": {"type": "string"},
        "group": {"type": "string"},
        "class": {"type": "string"},
        "custom_details": {},
    },
}
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "description": "an integration key of the service"},
        "event_action": {"type": "string", "enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": _PAYLOAD_SCHEMA,
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "properties": {"href": {"type": "string"}, "text": {"type": "string"}},
            },
        },
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["src"],
                "properties": {
                    "src": {"type": "string"},
                    "href": {"type": "string"},
                    "alt": {"type": "string"},
                },
            },
        },
    },
}
_ENQUEUE_DOC: dict[str, Any] = {
    "status_code": 202,
    "response_model": EventAccepted,
    "responses": {
        400: {"model": EventRefused, "description": "invalid event (PagerDuty's answer)"},
        429: {
            "model": EventRefused,
            "description": f"more than {alerts.EVENTS_PER_MINUTE} events in a minute for "
            "this routing key",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _EVENT_SCHEMA}},
        },
        CREDENTIAL_MARK: "routing_key",
    },
}


def routing_key_ctx(request: Request) -> Ctx:
    """The request's unit of work with nobody acting yet: the routing key in the body is
    the credential (PagerDuty clients send no Authorization header)."""
    return Ctx(request.state.db_session, ANONYMOUS, request.app.state.clock.now())


def _refused(error: alerts.PagerDutyError) -> JSONResponse:
    status = "throttle exceeded" if error.status == 429 else "invalid event"
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return JSONResponse(
        {"status": status, "message": error.message, "errors": error.errors},
        status_code=error.status,
        headers=headers,
    )


async def _enqueue(request: Request, ctx: Ctx) -> JSONResponse:
    try:
        raw = inputs.parse_json(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _refused(
            alerts.PagerDutyError(400, "Event object is invalid", ["the body is not valid JSON"])
        )
    try:
        outcome = await run_in_threadpool(alerts.enqueue, ctx, raw)
    except alerts.PagerDutyError as error:
        return _refused(error)
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": outcome.dedup_key},
        status_code=202,
    )


_ENQUEUE_HELP = """PagerDuty Events API v2 compatible `enqueue`: `trigger` opens a ticket on the
routing key's service (or updates the open one with the same `dedup_key`; one is generated
and returned when a trigger has none), `acknowledge` and `resolve` act on the open ticket.
`payload.severity` maps critical → SEV1, error → SEV2, warning → SEV3, info → SEV4.
Answers as PagerDuty does: 202 success, 400 invalid event, 429 over the rate limit."""


@router.post("/alerts/pagerduty/enqueue", description=_ENQUEUE_HELP, **_ENQUEUE_DOC)
async def pagerduty_enqueue(
    request: Request, ctx: Annotated[Ctx, Depends(routing_key_ctx)]
) -> JSONResponse:
    return await _enqueue(request, ctx)


@router.post(
    "/alerts/pagerduty/v2/enqueue",
    description="The same as `/alerts/pagerduty/enqueue`, for clients that take a base URL "
    "and add `/v2/enqueue` (use `…/api/v1/ops/alerts/pagerduty` as the base).",
    **_ENQUEUE_DOC,
)
async def pagerduty_enqueue_v2(
    request: Request, ctx: Annotated[Ctx, Depends(routing_key_ctx)]
) -> JSONResponse:
    return await _enqueue(request, ctx)


# --- integration keys ---------------------------------------------------------------


class IntegrationKeyIn(Input):
    service: Text = Field(min_length=1, max_length=128)
    name: Text = Field(min_length=1, max_length=alerts.KEY_NAME_MAX)


class IntegrationKeyOut(BaseModel):
    service: str
    name: str
    hint: str = Field(description="the key's first characters, to tell keys apart")
    created_at: datetime
    rotated_at: datetime | None


class IntegrationKeySecretOut(IntegrationKeyOut):
    routing_key: str = Field(description="the key itself: shown this once, stored hashed")


def _key_out(key: Any, service: Any) -> IntegrationKeyOut:
    return IntegrationKeyOut(
        service=service.key,
        name=key.name,
        hint=key.hint,
        created_at=key.created_at,
        rotated_at=key.rotated_at,
    )


def _secret_out(key: Any, service: Any, secret: str) -> IntegrationKeySecretOut:
    return IntegrationKeySecretOut(**_key_out(key, service).model_dump(), routing_key=secret)


@router.get("/alerts/integration-keys", response_model=list[IntegrationKeyOut])
def list_integration_keys(
    ctx: CtxDep, service: Annotated[str | None, Query(max_length=128)] = None
) -> list[IntegrationKeyOut]:
    return [_key_out(k, s) for k, s in alerts.list_integration_keys(ctx, service)]


@router.post("/alerts/integration-keys", response_model=IntegrationKeySecretOut, status_code=201)
def create_integration_key(body: IntegrationKeyIn, ctx: CtxDep) -> IntegrationKeySecretOut:
    """A PagerDuty-style routing key for a service."""
    return _secret_out(*alerts.create_integration_key(ctx, body.service, body.name))


@router.post(
    "/alerts/integration-keys/{service}/{name}/rotate", response_model=IntegrationKeySecretOut
)
def rotate_integration_key(
    service: Annotated[str, Path(max_length=128)],
    name: Annotated[str, Path(max_length=alerts.KEY_NAME_MAX)],
    ctx: CtxDep,
) -> IntegrationKeySecretOut:
    """A new secret for the key; the old one stops working at once."""
    return _secret_out(*alerts.rotate_integration_key(ctx, service, name))


# --- alarms over Prometheus ---------------------------------------------------------


class PrometheusAlarmIn(Input):
    name: Text = Field(min_length=1, max_length=200)
    service: Text = Field(max_length=128)
    url: Text = Field(
        min_length=1, max_length=2000, description="the Prometheus server, e.g. http://prom:9090"
    )
    query: Text = Field(min_length=1, max_length=10_000, description="a PromQL expression")
    definition: dict[str, Any]
    severity: int = Field(default=3, ge=1, le=5)
    description: Text = Field(default="", max_length=2000)


class PrometheusAlarmOut(BaseModel):
    name: str
    service_id: int
    url: str
    query: str
    definition: dict[str, Any]
    severity: int
    state: str
    state_reason: str
    evaluated_at: datetime | None


def _prometheus_out(alarm: Any, source: Any) -> PrometheusAlarmOut:
    return PrometheusAlarmOut(
        name=alarm.name,
        service_id=alarm.service_id,
        url=source.url,
        query=source.query,
        definition=alarm.definition,
        severity=alarm.severity,
        state=alarm.state,
        state_reason=alarm.state_reason,
        evaluated_at=alarm.evaluated_at,
    )


@router.post("/alarms/prometheus", response_model=PrometheusAlarmOut, status_code=201)
def create_prometheus_alarm(body: PrometheusAlarmIn, ctx: CtxDep) -> PrometheusAlarmOut:
    """An alarm over a PromQL query on an existing Prometheus.

    Each evaluation runs a range query over the alarm's window with a step of one period;
    the value at the end of a period is that period's datapoint (write the query to cover
    the period, e.g. `avg_over_time(x[5m])` for 300-second periods). The statistic
    (avg, sum, min, max, count) combines the series the query returns. An unreachable
    server, an error answer or values that are not numbers count as missing data."""
    alarm, source = prometheus.create_alarm(
        ctx,
        body.name,
        body.service,
        url=body.url,
        query=body.query,
        definition=body.definition,
        severity=body.severity,
        description=body.description,
    )
    return _prometheus_out(alarm, source)


@router.get("/alarms/{name}/prometheus", response_model=PrometheusAlarmOut)
def get_prometheus_alarm(name: str, ctx: CtxDep) -> PrometheusAlarmOut:
    """The Prometheus source of an alarm (404 for alarms over the built-in store)."""
    return _prometheus_out(*prometheus.get_source(ctx, name))
