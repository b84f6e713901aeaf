"""HTTP API of scheduled silences (`/api/v1/ops/silences`): create, list, read, replace and
delete the windows during which alarms evaluate but notify no one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from mechanisms.core.context import Ctx
from mechanisms.ops import silences
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

# Included by ops/api.py under its /api/v1/ops prefix.
router = APIRouter(route_class=UnitOfWorkRoute, tags=["ops"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
SilenceName = Annotated[str, Path(min_length=1, max_length=200)]


class ScheduleIn(Input):
    start: Text = Field(
        min_length=1,
        max_length=64,
        description="Wall-clock start in time_zone, ISO 8601 (e.g. 2026-11-28T22:00:00)",
    )
    end: Text = Field(min_length=1, max_length=64, description="Wall-clock end, after start")
    time_zone: Text = Field(default="UTC", max_length=64, description="IANA time zone")
    rrule: Text | None = Field(
        default=None, max_length=1000, description="RFC 5545 RRULE: repeat the window"
    )
    alarms: list[Annotated[Text, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=1000, description="Alarm names; none means every alarm"
    )
    comment: Text = Field(default="", max_length=2000)

    def schedule(self) -> silences.Schedule:
        return silences.Schedule(
            self.start, self.end, self.time_zone, self.rrule, tuple(self.alarms)
        )


class SilenceIn(ScheduleIn):
    name: Text = Field(min_length=1, max_length=200)


class SilenceOut(BaseModel):
    name: str
    start: str
    end: str
    time_zone: str
    rrule: str | None
    alarms: list[str]
    comment: str
    created_by: str
    active: bool = Field(description="Whether one of its windows is open now")
    window_start: datetime | None = Field(description="The open window's start (UTC)")
    window_end: datetime | None = Field(description="The open window's end (UTC)")


def _out(ctx: Ctx, row: silences.Silence) -> SilenceOut:
    window = silences.window_now(row, ctx.now)
    d = row.definition
    return SilenceOut(
        name=row.name,
        start=d["start"],
        end=d["end"],
        time_zone=d["time_zone"],
        rrule=d.get("rrule"),
        alarms=list(d.get("alarms", [])),
        comment=row.comment,
        created_by=row.created_by,
        active=window is not None,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
    )


@router.get("/silences", response_model=list[SilenceOut])
def list_silences(ctx: CtxDep) -> list[SilenceOut]:
    return [_out(ctx, s) for s in silences.list_silences(ctx)]


@router.post("/silences", response_model=SilenceOut, status_code=201)
def create_silence(body: SilenceIn, ctx: CtxDep) -> SilenceOut:
    return _out(ctx, silences.create(ctx, body.name, body.schedule(), body.comment))


@router.get("/silences/{name}", response_model=SilenceOut)
def get_silence(name: SilenceName, ctx: CtxDep) -> SilenceOut:
    return _out(ctx, silences.get(ctx, name))


@router.put("/silences/{name}", response_model=SilenceOut)
def replace_silence(name: SilenceName, body: ScheduleIn, ctx: CtxDep) -> SilenceOut:
    return _out(ctx, silences.replace(ctx, name, body.schedule(), body.comment))


@router.delete("/silences/{name}", status_code=204)
def delete_silence(name: SilenceName, ctx: CtxDep) -> None:
    silences.delete(ctx, name)
