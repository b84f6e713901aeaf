"""HTTP API of on-call (`/api/v1/ops/oncall/…`): schedules, overrides, swaps, roster
changes, who is on call, coverage and fairness reports, iCalendar feeds, escalation
policies and pages."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mechanisms.core.context import Ctx
from mechanisms.ops import oncall, paging, schedules
from mechanisms.web.http import Input, Instant, RowId, Text, UnitOfWorkRoute, request_ctx

# Included by ops/api.py under its /api/v1/ops prefix.
router = APIRouter(prefix="/oncall", route_class=UnitOfWorkRoute, tags=["ops on-call"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
Name = Annotated[str, Path(min_length=1, max_length=200)]
Version = Annotated[
    int | None,
    Field(ge=1, le=2**31 - 1, description="the version you edit; refused if it moved on"),
]


# --- schedules ----------------------------------------------------------------------


class ScheduleIn(Input):
    name: Text = Field(min_length=1, max_length=200)
    team: Text = Field(min_length=1, max_length=64)
    time_zone: Text = Field(min_length=1, max_length=64)
    layers: list[dict[str, Any]] = Field(min_length=1, max_length=20)
    overrides: list[dict[str, Any]] = Field(default_factory=list, max_length=500)


class ScheduleUpdate(Input):
    time_zone: Text | None = Field(default=None, min_length=1, max_length=64)
    layers: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=20)
    overrides: list[dict[str, Any]] | None = Field(default=None, max_length=500)
    version: Version = None


class ScheduleOut(BaseModel):
    name: str
    team_id: int
    version: int
    time_zone: str
    layers: list[dict[str, Any]]
    overrides: list[dict[str, Any]]
    on_call_now: str | None


def _schedule_out(row: Any, now: datetime) -> ScheduleOut:
    domain = schedules.model(row)
    return ScheduleOut(
        name=row.name,
        team_id=row.team_id,
        version=row.version,
        time_zone=row.definition["time_zone"],
        layers=row.definition["layers"],
        overrides=row.definition.get("overrides", []),
        on_call_now=oncall.who_is_on_call(domain, now).person,
    )


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(
    ctx: CtxDep, team: Annotated[str | None, Query(max_length=64)] = None
) -> list[ScheduleOut]:
    return [_schedule_out(r, ctx.now) for r in schedules.list_schedules(ctx, team)]


@router.post("/schedules", response_model=ScheduleOut, status_code=201)
def create_schedule(body: ScheduleIn, ctx: CtxDep) -> ScheduleOut:
    row = schedules.create_schedule(
        ctx, body.team, body.name, body.time_zone, body.layers, body.overrides
    )
    return _schedule_out(row, ctx.now)


@router.get("/schedules/{name}", response_model=ScheduleOut)
def get_schedule(name: Name, ctx: CtxDep) -> ScheduleOut:
    return _schedule_out(schedules.get_schedule(ctx, name), ctx.now)


@router.patch("/schedules/{name}", response_model=ScheduleOut)
def update_schedule(name: Name, body: ScheduleUpdate, ctx: CtxDep) -> ScheduleOut:
    """Replace the zone, layers or overrides given; ``version`` refuses a lost update."""
    row = schedules.update_schedule(
        ctx,
        name,
        time_zone=body.time_zone,
        layers=body.layers,
        overrides=body.overrides,
        version=body.version,
    )
    return _schedule_out(row, ctx.now)


@router.delete("/schedules/{name}", status_code=204)
def delete_schedule(name: Name, ctx: CtxDep) -> Response:
    schedules.delete_schedule(ctx, name)
    return Response(status_code=204)


class OverrideIn(Input):
    start: Instant
    end: Instant
    user: Text = Field(min_length=1, max_length=64)
    replaces: Text | None = Field(default=None, min_length=1, max_length=64)
    version: Version = None


class SwapIn(Input):
    first_at: Instant = Field(description="an instant inside the first shift")
    second_at: Instant = Field(description="an instant inside the second shift")
    version: Version = None


class RosterChangeIn(Input):
    layer: int = Field(ge=0, le=19)
    effective_at: Instant
    participants: list[Annotated[Text, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=100
    )
    version: Version = None


class ChangedOut(BaseModel):
    schedule: ScheduleOut
    override_ids: list[str] = []


@router.post("/schedules/{name}/overrides", response_model=ChangedOut, status_code=201)
def add_override(name: Name, body: OverrideIn, ctx: CtxDep) -> ChangedOut:
    row, override_id = schedules.add_override(
        ctx, name, body.start, body.end, body.user, body.replaces, body.version
    )
    return ChangedOut(schedule=_schedule_out(row, ctx.now), override_ids=[override_id])


@router.delete("/schedules/{name}/overrides/{override_id}", response_model=ScheduleOut)
def remove_override(
    name: Name, override_id: Annotated[str, Path(max_length=200)], ctx: CtxDep
) -> ScheduleOut:
    return _schedule_out(schedules.remove_override(ctx, name, override_id), ctx.now)


@router.post("/schedules/{name}/swaps", response_model=ChangedOut, status_code=201)
def swap_shifts(name: Name, body: SwapIn, ctx: CtxDep) -> ChangedOut:
    """The people on call at ``first_at`` and ``second_at`` exchange those whole shifts."""
    row, ids = schedules.swap_shifts(ctx, name, body.first_at, body.second_at, body.version)
    return ChangedOut(schedule=_schedule_out(row, ctx.now), override_ids=ids)


@router.post("/schedules/{name}/roster-changes", response_model=ScheduleOut, status_code=201)
def add_roster_change(name: Name, body: RosterChangeIn, ctx: CtxDep) -> ScheduleOut:
    row = schedules.add_roster_change(
        ctx, name, body.layer, body.effective_at, list(body.participants), body.version
    )
    return _schedule_out(row, ctx.now)


# --- who is on call, shifts, reports --------------------------------------------------


class OnCallOut(BaseModel):
    schedule: str
    team_id: int
    person: str | None
    source: str | None
    until: datetime | None


class ShiftOut(BaseModel):
    schedule: str
    person: str
    start: datetime
    end: datetime
    source: str


@router.get("/now", response_model=list[OnCallOut])
def on_call_now(
    ctx: CtxDep,
    team: Annotated[str | None, Query(max_length=64)] = None,
    schedule: Annotated[str | None, Query(max_length=200)] = None,
) -> list[OnCallOut]:
    """Who is on call now, per schedule (of one team, or one schedule)."""
    return [
        OnCallOut(
            schedule=n.schedule, team_id=n.team_id, person=n.person, source=n.source, until=n.until
        )
        for n in schedules.on_call_now(ctx, team=team, schedule=schedule)
    ]


def _window(
    ctx: Ctx, start: datetime | None, end: datetime | None, days: int
) -> tuple[datetime, datetime]:
    start = start or ctx.now
    return start, end or start + timedelta(days=days)


@router.get("/schedules/{name}/shifts", response_model=list[ShiftOut])
def schedule_shifts(
    name: Name,
    ctx: CtxDep,
    start: Instant | None = None,
    end: Instant | None = None,
) -> list[ShiftOut]:
    """The final schedule over [start, end) (default: the next 14 days)."""
    start, end = _window(ctx, start, end, 14)
    return [
        ShiftOut(schedule=name, person=s.person, start=s.start, end=s.end, source=str(s.source))
        for s in schedules.shifts_of(ctx, name, start, end)
    ]


@router.get("/people/{username}/shifts", response_model=list[ShiftOut])
def person_shifts(
    username: Annotated[str, Path(min_length=1, max_length=64)],
    ctx: CtxDep,
    start: Instant | None = None,
    end: Instant | None = None,
) -> list[ShiftOut]:
    """The person's upcoming shifts on every schedule (default: the next 28 days)."""
    start, end = _window(ctx, start, end, 28)
    return [
        ShiftOut(
            schedule=p.schedule,
            person=p.shift.person,
            start=p.shift.start,
            end=p.shift.end,
            source=str(p.shift.source),
        )
        for p in schedules.person_shifts(ctx, username, start, end)
    ]


class GapOut(BaseModel):
    start: datetime
    end: datetime
    hours: float


class CoverageOut(BaseModel):
    schedules: list[str]
    start: datetime
    end: datetime
    covered: bool
    gaps: list[GapOut]


@router.get("/coverage", response_model=CoverageOut)
def coverage(
    ctx: CtxDep,
    schedule: Annotated[list[str], Query(min_length=1, max_length=20)],
    start: Instant | None = None,
    end: Instant | None = None,
) -> CoverageOut:
    """Gaps (in UTC) that none of the schedules covers; default window: the next 28 days."""
    start, end = _window(ctx, start, end, 28)
    gaps = schedules.coverage(ctx, schedule, start, end)
    return CoverageOut(
        schedules=schedule,
        start=start,
        end=end,
        covered=not gaps,
        gaps=[
            GapOut(start=g.start, end=g.end, hours=round(g.duration / timedelta(hours=1), 3))
            for g in gaps
        ],
    )


class LoadOut(BaseModel):
    person: str
    hours: float
    night_hours: float
    weekend_hours: float
    shifts: int


@router.get("/schedules/{name}/fairness", response_model=list[LoadOut])
def fairness(
    name: Name,
    ctx: CtxDep,
    start: Instant | None = None,
    end: Instant | None = None,
) -> list[LoadOut]:
    """Hours, night hours (22:00–06:00) and weekend hours per person (default: the last 28
    days)."""
    end = end or ctx.now
    start = start or end - timedelta(days=28)
    return [
        LoadOut(
            person=load.person,
            hours=round(load.hours, 3),
            night_hours=round(load.night_hours, 3),
            weekend_hours=round(load.weekend_hours, 3),
            shifts=load.shifts,
        )
        for load in schedules.fairness(ctx, name, start, end)
    ]


# --- calendar feeds -----------------------------------------------------------------


class FeedOut(BaseModel):
    url: str = Field(description="the secret feed URL, shown this once")
    prefix: str


def _feed_out(request: Request, secret: str, prefix: str) -> FeedOut:
    return FeedOut(url=str(request.url_for("calendar_feed", token=secret)), prefix=prefix)


@router.post("/schedules/{name}/feed", response_model=FeedOut, status_code=201)
def schedule_feed(name: Name, request: Request, ctx: CtxDep) -> FeedOut:
    """A secret iCalendar URL for the schedule; asking again rotates it."""
    feed, secret = schedules.create_feed(ctx, schedule=name)
    return _feed_out(request, secret, feed.prefix)


@router.post("/people/{username}/feed", response_model=FeedOut, status_code=201)
def person_feed(
    username: Annotated[str, Path(min_length=1, max_length=64)], request: Request, ctx: CtxDep
) -> FeedOut:
    """A secret iCalendar URL of the person's shifts on every schedule; asking again
    rotates it."""
    feed, secret = schedules.create_feed(ctx, person=username)
    return _feed_out(request, secret, feed.prefix)


@router.get(
    "/feeds/{token}.ics",
    name="calendar_feed",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
)
def calendar_feed(
    token: Annotated[str, Path(min_length=1, max_length=100)], ctx: CtxDep
) -> Response:
    """The iCalendar feed; the secret token in the URL is the credential (calendar apps
    send no headers)."""
    body = schedules.feed_calendar(ctx, token)
    return Response(body, media_type="text/calendar; charset=utf-8")


# --- escalation policies ------------------------------------------------------------


class PolicyIn(Input):
    name: Text = Field(min_length=1, max_length=200)
    team: Text = Field(min_length=1, max_length=64)
    levels: list[dict[str, Any]] = Field(min_length=1, max_length=20)
    repeat: int = Field(default=0, ge=0, le=9)
    default: bool = Field(default=False, description="page for the team's SEV1/SEV2 tickets")


class PolicyUpdate(Input):
    levels: list[dict[str, Any]] = Field(min_length=1, max_length=20)
    repeat: int = Field(default=0, ge=0, le=9)
    version: Version = None


class PolicyOut(BaseModel):
    name: str
    team_id: int
    version: int
    levels: list[dict[str, Any]]
    repeat: int


def _policy_out(row: Any) -> PolicyOut:
    return PolicyOut(
        name=row.name,
        team_id=row.team_id,
        version=row.version,
        levels=row.definition["levels"],
        repeat=row.definition["repeat"],
    )


class TeamPolicyIn(Input):
    policy: Text = Field(min_length=1, max_length=200)


@router.get("/policies", response_model=list[PolicyOut])
def list_policies(
    ctx: CtxDep, team: Annotated[str | None, Query(max_length=64)] = None
) -> list[PolicyOut]:
    return [_policy_out(p) for p in schedules.list_policies(ctx, team)]


@router.post("/policies", response_model=PolicyOut, status_code=201)
def create_policy(body: PolicyIn, ctx: CtxDep) -> PolicyOut:
    return _policy_out(
        schedules.create_policy(
            ctx, body.team, body.name, body.levels, body.repeat, default=body.default
        )
    )


@router.get("/policies/{name}", response_model=PolicyOut)
def get_policy(name: Name, ctx: CtxDep) -> PolicyOut:
    return _policy_out(schedules.get_policy(ctx, name))


@router.put("/policies/{name}", response_model=PolicyOut)
def update_policy(name: Name, body: PolicyUpdate, ctx: CtxDep) -> PolicyOut:
    return _policy_out(schedules.update_policy(ctx, name, body.levels, body.repeat, body.version))


@router.put("/teams/{slug}/policy", response_model=PolicyOut)
def set_team_policy(
    slug: Annotated[str, Path(min_length=1, max_length=64)], body: TeamPolicyIn, ctx: CtxDep
) -> PolicyOut:
    """The escalation policy that pages for the team's SEV1 and SEV2 tickets."""
    return _policy_out(schedules.set_team_policy(ctx, slug, body.policy))


# --- pages --------------------------------------------------------------------------


class NotificationOut(BaseModel):
    loop: int
    level: int
    target_kind: str
    target_name: str
    person: str | None
    due_at: datetime
    notified_at: datetime


class PageOut(BaseModel):
    id: int
    ticket_id: int
    team_id: int
    policy: str | None
    state: str
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    exhausted_at: datetime | None
    next_escalation_at: datetime | None
    notifications: list[NotificationOut] = []


def _page_out(ctx: Ctx, page: Any, with_notifications: bool = False) -> PageOut:
    notes = paging.notifications(ctx, page.id) if with_notifications else []
    return PageOut(
        id=page.id,
        ticket_id=page.ticket_id,
        team_id=page.team_id,
        policy=page.policy_name,
        state=page.state,
        created_at=page.created_at,
        acknowledged_at=page.acknowledged_at,
        acknowledged_by=page.acknowledged_by,
        resolved_at=page.resolved_at,
        exhausted_at=page.exhausted_at,
        next_escalation_at=page.next_escalation_at,
        notifications=[
            NotificationOut(
                loop=n.loop,
                level=n.level,
                target_kind=n.target_kind,
                target_name=n.target_name,
                person=n.person,
                due_at=n.due_at,
                notified_at=n.notified_at,
            )
            for n in notes
        ],
    )


@router.get("/pages", response_model=list[PageOut])
def list_pages(
    ctx: CtxDep,
    state: Literal["triggered", "acknowledged", "resolved", "exhausted", "unrouted"] | None = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PageOut]:
    return [_page_out(ctx, p) for p in paging.list_pages(ctx, state, team, limit)]


@router.get("/pages/{page_id}", response_model=PageOut)
def get_page(page_id: RowId, ctx: CtxDep) -> PageOut:
    return _page_out(ctx, paging.get_page(ctx, page_id), with_notifications=True)


@router.post("/pages/{page_id}/acknowledge", response_model=PageOut)
def acknowledge_page(page_id: RowId, ctx: CtxDep) -> PageOut:
    """Stop the escalation (and acknowledge the ticket if it is still open)."""
    return _page_out(ctx, paging.acknowledge(ctx, page_id), with_notifications=True)
