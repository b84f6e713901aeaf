"""Ops pages for scheduled silences: the list (which are open now and until when, the next
window of the others) with the form to create one and a delete button per silence. The
forms show to engineers; the silences service decides who may silence which alarms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from mechanisms.core.context import Ctx
from mechanisms.core.identity import Role
from mechanisms.core.permissions import site_role
from mechanisms.ops import alarms, silences
from mechanisms.ops.pages import render
from mechanisms.web.http import Text, UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx, done

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)


@cache
def time_zones() -> list[str]:
    return sorted(available_timezones())


def _status(row: Any, now: datetime) -> dict[str, Any]:
    """Whether the silence holds alarms back now (and until when), else its next window."""
    window = silences.window_now(row, now)
    if window is not None:
        return {"active": True, "window": window}
    return {"active": False, "window": silences.next_window(row, now)}


def can_silence(ctx: Ctx) -> bool:
    """Only decides whether the forms show; the silences service decides what is allowed."""
    role = site_role(ctx)
    return role is not None and role >= Role.ENGINEER


@router.get("/ops/silences")
def silences_page(request: Request, ctx: PageCtx) -> Response:
    rows = [(row, _status(row, ctx.now)) for row in silences.list_silences(ctx)]
    # Open ones first, then by when their next window opens; those with none left last.
    never = datetime.max.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (not r[1]["active"], r[1]["window"][0] if r[1]["window"] else never))
    return render(
        request,
        "silences.html",
        tab="silences",
        rows=rows,
        alarm_names=sorted(a.name for a in alarms.list_alarms(ctx)),
        zones=time_zones(),
        can_silence=can_silence(ctx),
    )


@router.post("/ops/silences")
def create_form(
    request: Request,
    ctx: FormCtx,
    name: Annotated[Text, Form(max_length=200)] = "",
    start: Annotated[Text, Form(max_length=64)] = "",
    end: Annotated[Text, Form(max_length=64)] = "",
    time_zone: Annotated[Text, Form(max_length=64)] = "UTC",
    rrule: Annotated[Text, Form(max_length=1000)] = "",
    alarm: Annotated[list[Text], Form(max_length=1000)] = [],  # noqa: B006 (FastAPI copies it)
    comment: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    schedule = silences.Schedule(
        start, end, time_zone.strip() or "UTC", rrule.strip() or None, tuple(alarm)
    )
    silences.create(ctx, name.strip(), schedule, comment)
    return done(request, "/ops/silences")


@router.post("/ops/silences/{name}/delete")
def delete_form(request: Request, name: str, ctx: FormCtx) -> Response:
    silences.delete(ctx, name)
    return done(request, "/ops/silences")
