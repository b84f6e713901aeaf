"""The forms of a schedule's page that change it: add an override (who, from, to, in the
schedule's zone or UTC), remove one, swap two upcoming shifts, change a layer's roster
from a future date. Each form carries the
version of the schedule it was shown with: when someone changed the schedule meanwhile,
nothing is written and the page says so. The forms show to engineers of the owning team;
the schedules service decides what is allowed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, StaleState
from mechanisms.core.identity import Role
from mechanisms.core.permissions import team_role
from mechanisms.ops import oncall, schedules
from mechanisms.web.http import Text, UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, done

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
Version = Annotated[int, Form(ge=1, le=2**31 - 1)]
ZONE_CHOICES = ("schedule", "UTC")


def can_edit(ctx: Ctx, row: Any) -> bool:
    """Only decides whether the forms show."""
    role = team_role(ctx, row.team_id)
    return role is not None and role >= Role.ENGINEER


def people(schedule: oncall.Schedule) -> list[str]:
    """Everyone the schedule names: the choices for an override."""
    found = {o.user for o in schedule.overrides}
    for layer in schedule.layers:
        found.update(layer.participants)
        for change in layer.roster_changes:
            found.update(change.participants)
    return sorted(found)


def _page(name: str) -> str:
    return f"/ops/oncall/schedules/{quote(name, safe='')}"


def _stale(name: str, exc: StaleState) -> StaleState:
    return StaleState(
        f"Someone changed the schedule {name!r} after you opened this page; nothing was "
        "saved. Reload the page to see their change, then try again.",
        details=exc.details,
    )


def _instant(field: str, value: str, zone_name: str) -> datetime:
    """A wall-clock time from a datetime-local field, in the zone chosen."""
    try:
        wall = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{field}: a date and time like 2026-12-24T18:00", details={"field": field}
        ) from None
    if wall.tzinfo is not None:
        raise InvalidInput(
            f"{field}: give the wall-clock time without an offset; choose the zone below",
            details={"field": field},
        )
    return oncall.local_to_utc(wall, oncall.zone(zone_name))


def _zone_name(ctx: Ctx, name: str, zone: str) -> str:
    if zone not in ZONE_CHOICES:
        raise InvalidInput("zone: the schedule's zone or UTC", details={"field": "zone"})
    if zone == "UTC":
        return "UTC"
    return schedules.model(schedules.get_schedule(ctx, name)).time_zone


@router.post("/ops/oncall/schedules/{name}/overrides")
def add_override_form(
    request: Request,
    name: str,
    ctx: FormCtx,
    version: Version,
    user: Annotated[Text, Form(max_length=200)] = "",
    start: Annotated[Text, Form(max_length=64)] = "",
    end: Annotated[Text, Form(max_length=64)] = "",
    zone: Annotated[Text, Form(max_length=16)] = "schedule",
    replaces: Annotated[Text, Form(max_length=200)] = "",
) -> Response:
    zone_name = _zone_name(ctx, name, zone)
    if not user.strip():
        raise InvalidInput("user: choose who takes the time", details={"field": "user"})
    start_at, end_at = _instant("start", start, zone_name), _instant("end", end, zone_name)
    try:
        schedules.add_override(
            ctx, name, start_at, end_at, user.strip(), replaces.strip() or None, version
        )
    except StaleState as exc:
        raise _stale(name, exc) from None
    return done(request, _page(name))


@router.post("/ops/oncall/schedules/{name}/overrides/{override_id}/remove")
def remove_override_form(
    request: Request, name: str, override_id: str, ctx: FormCtx, version: Version
) -> Response:
    try:
        schedules.remove_override(ctx, name, override_id, version)
    except StaleState as exc:
        raise _stale(name, exc) from None
    return done(request, _page(name))


@router.post("/ops/oncall/schedules/{name}/swap")
def swap_form(
    request: Request,
    name: str,
    ctx: FormCtx,
    version: Version,
    first: Annotated[Text, Form(max_length=64)] = "",
    second: Annotated[Text, Form(max_length=64)] = "",
) -> Response:
    """``first`` and ``second``: the start (UTC) of a shift from the upcoming list."""
    instants = []
    for field, value in (("first", first), ("second", second)):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise InvalidInput(f"{field}: choose a shift from the list", details={"field": field})
        instants.append(at)
    try:
        schedules.swap_shifts(ctx, name, instants[0], instants[1], version)
    except StaleState as exc:
        raise _stale(name, exc) from None
    return done(request, _page(name))


@router.post("/ops/oncall/schedules/{name}/roster")
def roster_form(
    request: Request,
    name: str,
    ctx: FormCtx,
    version: Version,
    layer: Annotated[int, Form(ge=0, le=1000)],
    effective_at: Annotated[Text, Form(max_length=64)] = "",
    zone: Annotated[Text, Form(max_length=16)] = "schedule",
    participants: Annotated[Text, Form(max_length=5000)] = "",
) -> Response:
    """``participants``: usernames in rotation order, separated by commas or spaces."""
    zone_name = _zone_name(ctx, name, zone)
    people_in_order = [p for p in participants.replace(",", " ").split() if p]
    if not people_in_order:
        raise InvalidInput(
            "participants: name who rotates, in order", details={"field": "participants"}
        )
    at = _instant("effective_at", effective_at, zone_name)
    try:
        schedules.add_roster_change(ctx, name, layer, at, people_in_order, version)
    except StaleState as exc:
        raise _stale(name, exc) from None
    return done(request, _page(name))
