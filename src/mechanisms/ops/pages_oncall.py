"""On-call pages: who is on call now, a calendar of shifts per schedule (an SVG drawn
here, in the viewer's chosen time zone), schedule details with a secret calendar feed,
and pages to acknowledge. Also puts a person's open pages on the home page."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mechanisms.core import accounts, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.ops import oncall, pages_oncall_edit, paging, schedules, tickets
from mechanisms.ops.pages import render
from mechanisms.web import attention
from mechanisms.web.http import UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx, done

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)

# Colour-blind-safe (Okabe–Ito), one per person, chosen by a hash of the name so a person
# keeps their colour across schedules and page loads.
# Dark enough for white labels.
PALETTE = ("#0072b2", "#b35806", "#1b7837", "#a6427c", "#5e3c99", "#3f6e8c", "#8c510a", "#555555")
ROW_HEIGHT, LABEL_WIDTH, HEADER = 34, 150, 36
# The drawing keeps one width (so its text keeps one size); days share it.
DAYS_WIDTH = 840


def _colour(person: str) -> str:
    return PALETTE[int(hashlib.sha256(person.encode()).hexdigest(), 16) % len(PALETTE)]


def _zone(name: str | None) -> ZoneInfo:
    return inputs.checked_zone(name or "UTC")


def _start_day(value: str | None, tz: ZoneInfo, now: datetime) -> date:
    if not value:
        today = now.astimezone(tz).date()
        return today - timedelta(days=today.weekday())  # the week's Monday
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("start: a date like 2026-01-05", details={"field": "start"}) from None


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    person: str
    colour: str
    title: str


@dataclass(frozen=True)
class Row:
    schedule: str
    y: float
    bars: list[Bar]
    gaps: list[tuple[float, float]]


def calendar(
    rows: list[Any], start_day: date, days: int, tz: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """The calendar's geometry: one row per schedule, one column per local day, a bar per
    shift and a hatched band where nobody is on call. Days start at local midnight, so a
    DST day is drawn as wide as any other and its shifts keep their wall-clock places."""
    day_width = DAYS_WIDTH / days
    midnights = [
        oncall.local_to_utc(
            datetime.combine(start_day + timedelta(days=i), datetime.min.time()), tz
        )
        for i in range(days + 1)
    ]

    def x_of(instant: datetime) -> float:
        for i in range(days):
            if instant < midnights[i + 1]:
                share = (instant - midnights[i]) / (midnights[i + 1] - midnights[i])
                return LABEL_WIDTH + (i + max(share, 0.0)) * day_width
        return LABEL_WIDTH + days * day_width

    drawn: list[Row] = []
    for index, row in enumerate(rows):
        domain = schedules.model(row)
        shifts = oncall.shifts(domain, midnights[0], midnights[-1])
        bars = [
            Bar(
                x_of(s.start),
                max(x_of(s.end) - x_of(s.start), 1.0),
                s.person,
                _colour(s.person),
                f"{s.person}: {s.start.astimezone(tz):%a %d %b %H:%M} – "
                f"{s.end.astimezone(tz):%a %d %b %H:%M} ({s.source})",
            )
            for s in shifts
        ]
        gaps = [
            (x_of(g.start), x_of(g.end) - x_of(g.start))
            for g in oncall.gaps(domain, midnights[0], midnights[-1])
        ]
        drawn.append(Row(row.name, HEADER + index * ROW_HEIGHT, bars, gaps))
    day_labels = [(LABEL_WIDTH + i * day_width, start_day + timedelta(days=i)) for i in range(days)]
    now_x = x_of(now) if midnights[0] <= now < midnights[-1] else None
    return {
        "rows": drawn,
        "days": day_labels,
        "width": LABEL_WIDTH + DAYS_WIDTH,
        "height": HEADER + max(len(rows), 1) * ROW_HEIGHT + 8,
        "row_height": ROW_HEIGHT,
        "day_width": day_width,
        "label_width": LABEL_WIDTH,
        "now_x": now_x,
    }


def _zones(rows: list[Any], chosen: str) -> list[str]:
    found = {"UTC", chosen}
    for row in rows:
        domain = schedules.model(row)
        found.add(domain.time_zone)
        found.update(layer.time_zone for layer in domain.layers if layer.time_zone)
    return sorted(found)


def _open_pages(ctx: Ctx) -> list[tuple[Any, Any]]:
    return [
        (page, tickets.get(ctx, page.ticket_id))
        for page in paging.list_pages(ctx, limit=200)
        if page.state in paging.OPEN_STATES
    ]


@router.get("/ops/oncall")
def on_call_page(
    request: Request,
    ctx: PageCtx,
    tz: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=10)] = None,
    days: Annotated[int, Query(ge=1, le=14)] = 7,
    team: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    zone_name = tz or "UTC"
    zone = _zone(zone_name)
    first_day = _start_day(start, zone, ctx.now)
    rows = schedules.list_schedules(ctx, team or None)
    teams = {t.id: t for t in accounts.list_teams(ctx)}
    return render(
        request,
        "oncall_overview.html",
        tab="oncall",
        now_rows=schedules.on_call_now(ctx, team=team or None),
        teams=teams,
        cal=calendar(rows, first_day, days, zone, ctx.now),
        tz=zone_name,
        zones=_zones(rows, zone_name),
        start=first_day,
        days=days,
        team=team or "",
        prev_start=first_day - timedelta(days=days),
        next_start=first_day + timedelta(days=days),
        open_pages=_open_pages(ctx),
        my_shifts=schedules.person_shifts(
            ctx, ctx.principal.username, ctx.now, ctx.now + timedelta(days=28)
        )[:10]
        if ctx.principal.user_id is not None
        else [],
        now=ctx.now,
    )


@router.get("/ops/oncall/schedules/{name}")
def schedule_page(
    request: Request,
    name: str,
    ctx: PageCtx,
    tz: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=10)] = None,
    days: Annotated[int, Query(ge=1, le=14)] = 14,
) -> Response:
    row = schedules.get_schedule(ctx, name)
    domain = schedules.model(row)
    zone_name = tz or domain.time_zone
    zone = _zone(zone_name)
    first_day = _start_day(start, zone, ctx.now)
    upcoming = oncall.shifts(domain, ctx.now, ctx.now + timedelta(days=14))
    return render(
        request,
        "oncall_schedule.html",
        tab="oncall",
        row=row,
        schedule=domain,
        team={t.id: t for t in accounts.list_teams(ctx)}.get(row.team_id),
        who=oncall.who_is_on_call(domain, ctx.now),
        upcoming=upcoming,
        cal=calendar([row], first_day, days, zone, ctx.now),
        tz=zone_name,
        zones=_zones([row], zone_name),
        start=first_day,
        days=days,
        prev_start=first_day - timedelta(days=days),
        next_start=first_day + timedelta(days=days),
        now=ctx.now,
        can_edit=pages_oncall_edit.can_edit(ctx, row),
        people=pages_oncall_edit.people(domain),
    )


@router.post("/ops/oncall/schedules/{name}/feed")
def schedule_feed_form(request: Request, name: str, ctx: FormCtx) -> Response:
    _feed, secret = schedules.create_feed(ctx, schedule=name)
    url = str(request.url_for("calendar_feed", token=secret))
    return render(request, "oncall_feed.html", feed_url=url)


@router.post("/ops/oncall/my-feed")
def my_feed_form(request: Request, ctx: FormCtx) -> Response:
    _feed, secret = schedules.create_feed(ctx, person=ctx.principal.username)
    url = str(request.url_for("calendar_feed", token=secret))
    return render(request, "oncall_feed.html", feed_url=url)


@router.get("/ops/oncall/pages")
def pages_page(
    request: Request,
    ctx: PageCtx,
    state: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    listed = paging.list_pages(ctx, state or None, limit=200)
    rows = [(page, tickets.get(ctx, page.ticket_id)) for page in listed]
    notes = {page.id: paging.notifications(ctx, page.id) for page in listed[:50]}
    return render(
        request,
        "oncall_pages.html",
        tab="pages",
        rows=rows,
        notes=notes,
        state=state or "",
        states=paging.STATES,
        open_states=paging.OPEN_STATES,
    )


@router.post("/ops/oncall/pages/{page_id}/acknowledge")
def acknowledge_form(request: Request, page_id: int, ctx: FormCtx) -> Response:
    paging.acknowledge(ctx, page_id)
    back = request.headers.get("hx-current-url") or "/ops/oncall/pages"
    from urllib.parse import urlsplit

    parts = urlsplit(back)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return done(request, target if target.startswith("/ops/") else "/ops/oncall/pages")


@attention.provide("ops.pages")
def my_open_pages(ctx: Ctx) -> list[attention.Item]:
    if ctx.principal.user_id is None:
        return []
    return [
        attention.Item(
            title=f"You were paged: {ticket.title}",
            detail=f"SEV{ticket.severity} ticket {ticket.id}, page {page.id} is {page.state}. "
            "Acknowledge it to stop the escalation.",
            link="/ops/oncall/pages",
            urgency=1,
            mechanism="ops",
        )
        for page, ticket in paging.open_pages_for(ctx, ctx.principal.username)
    ]
