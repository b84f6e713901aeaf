"""Paging: SEV1 and SEV2 tickets page whoever is on call for the owning team, and
unacknowledged pages escalate through the team's escalation policy on time.

- A page opens when a high-severity ticket opens (the ``tickets.*`` events ops/tickets.py
  emits), so anything that cuts a ticket — an alarm, a person, an incoming alert — pages
  without calling this module. A ticket raised to SEV1/SEV2 later pages too.
- The worker asks the database which pages are due (``next_escalation_at``), claims each
  with its version, and writes one ``PageNotification`` row and one ``ops.page.notified``
  event per target due, in one transaction. A crash before the commit sends nothing; the
  row's unique key stops a second worker, or a replay, from notifying anyone twice.
  Webhooks subscribed to ``ops.page.*`` carry the notifications to chat and SMS bridges.
- Acknowledging the ticket or the page stops the escalation; resolving the ticket resolves
  the page. A page whose policy runs out unacknowledged is marked ``exhausted``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mechanisms.core import accounts, audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound, StaleState
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    organisation_of,
    require_site_role,
    require_team_role,
    require_visible_team,
    visible_teams_filter,
)
from mechanisms.core.tables import Team
from mechanisms.core.worker import Reconciler, register
from mechanisms.ops import escalation, schedules, tickets
from mechanisms.ops.tables import Page, PageNotification, Ticket

STATES = ("triggered", "acknowledged", "resolved", "exhausted", "unrouted")
# Pages someone still has to act on.
OPEN_STATES = ("triggered", "exhausted", "unrouted")


def snapshot(page: Page) -> dict[str, Any]:
    return {
        "id": page.id,
        "ticket": page.ticket_id,
        "team_id": page.team_id,
        "policy": page.policy_name,
        "state": page.state,
        "acknowledged_by": page.acknowledged_by,
        "next_escalation_at": page.next_escalation_at.isoformat()
        if page.next_escalation_at
        else None,
    }


def _team_slug(session: Session, team_id: int) -> str | None:
    team = session.get(Team, team_id)
    return team.slug if team else None


def _announce(
    ctx: Ctx, page: Page, action: str, before: dict[str, Any] | None = None, **extra: Any
) -> None:
    audit.record(
        ctx,
        action,
        "page",
        page.id,
        before=before,
        after=snapshot(page),
        org_id=organisation_of(ctx, page.team_id),
    )
    ticket = ctx.session.get(Ticket, page.ticket_id)
    events.emit(
        ctx,
        action,
        "page",
        page.id,
        {
            **snapshot(page),
            "team": _team_slug(ctx.session, page.team_id),
            "ticket_title": ticket.title if ticket else None,
            "severity": ticket.severity if ticket else None,
            **extra,
        },
    )


# --- pages open, stop and resolve with their tickets --------------------------------


def page_for_ticket(session: Session, ticket_id: int) -> Page | None:
    return session.execute(select(Page).where(Page.ticket_id == ticket_id)).scalar_one_or_none()


def open_page(ctx: Ctx, ticket: Ticket) -> Page:
    """Page the ticket's team through its escalation policy (idempotent per ticket). A team
    without a policy gets an ``unrouted`` page, so the miss is visible rather than silent."""
    existing = page_for_ticket(ctx.session, ticket.id)
    if existing is not None:
        return existing
    policy = schedules.team_policy(ctx.session, ticket.owner_team_id)
    page = Page(
        ticket_id=ticket.id,
        team_id=ticket.owner_team_id,
        policy_name=policy.name if policy else None,
        policy={"name": policy.name, **policy.definition} if policy else None,
        state="triggered" if policy else "unrouted",
        created_at=ctx.now,
        next_escalation_at=ctx.now if policy else None,
        version=0,
    )
    ctx.session.add(page)
    ctx.session.flush()
    _announce(ctx, page, "ops.page.created")
    return page


def on_ticket(ctx: Ctx, ticket_id: int) -> Page | None:
    """Bring the ticket's page in line with the ticket: open one for an open SEV1/SEV2
    ticket, stop it when the ticket is acknowledged, resolve it with the ticket."""
    ticket = ctx.session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    page = page_for_ticket(ctx.session, ticket.id)
    if ticket.state == "resolved":
        if page is not None and page.state != "resolved":
            _settle(ctx, page, "resolved")
    elif ticket.state == "acknowledged":
        if page is not None and page.state in OPEN_STATES:
            _settle(ctx, page, "acknowledged", by=ticket.assignee)
    elif ticket.severity in tickets.HIGH_SEVERITY and page is None:
        page = open_page(ctx, ticket)
    return page


def _settle(ctx: Ctx, page: Page, state: str, by: str | None = None) -> None:
    before = snapshot(page)
    values: dict[str, Any] = {
        "state": state,
        "next_escalation_at": None,
        "version": page.version + 1,
    }
    if state == "acknowledged":
        values |= {"acknowledged_at": ctx.now, "acknowledged_by": by or ctx.principal.actor}
    if state == "resolved":
        values["resolved_at"] = ctx.now
    claimed = ctx.session.execute(
        update(Page)
        .where(Page.id == page.id, Page.version == page.version)
        .values(**values)
        .returning(Page.version)
    ).scalar_one_or_none()
    if claimed is None:
        raise StaleState(f"page {page.id} changed meanwhile")
    ctx.session.refresh(page)
    _announce(ctx, page, f"ops.page.{state}", before)


@events.subscribe("ops.paging", "tickets.*")
def _follow_ticket(ctx: Ctx, message: events.EventMessage) -> None:
    ticket_id = message.payload.get("id")
    if isinstance(ticket_id, int):
        on_ticket(ctx, ticket_id)


# --- escalation -----------------------------------------------------------------------


def due_pages(session: Session, now: datetime, limit: int) -> list[int]:
    return list(
        session.execute(
            select(Page.id)
            .where(Page.state == "triggered", Page.next_escalation_at <= now)
            .order_by(Page.next_escalation_at)
            .limit(limit)
        ).scalars()
    )


def escalate(ctx: Ctx, page_id: int) -> int:
    """Notify every target due on the page since it was last handled; returns how many
    notifications went out. Raises StaleState when another worker got there first."""
    page = ctx.session.get(Page, page_id)
    if (
        page is None
        or page.state != "triggered"
        or page.next_escalation_at is None
        or page.next_escalation_at > ctx.now
    ):
        raise StaleState(f"page {page_id} is not due")
    ticket = ctx.session.get(Ticket, page.ticket_id)
    # The ticket's own event may still be on its way: its state is the truth.
    if ticket is None or ticket.state != "open":
        state = (
            "acknowledged" if ticket is not None and ticket.state == "acknowledged" else "resolved"
        )
        _settle(ctx, page, state, by=ticket.assignee if ticket else None)
        return 0
    claimed = ctx.session.execute(
        update(Page)
        .where(Page.id == page.id, Page.version == page.version, Page.state == "triggered")
        .values(version=page.version + 1)
        .returning(Page.version)
    ).scalar_one_or_none()
    if claimed is None:
        raise StaleState(f"another worker escalated page {page_id} first")
    ctx.session.refresh(page)
    policy = escalation.Policy.model_validate(page.policy)

    def on_call(schedule_name: str, at: datetime) -> str | None:
        return schedules.person_at(ctx.session, schedule_name, at)

    due = escalation.due_between(
        policy, page.created_at, None, page.notified_until, ctx.now, on_call
    )
    sent = sum(1 for note in due if _notify(ctx, page, ticket, note))
    page.notified_until = ctx.now
    following = escalation.next_escalation_at(policy, page.created_at, None, ctx.now)
    runs_out = escalation.exhausted_at(policy, page.created_at)
    if following is not None:
        page.next_escalation_at = following
    elif ctx.now < runs_out:
        page.next_escalation_at = runs_out  # come back to mark it exhausted
    else:
        before = snapshot(page)
        page.state, page.exhausted_at, page.next_escalation_at = "exhausted", runs_out, None
        ctx.session.flush()
        _announce(ctx, page, "ops.page.exhausted", before)
    ctx.session.flush()
    return sent


def _notify(ctx: Ctx, page: Page, ticket: Ticket, note: escalation.Notification) -> bool:
    key = (page.id, note.loop, note.level, note.target.kind, note.target.name)
    already = ctx.session.execute(
        select(PageNotification.id).where(
            PageNotification.page_id == key[0],
            PageNotification.loop == key[1],
            PageNotification.level == key[2],
            PageNotification.target_kind == key[3],
            PageNotification.target_name == key[4],
        )
    ).first()
    if already is not None:
        return False
    row = PageNotification(
        page_id=page.id,
        loop=note.loop,
        level=note.level,
        target_kind=note.target.kind,
        target_name=note.target.name,
        person=note.person,
        due_at=note.due_at,
        notified_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    payload = {
        "page": page.id,
        "ticket": ticket.id,
        "ticket_title": ticket.title,
        "severity": ticket.severity,
        "team": _team_slug(ctx.session, page.team_id),
        "policy": page.policy_name,
        "loop": note.loop,
        "level": note.level,
        "target": {"kind": note.target.kind, "name": note.target.name},
        "person": note.person,
        # Nobody was on call on the target schedule: a coverage gap, not a person paged.
        "gap": note.person is None,
        "due_at": note.due_at.isoformat(),
    }
    audit.record(
        ctx,
        "ops.page.notified",
        "page",
        page.id,
        after=payload,
        org_id=organisation_of(ctx, page.team_id),
    )
    events.emit(ctx, "ops.page.notified", "page", page.id, payload)
    return True


register(Reconciler("ops.pages.escalate", due_pages, escalate))
register(Reconciler("ops.oncall.handoffs", schedules.due_handoff_checks, schedules.check_handoff))


# --- people act on pages --------------------------------------------------------------


def get_page(ctx: Ctx, page_id: int) -> Page:
    require_site_role(ctx, Role.VIEWER)
    page = ctx.session.get(Page, page_id)
    if page is None:
        raise NotFound(f"page {page_id} not found")
    require_visible_team(ctx, page.team_id, f"page {page_id}")
    return page


def list_pages(
    ctx: Ctx, state: str | None = None, team: str | None = None, limit: int = 100
) -> list[Page]:
    require_site_role(ctx, Role.VIEWER)
    if state is not None and state not in STATES:
        raise InvalidInput(f"state: one of {', '.join(STATES)}", details={"field": "state"})
    query = (
        select(Page)
        .where(visible_teams_filter(ctx, Page.team_id))
        .order_by(Page.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    if state:
        query = query.where(Page.state == state)
    if team:
        query = query.where(Page.team_id == accounts.get_team(ctx, team).id)
    return list(ctx.session.execute(query).scalars())


def notifications(ctx: Ctx, page_id: int) -> list[PageNotification]:
    get_page(ctx, page_id)
    return list(
        ctx.session.execute(
            select(PageNotification)
            .where(PageNotification.page_id == page_id)
            .order_by(PageNotification.id)
        ).scalars()
    )


def acknowledge(ctx: Ctx, page_id: int) -> Page:
    """Stop the escalation; the ticket is acknowledged too if it is still open."""
    require_site_role(ctx, Role.ENGINEER)
    page = get_page(ctx, page_id)
    require_team_role(ctx, page.team_id, Role.ENGINEER)
    if page.state not in OPEN_STATES:
        raise Conflict(f"page {page_id} is {page.state}; only an open page is acknowledged")
    _settle(ctx, page, "acknowledged")
    ticket = ctx.session.get(Ticket, page.ticket_id)
    if ticket is not None and ticket.state == "open":
        tickets.acknowledge(ctx, ticket.id)
    return page


def open_pages_for(ctx: Ctx, username: str) -> list[tuple[Page, Ticket]]:
    """Open pages that notified ``username``: what they should acknowledge."""
    rows = ctx.session.execute(
        select(Page, Ticket)
        .join(Ticket, Ticket.id == Page.ticket_id)
        .where(
            Page.state.in_(("triggered", "exhausted")),
            Page.id.in_(
                select(PageNotification.page_id).where(PageNotification.person == username)
            ),
        )
        .order_by(Page.id.desc())
        .limit(50)
    ).all()
    return [(page, ticket) for page, ticket in rows]
