"""Alerts from existing tools: Alertmanager's webhook (payload version 4) and PagerDuty's
Events API v2 cut, update, acknowledge and resolve tickets, one open ticket per alert.

Alertmanager authenticates with an API token (``http_config.authorization``) and must
hold the engineer role in the team of every service its alerts name. A PagerDuty-style
event authenticates with its ``routing_key``: an integration key made for one service,
kept as a SHA-256 digest only, so a leaked database does not leak working keys.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from sqlalchemy import select

from mechanisms.core import audit
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.identity import Principal, Role, token_digest
from mechanisms.core.permissions import require_site_role, require_team_role, visible_teams_filter
from mechanisms.ops import alarms, tickets
from mechanisms.ops.tables import IntegrationKey, OpsService, Ticket

# Severity words of the tools people route from, to SEV1 (most severe) .. SEV5.
SEVERITY_WORDS = {
    "critical": 1,
    "page": 1,
    "high": 2,
    "error": 2,
    "major": 2,
    "warning": 3,
    "medium": 3,
    "minor": 4,
    "low": 4,
    "info": 4,
    "none": 5,
}
# PagerDuty's four severities, as its Common Event Format defines them.
PAGERDUTY_SEVERITIES = {"critical": 1, "error": 2, "warning": 3, "info": 4}
DEFAULT_SEVERITY = 3

# PagerDuty documents "approximately 120 calls/minute per integration key".
EVENTS_PER_MINUTE = 120
RATE_WINDOW = timedelta(minutes=1)

KEY_NAME_MAX = 100


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def severity_of(word: str | None, default: int = DEFAULT_SEVERITY) -> tuple[int, bool]:
    """SEV from a severity label ("critical", "warning", "sev2", "2"); (default, False)
    when the word is absent or unknown, so an alert is never dropped for its label."""
    if not word:
        return default, False
    cleaned = word.strip().lower().removeprefix("sev")
    if cleaned in SEVERITY_WORDS:
        return SEVERITY_WORDS[cleaned], True
    if cleaned in {"1", "2", "3", "4", "5"}:
        return int(cleaned), True
    return default, False


# --- integration keys ---------------------------------------------------------------


def new_routing_key() -> str:
    """32 hexadecimal characters, the shape of PagerDuty's integration keys (some clients
    check the length)."""
    return secrets.token_hex(16)


def key_snapshot(key: IntegrationKey, service: OpsService) -> dict[str, Any]:
    return {
        "service": service.key,
        "name": key.name,
        "hint": key.hint,
        "created_at": key.created_at.isoformat(),
        "rotated_at": key.rotated_at.isoformat() if key.rotated_at else None,
    }


def _managed_service(ctx: Ctx, service_key: str) -> OpsService:
    """The service whose keys the caller manages: engineers of its team."""
    require_site_role(ctx, Role.ENGINEER)
    service = alarms.get_service(ctx, service_key)
    require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    return service


def _key_named(ctx: Ctx, service: OpsService, name: str) -> IntegrationKey | None:
    return ctx.session.execute(
        select(IntegrationKey).where(
            IntegrationKey.service_id == service.id, IntegrationKey.name == name
        )
    ).scalar_one_or_none()


def create_integration_key(
    ctx: Ctx, service_key: str, name: str
) -> tuple[IntegrationKey, OpsService, str]:
    """A new routing key for a service; the key itself is returned once, here."""
    service = _managed_service(ctx, service_key)
    name = name.strip()
    if not name or len(name) > KEY_NAME_MAX or "\x00" in name:
        raise _invalid("name", f"1-{KEY_NAME_MAX} characters")
    if _key_named(ctx, service, name) is not None:
        raise Conflict(
            f"service {service.key!r} already has an integration key named {name!r}",
            details={"field": "name"},
        )
    secret = new_routing_key()
    key = IntegrationKey(
        service_id=service.id,
        name=name,
        digest=token_digest(secret),
        hint=secret[:6],
        created_at=ctx.now,
        window_events=0,
    )
    ctx.session.add(key)
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.integration_key_created",
        "integration_key",
        key.id,
        after=key_snapshot(key, service),
    )
    return key, service, secret


def rotate_integration_key(
    ctx: Ctx, service_key: str, name: str
) -> tuple[IntegrationKey, OpsService, str]:
    """Replace a key's secret: the old one stops working at once."""
    service = _managed_service(ctx, service_key)
    key = _key_named(ctx, service, name)
    if key is None:
        raise NotFound(
            f"service {service.key!r} has no integration key named {name!r}",
            details={"field": "name"},
        )
    before = key_snapshot(key, service)
    secret = new_routing_key()
    key.digest, key.hint, key.rotated_at = token_digest(secret), secret[:6], ctx.now
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.integration_key_rotated",
        "integration_key",
        key.id,
        before=before,
        after=key_snapshot(key, service),
    )
    return key, service, secret


def list_integration_keys(
    ctx: Ctx, service_key: str | None = None
) -> list[tuple[IntegrationKey, OpsService]]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(IntegrationKey, OpsService)
        .join(OpsService, OpsService.id == IntegrationKey.service_id)
        .where(visible_teams_filter(ctx, OpsService.owner_team_id))
        .order_by(OpsService.key, IntegrationKey.name)
    )
    if service_key:
        query = query.where(OpsService.id == alarms.get_service(ctx, service_key).id)
    return [(k, s) for k, s in ctx.session.execute(query).all()]


# --- outcomes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one alert did: ``opened`` a ticket, ``updated`` the open one, ``acknowledged``
    or ``resolved`` it, or ``none`` (nothing open to acknowledge or resolve)."""

    dedup_key: str
    action: str
    ticket_id: int | None


def _outcome(dedup_key: str, action: str, ticket: Ticket | None) -> Outcome:
    """``action`` happened to ``ticket``; without a ticket, nothing happened."""
    return Outcome(dedup_key, action if ticket else "none", ticket.id if ticket else None)


# --- Alertmanager -------------------------------------------------------------------


def _parse_instant(value: str) -> str:
    # Go writes RFC 3339 with nanoseconds; Python reads up to microseconds and more digits
    # since 3.11. A zero time ("0001-01-01T00:00:00Z") is how Alertmanager says "unset".
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("must be an RFC 3339 date-time") from None
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text where SQLite stores it: refuse it on both.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") no database can store
        raise ValueError("must be valid Unicode") from None
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Instant = Annotated[
    str, AfterValidator(_parse_instant), WithJsonSchema({"type": "string", "format": "date-time"})
]
Labels = dict[Text, Text]


class _Protocol(BaseModel):
    # Strict types, but unknown fields are ignored: newer Alertmanager versions add
    # fields, and refusing them would drop real alerts on the floor.
    model_config = ConfigDict(strict=True, extra="ignore")


class AlertmanagerAlert(_Protocol):
    status: Literal["firing", "resolved"]
    labels: Labels = Field(min_length=1)
    annotations: Labels
    startsAt: Instant  # noqa: N815 - Alertmanager's field names
    endsAt: Instant  # noqa: N815
    generatorURL: Text  # noqa: N815
    fingerprint: Text = Field(default="", max_length=64)


class AlertmanagerPayload(_Protocol):
    """Alertmanager's webhook body, version 4."""

    version: Literal["4"]
    groupKey: Text = Field(max_length=10_000)  # noqa: N815
    truncatedAlerts: int = Field(default=0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: Text
    groupLabels: Labels  # noqa: N815
    commonLabels: Labels  # noqa: N815
    commonAnnotations: Labels  # noqa: N815
    externalURL: Text  # noqa: N815
    # No item limit of its own: the request body limit bounds it (413).
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


def _alert_key(service: OpsService, alert: AlertmanagerAlert, group_key: str) -> str:
    identity = alert.fingerprint
    if not identity:
        labels = json.dumps(alert.labels, sort_keys=True)
        identity = hashlib.sha256(f"{group_key}\n{labels}".encode()).hexdigest()[:32]
    return f"alertmanager:{service.id}:{identity}"


def _alert_text(alert: AlertmanagerAlert, severity_note: str) -> str:
    lines = [alert.annotations.get("description") or alert.annotations.get("summary") or ""]
    lines.append(", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
    lines.append(f"since {alert.startsAt}; source {alert.generatorURL}")
    if severity_note:
        lines.append(severity_note)
    return "\n".join(line for line in lines if line)


def receive_alertmanager(
    ctx: Ctx,
    payload: AlertmanagerPayload,
    route_service: str | None = None,
    default_severity: int = DEFAULT_SEVERITY,
) -> list[Outcome]:
    """Each firing alert opens (or updates) its ticket; each resolved one resolves it.

    An alert's service is its ``service`` label, else ``route_service`` (the receiver's
    URL names it). Every alert's service is checked before anything is written, so a
    payload with one unknown service is refused whole."""
    require_site_role(ctx, Role.ENGINEER)
    if default_severity not in range(1, 6):
        raise _invalid("default_severity", "1 (SEV1, the most severe) to 5")
    services: dict[str, OpsService] = {}
    chosen: list[OpsService] = []
    for i, alert in enumerate(payload.alerts):
        key = alert.labels.get("service") or route_service
        if not key:
            raise _invalid(
                f"alerts[{i}].labels.service",
                "the alert names no service: give it a 'service' label or add "
                "?service=<key> to the receiver's URL",
            )
        if key not in services:
            found = ctx.session.execute(
                select(OpsService).where(OpsService.key == key)
            ).scalar_one_or_none()
            if found is None:
                raise _invalid(f"alerts[{i}].labels.service", f"unknown service {key!r}")
            require_team_role(ctx, found.owner_team_id, Role.ENGINEER)
            services[key] = found
        chosen.append(services[key])
    outcomes = []
    for alert, service in zip(payload.alerts, chosen, strict=True):
        dedup_key = _alert_key(service, alert, payload.groupKey)
        name = alert.labels.get("alertname", "alert")
        if alert.status == "resolved":
            ticket = tickets.resolve_open(
                ctx, dedup_key, f"Alertmanager: {name} resolved at {alert.endsAt}"
            )
            outcomes.append(_outcome(dedup_key, "resolved", ticket))
            continue
        word = alert.labels.get("severity")
        severity, known = severity_of(word, default_severity)
        note = "" if known or not word else f"severity label {word!r} is unknown: SEV{severity}"
        title = alert.annotations.get("summary", "").strip() or f"{name} is firing"
        ticket, new = tickets.cut(
            ctx,
            service,
            title[:500],
            severity,
            dedup_key=dedup_key,
            text=_alert_text(alert, note),
            links={
                "alertmanager": {
                    "fingerprint": alert.fingerprint,
                    "generator_url": alert.generatorURL,
                    "external_url": payload.externalURL,
                    "group_key": payload.groupKey,
                }
            },
        )
        outcomes.append(_outcome(dedup_key, "opened" if new else "updated", ticket))
    return outcomes


# --- PagerDuty Events API v2 --------------------------------------------------------


class PagerDutyError(Exception):
    """An event PagerDuty would refuse: 400 with ``errors``, or 429 when rate limited."""

    def __init__(
        self, status: int, message: str, errors: list[str], retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors
        self.retry_after = retry_after


class PagerDutyPayload(_Protocol):
    summary: Text = Field(min_length=1, max_length=1024)
    source: Text = Field(min_length=1, max_length=1024)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: Instant | None = None
    component: Text | None = None
    group: Text | None = None
    class_: Text | None = Field(default=None, alias="class")
    custom_details: Any = None


class PagerDutyLink(_Protocol):
    href: Text = Field(max_length=2000)
    text: Text | None = Field(default=None, max_length=500)


class PagerDutyImage(_Protocol):
    src: Text = Field(max_length=2000)
    href: Text | None = Field(default=None, max_length=2000)
    alt: Text | None = Field(default=None, max_length=500)


class PagerDutyEvent(_Protocol):
    routing_key: Text = Field(min_length=1, max_length=64)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: Text | None = Field(default=None, min_length=1, max_length=255)
    payload: PagerDutyPayload | None = None
    client: Text | None = None
    client_url: Text | None = None
    links: list[PagerDutyLink] = Field(default_factory=list)
    images: list[PagerDutyImage] = Field(default_factory=list)


def _event_errors(exc: ValidationError) -> list[str]:
    errors = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "event"
        errors.append(f"'{where}': {err['msg'].removeprefix('Value error, ')}")
    return errors


def parse_event(raw: Any) -> PagerDutyEvent:
    if not isinstance(raw, dict):
        raise PagerDutyError(400, "Event object is invalid", ["the body must be a JSON object"])
    try:
        event = PagerDutyEvent.model_validate(raw)
    except ValidationError as exc:
        raise PagerDutyError(400, "Event object is invalid", _event_errors(exc)) from None
    if event.event_action == "trigger" and event.payload is None:
        raise PagerDutyError(400, "Event object is invalid", ["'payload' is missing"])
    if event.event_action != "trigger" and event.dedup_key is None:
        raise PagerDutyError(
            400, "Event object is invalid", [f"'dedup_key' is required to {event.event_action}"]
        )
    return event


def _integration(ctx: Ctx, routing_key: str) -> tuple[IntegrationKey, OpsService]:
    found = ctx.session.execute(
        select(IntegrationKey, OpsService)
        .join(OpsService, OpsService.id == IntegrationKey.service_id)
        .where(IntegrationKey.digest == token_digest(routing_key))
    ).first()
    if found is None:
        raise PagerDutyError(
            400, "Event object is invalid", ["'routing_key' is not a known integration key"]
        )
    return found[0], found[1]


def _count_event(ctx: Ctx, key: IntegrationKey) -> None:
    """A fixed one-minute window per key. The count rises only with accepted events (a
    refused one rolls back with its request)."""
    if key.window_start is None or ctx.now - key.window_start >= RATE_WINDOW:
        key.window_start, key.window_events = ctx.now, 0
    if key.window_events >= EVENTS_PER_MINUTE:
        raise PagerDutyError(
            429,
            f"Request Limit Exceeded: at most {EVENTS_PER_MINUTE} events a minute per "
            "routing key; retry later",
            [],
            retry_after=max(1, int((key.window_start + RATE_WINDOW - ctx.now).total_seconds())),
        )
    key.window_events += 1


def enqueue(ctx: Ctx, raw: Any) -> Outcome:
    """One PagerDuty Events API v2 event, authenticated by its routing key alone (as
    PagerDuty does): it acts as the key, on the key's service only."""
    event = parse_event(raw)
    key, service = _integration(ctx, event.routing_key)
    _count_event(ctx, key)
    acting = Ctx(
        ctx.session,
        Principal(
            user_id=None,
            username=f"integration:{service.key}/{key.name}",
            via="system",
            is_bot=True,
            scope=Role.ENGINEER,
        ),
        ctx.now,
    )
    # PagerDuty scopes a dedup key to its routing key; we scope it to the key's service,
    # so a rotated key (or a second key of the service) still resolves what one opened.
    dedup_key = event.dedup_key or str(uuid.uuid4())
    ticket_key = f"pagerduty:{service.id}:{dedup_key}"
    if event.event_action == "acknowledge":
        ticket = tickets.acknowledge_open(acting, ticket_key, "Acknowledged through the Events API")
        return _outcome(dedup_key, "acknowledged", ticket)
    if event.event_action == "resolve":
        ticket = tickets.resolve_open(acting, ticket_key, "Resolved through the Events API")
        return _outcome(dedup_key, "resolved", ticket)
    payload = event.payload
    assert payload is not None  # parse_event requires it for a trigger
    details = [f"source {payload.source}"]
    details += [
        f"{name} {value}"
        for name, value in (
            ("component", payload.component),
            ("group", payload.group),
            ("class", payload.class_),
            ("client", event.client),
        )
        if value
    ]
    if payload.custom_details is not None:
        details.append(json.dumps(payload.custom_details, sort_keys=True, default=str)[:3000])
    ticket, new = tickets.cut(
        acting,
        service,
        payload.summary[:500],
        PAGERDUTY_SEVERITIES[payload.severity],
        dedup_key=ticket_key,
        text="\n".join(details),
        links={
            "pagerduty": {
                "dedup_key": dedup_key,
                "client_url": event.client_url,
                "links": [link.model_dump(exclude_none=True) for link in event.links[:20]],
            }
        },
    )
    return _outcome(dedup_key, "opened" if new else "updated", ticket)
