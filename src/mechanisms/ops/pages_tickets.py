"""Ops pages for tickets: the list (by state and severity) and a ticket's page with its
timeline, its links (alarm, rollout, deploy) and the forms to comment, acknowledge and
resolve. The forms show only to those who may act; the tickets service refuses the rest.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.core.identity import Role
from mechanisms.core.permissions import team_role
from mechanisms.ops import alarms, tickets
from mechanisms.ops.pages import render
from mechanisms.web.http import RowId, Text, UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx, done

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
SEVERITY_CHOICES = ("1", "2", "3", "4", "5")


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def can_act(ctx: Ctx, owner_team_id: int) -> bool:
    """Only decides which forms to show; the tickets service decides what is allowed."""
    role = team_role(ctx, owner_team_id)
    return role is not None and role >= Role.ENGINEER


def link_views(links: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(what, text, href) for each of a ticket's links; the href only where this site has
    a page for it."""
    return [(kind, _link_text(value), _href(kind, value)) for kind, value in sorted(links.items())]


def _link_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if k != "url")
    return str(value)


def _href(kind: str, value: Any) -> str | None:
    if kind == "alarm" and isinstance(value, str):
        return f"/ops/alarms/{quote(value)}"
    if isinstance(value, dict):
        app, flag, deployment = value.get("app"), value.get("flag"), value.get("deployment")
        if kind == "rollout" and app and flag and deployment:
            return (
                f"/flags/{quote(str(app))}/{quote(str(flag))}/deployments/{quote(str(deployment))}"
            )
        url = value.get("url")
        if isinstance(url, str) and url.startswith("/") and not url.startswith("//"):
            return url
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value
    return None


@router.get("/ops/tickets")
def tickets_page(
    request: Request,
    ctx: PageCtx,
    state: Annotated[str | None, Query(max_length=16)] = None,
    severity: Annotated[str | None, Query(max_length=4)] = None,
) -> Response:
    if state and state not in tickets.STATES:
        raise _invalid("state", f"{state!r} is not one of {', '.join(tickets.STATES)}")
    if severity and severity not in SEVERITY_CHOICES:
        raise _invalid("severity", f"{severity!r} is not 1 (SEV1) to 5")
    rows = tickets.list_tickets(ctx, state or None, int(severity) if severity else None, 500)
    services = {s.id: s for s in alarms.list_services(ctx)}
    return render(
        request,
        "tickets_list.html",
        tab="tickets",
        rows=rows,
        services=services,
        state=state or "",
        severity=severity or "",
        states=tickets.STATES,
    )


def _ticket_page(request: Request, ctx: Ctx, ticket_id: int) -> Response:
    ticket = tickets.get(ctx, ticket_id)
    service = next((s for s in alarms.list_services(ctx) if s.id == ticket.service_id), None)
    return render(
        request,
        "tickets_ticket.html",
        tab="tickets",
        ticket=ticket,
        service=service,
        timeline=tickets.timeline(ctx, ticket_id),
        links=link_views(ticket.links or {}),
        can_act=can_act(ctx, ticket.owner_team_id),
    )


@router.get("/ops/tickets/{ticket_id}")
def ticket_page(request: Request, ticket_id: RowId, ctx: PageCtx) -> Response:
    return _ticket_page(request, ctx, ticket_id)


@router.post("/ops/tickets/{ticket_id}/comment")
def comment_form(
    request: Request,
    ticket_id: RowId,
    ctx: FormCtx,
    text: Annotated[Text, Form(max_length=5000)] = "",
) -> Response:
    tickets.comment(ctx, ticket_id, text)
    return done(request, f"/ops/tickets/{ticket_id}")


@router.post("/ops/tickets/{ticket_id}/acknowledge")
def acknowledge_form(request: Request, ticket_id: RowId, ctx: FormCtx) -> Response:
    tickets.acknowledge(ctx, ticket_id)
    return done(request, f"/ops/tickets/{ticket_id}")


@router.post("/ops/tickets/{ticket_id}/resolve")
def resolve_form(
    request: Request,
    ticket_id: RowId,
    ctx: FormCtx,
    text: Annotated[Text, Form(max_length=5000)] = "",
) -> Response:
    tickets.resolve(ctx, ticket_id, text)
    return done(request, f"/ops/tickets/{ticket_id}")


@router.post("/ops/tickets/{ticket_id}/promote")
def promote_form(
    request: Request,
    ticket_id: RowId,
    ctx: FormCtx,
    summary: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    tickets.promote(ctx, ticket_id, summary)
    return done(request, f"/ops/tickets/{ticket_id}")
