"""Tickets: cut by alarms (one open ticket per alarm), by people, or by incoming alerts;
a timeline of every change and comment; acknowledged and resolved by people."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mechanisms.core import audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    organisation_of,
    require_site_role,
    require_team_role,
    require_visible_team,
    visible_teams_filter,
)
from mechanisms.ops.tables import Alarm, OpsService, Ticket, TicketEvent

STATES = ("open", "acknowledged", "resolved")
HIGH_SEVERITY = (1, 2)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def snapshot(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "title": ticket.title,
        "severity": ticket.severity,
        "state": ticket.state,
        "assignee": ticket.assignee,
        "alarm": ticket.alarm,
        "dedup_key": ticket.dedup_key,
    }


def _note(ctx: Ctx, ticket: Ticket, kind: str, text: str = "") -> None:
    ctx.session.add(
        TicketEvent(
            ticket_id=ticket.id, at=ctx.now, actor=ctx.principal.actor, kind=kind, text=text[:5000]
        )
    )
    ticket.updated_at = ctx.now


def _announce(ctx: Ctx, ticket: Ticket, action: str, before: dict[str, Any] | None = None) -> None:
    audit.record(
        ctx,
        action,
        "ticket",
        ticket.id,
        before=before,
        after=snapshot(ticket),
        org_id=organisation_of(ctx, ticket.owner_team_id),
    )
    events.emit(
        ctx,
        action,
        "ticket",
        ticket.id,
        {**snapshot(ticket), "high_severity": ticket.severity in HIGH_SEVERITY},
    )


def open_ticket_for(session: Session, dedup_key: str) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.open_key == dedup_key)).scalar_one_or_none()


def cut(
    ctx: Ctx,
    service: OpsService,
    title: str,
    severity: int,
    *,
    dedup_key: str | None = None,
    alarm: str | None = None,
    text: str = "",
    links: dict[str, Any] | None = None,
) -> tuple[Ticket, bool]:
    """Open a ticket, or update the open one with the same dedup key; returns (ticket, new)."""
    if severity not in range(1, 6):
        raise _invalid("severity", "1 (SEV1, the most severe) to 5")
    if not title.strip() or len(title) > 500 or "\x00" in title:
        raise _invalid("title", "1-500 characters")
    if dedup_key is not None:
        existing = open_ticket_for(ctx.session, dedup_key)
        if existing is not None:
            _note(ctx, existing, "update", text or title)
            ctx.session.flush()
            return existing, False
    ticket = Ticket(
        title=title.strip(),
        severity=severity,
        state="open",
        service_id=service.id,
        owner_team_id=service.owner_team_id,
        alarm=alarm,
        open_key=dedup_key,
        dedup_key=dedup_key,
        links=links or {},
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(ticket)
    ctx.session.flush()
    _note(ctx, ticket, "created", text)
    ctx.session.flush()
    _announce(ctx, ticket, "tickets.opened")
    return ticket, True


def create(ctx: Ctx, service_key: str, title: str, severity: int, text: str = "") -> Ticket:
    """A ticket cut by a person."""
    require_site_role(ctx, Role.ENGINEER)
    service = _service(ctx, service_key)
    require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    return cut(ctx, service, title, severity, text=text)[0]


def _service(ctx: Ctx, key: str) -> OpsService:
    found = ctx.session.execute(
        select(OpsService).where(OpsService.key == key)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"service {key!r} not found", details={"field": "service"})
    require_visible_team(ctx, found.owner_team_id, f"service {key!r}")
    return found


def get(ctx: Ctx, ticket_id: int) -> Ticket:
    require_site_role(ctx, Role.VIEWER)
    ticket = ctx.session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    require_visible_team(ctx, ticket.owner_team_id, f"ticket {ticket_id}")
    return ticket


def cite(ctx: Ctx, ticket: Ticket, key: str, link: dict[str, Any], text: str) -> None:
    """Another mechanism rests a decision on this ticket (a break-glass request cites it as
    its justification): the ticket links to it and its timeline says so, so the citation is
    seen from both sides. The citing service has authorised its caller."""
    ticket.links = {**(ticket.links or {}), key: link}
    _note(ctx, ticket, "cited", text)
    ctx.session.flush()
    audit.record(ctx, "tickets.cited", "ticket", ticket.id, details={key: link})


def list_tickets(
    ctx: Ctx, state: str | None = None, severity: int | None = None, limit: int = 100
) -> list[Ticket]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(Ticket)
        .where(visible_teams_filter(ctx, Ticket.owner_team_id))
        .order_by(Ticket.severity, Ticket.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    if state:
        query = query.where(Ticket.state == state)
    if severity:
        query = query.where(Ticket.severity == severity)
    return list(ctx.session.execute(query).scalars())


def timeline(ctx: Ctx, ticket_id: int) -> list[TicketEvent]:
    get(ctx, ticket_id)
    return list(
        ctx.session.execute(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        ).scalars()
    )


def _editable(ctx: Ctx, ticket_id: int) -> Ticket:
    require_site_role(ctx, Role.ENGINEER)
    ticket = get(ctx, ticket_id)
    require_team_role(ctx, ticket.owner_team_id, Role.ENGINEER)
    return ticket


def comment(ctx: Ctx, ticket_id: int, text: str) -> Ticket:
    ticket = _editable(ctx, ticket_id)
    if not text.strip() or "\x00" in text:
        raise _invalid("text", "say something")
    _note(ctx, ticket, "comment", text.strip())
    ctx.session.flush()
    audit.record(
        ctx,
        "tickets.commented",
        "ticket",
        ticket.id,
        org_id=organisation_of(ctx, ticket.owner_team_id),
    )
    return ticket


def acknowledge(ctx: Ctx, ticket_id: int) -> Ticket:
    ticket = _editable(ctx, ticket_id)
    if ticket.state != "open":
        raise Conflict(f"ticket {ticket_id} is {ticket.state}; only an open ticket is acknowledged")
    return _mark_acknowledged(ctx, ticket, assignee=ctx.principal.username)


def _mark_acknowledged(ctx: Ctx, ticket: Ticket, assignee: str | None, text: str = "") -> Ticket:
    before = snapshot(ticket)
    ticket.state = "acknowledged"
    ticket.assignee = ticket.assignee or assignee
    _note(ctx, ticket, "acknowledged", text)
    ctx.session.flush()
    _announce(ctx, ticket, "tickets.acknowledged", before)
    return ticket


def resolve(ctx: Ctx, ticket_id: int, text: str) -> Ticket:
    ticket = _editable(ctx, ticket_id)
    if ticket.state == "resolved":
        raise Conflict(f"ticket {ticket_id} is already resolved")
    if not text.strip():
        raise _invalid("text", "say what fixed it")
    return _mark_resolved(ctx, ticket, text.strip())


def _mark_resolved(ctx: Ctx, ticket: Ticket, text: str) -> Ticket:
    before = snapshot(ticket)
    ticket.state, ticket.resolved_at, ticket.open_key = "resolved", ctx.now, None
    _note(ctx, ticket, "resolved", text)
    ctx.session.flush()
    _announce(ctx, ticket, "tickets.resolved", before)
    return ticket


def promote(ctx: Ctx, ticket_id: int, summary: str) -> Ticket:
    """Offer a resolved SEV1/SEV2 ticket to the roadmap as an operational finding.

    The roadmap subscribes to ``tickets.promoted`` and turns it into a roadmap item; the
    ticket keeps the promotion in its links so it is offered once."""
    ticket = _editable(ctx, ticket_id)
    if ticket.state != "resolved":
        raise Conflict(f"ticket {ticket_id} is {ticket.state}; resolve it before promoting it")
    if ticket.severity not in HIGH_SEVERITY:
        raise Conflict(f"ticket {ticket_id} is SEV{ticket.severity}; only SEV1 and SEV2 tickets")
    if "roadmap" in ticket.links:
        raise Conflict(f"ticket {ticket_id} is already promoted to the roadmap")
    summary = summary.strip()
    if not summary or "\x00" in summary:
        raise _invalid("summary", "say what the organisation should change")
    before = snapshot(ticket)
    finding = {"summary": summary[:2000], "by": ctx.principal.actor, "at": ctx.now.isoformat()}
    ticket.links = {**ticket.links, "roadmap": finding}
    _note(ctx, ticket, "promoted", summary)
    ctx.session.flush()
    service = ctx.session.get(OpsService, ticket.service_id)
    audit.record(
        ctx, "tickets.promoted", "ticket", ticket.id, before=before, after=snapshot(ticket)
    )
    events.emit(
        ctx,
        "tickets.promoted",
        "ticket",
        ticket.id,
        {
            **snapshot(ticket),
            "summary": finding["summary"],
            "service": service.key if service else None,
            "owner_team_id": ticket.owner_team_id,
            "kind": "operational_finding",
        },
    )
    return ticket


def on_alarm(ctx: Ctx, alarm_name: str, state: str, reason: str) -> Ticket | None:
    """An alarm changed state: ALARM cuts (or updates) its ticket, OK notes the recovery."""
    alarm = ctx.session.execute(select(Alarm).where(Alarm.name == alarm_name)).scalar_one_or_none()
    if alarm is None:
        return None
    key = f"alarm:{alarm.name}"
    if state == "ALARM":
        service = ctx.session.get(OpsService, alarm.service_id)
        ticket, _new = cut(
            ctx,
            service,
            f"{alarm.name} is in ALARM",
            alarm.severity,
            dedup_key=key,
            alarm=alarm.name,
            text=reason,
            links={"alarm": alarm.name},
        )
        return ticket
    ticket = open_ticket_for(ctx.session, key)
    if ticket is not None:
        _note(ctx, ticket, "note", f"{alarm.name} is {state}: {reason}")
        ctx.session.flush()
    return ticket


# --- tickets of incoming alerts (ops/alerts.py authorises the sender first) ------------


def acknowledge_open(ctx: Ctx, dedup_key: str, text: str) -> Ticket | None:
    """The open ticket with this dedup key, acknowledged by the tool that raised it
    (no assignee: a tool is nobody to hand the ticket to)."""
    ticket = open_ticket_for(ctx.session, dedup_key)
    if ticket is None or ticket.state != "open":
        return ticket
    return _mark_acknowledged(ctx, ticket, assignee=None, text=text)


def resolve_open(ctx: Ctx, dedup_key: str, text: str) -> Ticket | None:
    """Resolve the open ticket with this dedup key, if there is one."""
    ticket = open_ticket_for(ctx.session, dedup_key)
    if ticket is None:
        return None
    return _mark_resolved(ctx, ticket, text)
