"""The deploys web UI: pipelines, one service's pipeline with every gate's state and its
timeline, the block calendar month by month, and the break-glass request, approval and
review pages.

Pages call the deploys service modules only, so authorisation stays there: a form shows
to whoever might act, and the service refuses the rest (the refusal shows in the page).
"""

from __future__ import annotations

import calendar as month_grid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from mechanisms.core import inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import site_role
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.deploys import calendar as block_calendar
from mechanisms.ops import tickets as ops_tickets
from mechanisms.web import pages as web
from mechanisms.web.http import RowId, Text, UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx, done

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
web.register_templates("deploys", TEMPLATES_DIR)

# Which gate a blocker belongs to, as the pipeline view groups them.
GATES = {
    "tests_missing": "tests",
    "tests_empty": "tests",
    "tests_failed": "tests",
    "block_window": "windows",
    "baking": "bake",
    "bake_alarm": "bake",
    "stage_alarm": "bake",
    "previous_stage_missing": "bake",
    "approval_required": "approval",
}
GATE_NAMES = ("tests", "windows", "bake", "approval")
Name = Annotated[str, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w.\-]*$")]


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M")


def service_url(service: str) -> str:
    """A service's pages live under /deploys/services/, so that no service name can take
    the place of another deploys page (a service called "reviews", say)."""
    return f"/deploys/services/{quote(service, safe='')}"


H = SimpleNamespace(
    when=_when,
    short=lambda digest: (digest or "—").split(":")[-1][:12],
    service_url=service_url,
)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    return web.render(
        request, f"deploys/{template}", status_code=status_code, section="deploys", h=H, **values
    )


# --- pipelines ----------------------------------------------------------------------


def _versions_by_digest(ctx: Ctx, service: str) -> dict[str, Any]:
    return {v.digest: v for v in pipelines.list_versions(ctx, service)}


@router.get("/deploys")
def pipelines_page(request: Request, ctx: PageCtx) -> Response:
    rows = []
    for pipeline in pipelines.list_pipelines(ctx):
        versions = _versions_by_digest(ctx, pipeline.service_key)
        stages = pipelines.stage_states(ctx, pipeline.service_key)
        for stage in stages:
            running = stage["deployment"]
            stage["version"] = versions.get(running["digest"]) if running else None
        rows.append({"service": pipeline.service_key, "stages": stages})
    return render(
        request,
        "pipelines.html",
        tab="pipelines",
        rows=rows,
        open_requests=breakglass.list_requests(ctx, open_only=True),
        reviews=breakglass.list_reviews(ctx),
    )


@router.get("/deploys/reviews")
def reviews_page(request: Request, ctx: PageCtx) -> Response:
    return render(
        request,
        "reviews.html",
        tab="reviews",
        reviews=breakglass.list_reviews(ctx, open_only=False),
    )


@router.post("/deploys/reviews/{review_id}")
def review_form(
    request: Request,
    review_id: RowId,
    ctx: FormCtx,
    what_happened: Annotated[Text, Form(max_length=2000)] = "",
    why: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    breakglass.close_review(ctx, review_id, what_happened, why)
    return done(request, "/deploys/reviews")


def _candidate(stages: list[dict[str, Any]], i: int, newest: str | None) -> str | None:
    """The version that would go into stage ``i`` next: what runs in the stage before it,
    or the newest build for the first stage."""
    if i == 0:
        return newest
    before = stages[i - 1]["deployment"]
    return before["digest"] if before else None


def _gates(ctx: Ctx, service: str, stage: str, digest: str) -> dict[str, Any]:
    decision = pipelines.gate(ctx, service, stage, digest)
    by_gate: dict[str, list[Any]] = {name: [] for name in GATE_NAMES}
    for blocker in decision.blockers:
        by_gate[GATES.get(blocker.code, "bake")].append(blocker)
    open_requests = [
        r
        for r in breakglass.list_requests(ctx, service, open_only=True)
        if r.stage == stage and r.digest == decision.target.digest
    ]
    only_windows = bool(by_gate["windows"]) and not any(
        by_gate[g] for g in GATE_NAMES if g != "windows"
    )
    return {
        "digest": decision.target.digest,
        "allowed": decision.allowed,
        "by_gate": by_gate,
        "window": decision.window,
        "break_glass": decision.break_glass,
        "requests": open_requests,
        "may_request": only_windows and not open_requests,
    }


@router.get("/deploys/services/{service}")
def pipeline_page(request: Request, service: str, ctx: PageCtx) -> Response:
    if len(service) > 100:
        raise _invalid("service", "at most 100 characters")
    stages = pipelines.stage_states(ctx, service)
    versions = _versions_by_digest(ctx, service)
    newest = next(iter(versions), None)
    for i, stage in enumerate(stages):
        running = stage["deployment"]
        stage["version"] = versions.get(running["digest"]) if running else None
        candidate = _candidate(stages, i, newest)
        if candidate and (not running or running["digest"] != candidate):
            stage["next"] = versions.get(candidate)
            stage["gate"] = _gates(ctx, service, stage["name"], candidate)
        else:
            stage["next"], stage["gate"] = None, None
    return render(
        request,
        "pipeline.html",
        tab="pipelines",
        service=service,
        stages=stages,
        versions=list(versions.values())[:20],
        timeline=pipelines.timeline(ctx, service, 100),
        requests=breakglass.list_requests(ctx, service),
        # Which forms to show only; the pipelines service decides who may promote.
        may_promote=(site_role(ctx) or Role.VIEWER) >= Role.ENGINEER,
    )


@router.post("/deploys/services/{service}/promote")
def promote_form(
    request: Request,
    service: str,
    ctx: FormCtx,
    stage: Annotated[Text, Form(max_length=100)] = "",
    version: Annotated[Text, Form(max_length=200)] = "",
) -> Response:
    """Promote the version shown into the stage. The gate is asked again now: a grant for
    exactly this promotion is spent by it, and a promotion blocked since the page was drawn
    is recorded as blocked and refused with the blockers."""
    pipelines.promote_or_refuse(ctx, service, stage, version)
    return done(request, service_url(service))


# --- the block calendar -------------------------------------------------------------


# Every month the calendar model evaluates: its instants run from EARLIEST up to LATEST
# (exclusive), and a month view ends at the next month's first midnight, which must be
# inside that range in any zone.
FIRST_MONTH = date(block_calendar.EARLIEST.year, 1, 1)
LAST_MONTH = date(block_calendar.LATEST.year - 1, 11, 1)


def _month(value: str | None, today: date) -> date:
    if not value:
        return today.replace(day=1)
    try:
        found = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise _invalid("month", "a month as YYYY-MM") from None
    if not FIRST_MONTH <= found <= LAST_MONTH:
        raise _invalid(
            "month",
            f"a month from {FIRST_MONTH:%Y-%m} to {LAST_MONTH:%Y-%m} (the calendar's range)",
        )
    return found


def _shift(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _weeks(
    first: date, zone: ZoneInfo, blocks: list[Any], today: date
) -> list[list[dict[str, Any] | None]]:
    """The month as weeks of days, each day with the occurrences that touch it locally."""
    weeks = []
    for week in month_grid.Calendar().monthdayscalendar(first.year, first.month):
        row: list[dict[str, Any] | None] = []
        for day in week:
            if not day:
                row.append(None)
                continue
            local = date(first.year, first.month, day)
            start = datetime.combine(local, datetime.min.time(), zone)
            end = start + timedelta(days=1)
            touching = [b for b in blocks if b.starts_at < end and b.ends_at > start]
            row.append({"day": day, "date": local, "today": local == today, "blocks": touching})
        weeks.append(row)
    return weeks


@router.get("/deploys/services/{service}/calendar")
def calendar_page(
    request: Request,
    service: str,
    ctx: PageCtx,
    month: Annotated[str | None, Query(max_length=7)] = None,
    tz: Annotated[str, Query(min_length=1, max_length=64)] = "UTC",
    stage: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    zone = inputs.checked_zone(tz)
    today = ctx.now.astimezone(zone).date()
    first = _month(month, today)
    following = _shift(first, 1)
    start = datetime.combine(first, datetime.min.time(), zone)
    end = datetime.combine(following, datetime.min.time(), zone)
    stages = [s["name"] for s in pipelines.stage_states(ctx, service)]
    if stage and stage not in stages:
        raise _invalid("stage", f"{stage!r} is not a stage of {service}")
    blocks = windows.occurrences(ctx, service, stage or None, start, end)
    return render(
        request,
        "calendar.html",
        tab="calendar",
        service=service,
        stage=stage or "",
        stages=stages,
        tz=tz,
        zone=zone,
        first=first,
        previous=_shift(first, -1).strftime("%Y-%m") if first > FIRST_MONTH else None,
        next=following.strftime("%Y-%m") if following <= LAST_MONTH else None,
        weeks=_weeks(first, zone, blocks, today),
        blocks=sorted(blocks, key=lambda b: b.starts_at),
        windows=windows.list_windows(ctx, service, stage or None),
        day_names=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    )


@router.post("/deploys/services/{service}/freeze")
def freeze_form(
    request: Request,
    service: str,
    ctx: FormCtx,
    until: Annotated[Text, Form(max_length=40)] = "",
    tz: Annotated[Text, Form(max_length=64)] = "UTC",
    stage: Annotated[Text, Form(max_length=100)] = "",
    reason: Annotated[Text, Form(max_length=500)] = "",
) -> Response:
    zone = inputs.checked_zone(tz)
    try:
        local = datetime.fromisoformat(until)
    except ValueError:
        raise _invalid("until", "a date and time such as 2026-12-03T18:00") from None
    ends = local.replace(tzinfo=zone) if local.tzinfo is None else local
    if stage:
        windows.freeze(ctx, "stage", f"{service}/{stage}", ends.astimezone(UTC), reason)
    else:
        windows.freeze(ctx, "service", service, ends.astimezone(UTC), reason)
    return done(request, f"{service_url(service)}/calendar?tz={quote(tz)}")


# --- break-glass ---------------------------------------------------------------------


@router.get("/deploys/services/{service}/breakglass/new")
def request_page(
    request: Request,
    service: str,
    ctx: PageCtx,
    stage: Annotated[str, Query(min_length=1, max_length=100)],
    version: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    decision = pipelines.gate(ctx, service, stage, version)
    found = pipelines.get_version(ctx, service, version)
    return render(
        request,
        "breakglass_new.html",
        tab="pipelines",
        service=service,
        stage=stage,
        version=found,
        decision=decision,
    )


@router.post("/deploys/services/{service}/versions/author")
def name_author_form(
    request: Request,
    service: str,
    ctx: FormCtx,
    version: Annotated[Text, Form(max_length=200)] = "",
    stage: Annotated[Text, Form(max_length=100)] = "",
    author: Annotated[Text, Form(max_length=200)] = "",
) -> Response:
    found = pipelines.name_author(ctx, service, version, author)
    query = urlencode({"stage": stage, "version": found.digest})
    return done(request, f"{service_url(service)}/breakglass/new?{query}")


@router.post("/deploys/services/{service}/breakglass")
def request_form(
    request: Request,
    service: str,
    ctx: FormCtx,
    stage: Annotated[Text, Form(max_length=100)] = "",
    version: Annotated[Text, Form(max_length=200)] = "",
    reason: Annotated[Text, Form(max_length=2000)] = "",
    ticket: Annotated[Text, Form(max_length=20)] = "",
    drill: Annotated[bool, Form()] = False,
) -> Response:
    row = breakglass.request(ctx, service, stage, version, reason, ticket, drill=drill)
    return done(request, f"/deploys/breakglass/{row.id}")


def _ticket_of(ctx: Ctx, reference: str) -> Any:
    try:
        return ops_tickets.get(ctx, int(reference.lstrip("#")))
    except (NotFound, ValueError):
        return None


@router.get("/deploys/breakglass/{request_id}")
def approval_page(request: Request, request_id: RowId, ctx: PageCtx) -> Response:
    row = breakglass.get(ctx, request_id)
    described = breakglass.describe(ctx, row)
    versions = _versions_by_digest(ctx, row.service_key)
    running = next(
        (
            s["deployment"]
            for s in pipelines.stage_states(ctx, row.service_key)
            if s["name"] == row.stage
        ),
        None,
    )
    principal = ctx.principal
    return render(
        request,
        "breakglass.html",
        tab="pipelines",
        row=row,
        d=described,
        requested=versions.get(row.digest),
        current=versions.get(running["digest"]) if running else None,
        current_digest=running["digest"] if running else None,
        ticket=_ticket_of(ctx, row.ticket_ref),
        decisions=breakglass.decisions(ctx, row.id),
        # Which forms to show only; the break-glass service decides who counts.
        may_act=principal.is_human and (site_role(ctx) or Role.VIEWER) >= Role.ENGINEER,
        is_open=described["status"] in ("pending", "granted"),
    )


def _decided(request: Request, request_id: int) -> Response:
    return done(request, f"/deploys/breakglass/{request_id}")


@router.post("/deploys/breakglass/{request_id}/approve")
def approve_form(
    request: Request,
    request_id: RowId,
    ctx: FormCtx,
    digest: Annotated[Text, Form(max_length=200)] = "",
    comment: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    row = breakglass.get(ctx, request_id)
    # The approver confirms the digest they saw: a version changed under the page is refused.
    breakglass.approve(
        ctx, request_id, service=row.service_key, stage=row.stage, digest=digest, comment=comment
    )
    return _decided(request, request_id)


@router.post("/deploys/breakglass/{request_id}/deny")
def deny_form(
    request: Request,
    request_id: RowId,
    ctx: FormCtx,
    reason: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    breakglass.deny(ctx, request_id, reason)
    return _decided(request, request_id)


@router.post("/deploys/breakglass/{request_id}/lift-denial")
def lift_denial_form(
    request: Request,
    request_id: RowId,
    ctx: FormCtx,
    reason: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    breakglass.lift_denial(ctx, request_id, reason)
    return _decided(request, request_id)


@router.post("/deploys/breakglass/{request_id}/revoke")
def revoke_form(request: Request, request_id: RowId, ctx: FormCtx) -> Response:
    breakglass.revoke(ctx, request_id)
    return _decided(request, request_id)


# --- addresses from before the service pages moved under /deploys/services/ ---------


@router.get("/deploys/services")
def services_index() -> Response:
    return RedirectResponse("/deploys", status_code=308)


@router.api_route("/deploys/{service}", methods=["GET"])
@router.api_route("/deploys/{service}/{rest:path}", methods=["GET", "POST"])
def moved_service_page(request: Request, service: str, rest: str = "") -> Response:
    """Old links and bookmarks keep working: 308 keeps a form post a post."""
    if service == "services":  # an unknown page under the new addresses: no loop
        raise NotFound(f"no page {request.url.path}", details={"field": "path"})
    target = service_url(service) + (f"/{rest}" if rest else "")
    if request.url.query:
        target += f"?{request.url.query}"
    return RedirectResponse(target, status_code=308)
