"""Scheduled silences: windows (once, or recurring by an RRULE in an IANA time zone)
during which the alarms they cover stay quiet towards people. Alarms keep evaluating and
recording transitions; their ``alarms.state_changed`` events carry ``silenced: true`` and
the name of the silence, and the subscribers that notify people (tickets, pages) hold
back. Automatic protection (rolling back a rollout) does not (decision 0011)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from mechanisms.core import audit, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, require_team_role, tenancy
from mechanisms.ops import alarm_rules
from mechanisms.ops.tables import Alarm, OpsService, Silence

log = logging.getLogger(__name__)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def parse(raw: dict[str, Any]) -> alarm_rules.Silence:
    """A stored or submitted definition as the domain's Silence; InvalidInput names the
    field that is wrong."""
    try:
        return alarm_rules.Silence.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "definition"
        raise _invalid(field, first["msg"].removeprefix("Value error, ")) from None


def snapshot(row: Silence) -> dict[str, Any]:
    return {"name": row.name, "comment": row.comment, **row.definition}


def _check_covers(ctx: Ctx, silence: alarm_rules.Silence) -> None:
    """Silencing an alarm is for engineers of the team that owns it; silencing every alarm
    at once silences every organisation's, so it is for site administrators."""
    if not silence.alarms:
        require_site_role(ctx, Role.ADMIN)
        return
    found = _owning_teams(ctx, silence.alarms)
    # Another organisation's alarm is as unknown as one that does not exist.
    unknown = [a for a in silence.alarms if a not in found or not tenancy(ctx).sees_team(found[a])]
    if unknown:
        raise _invalid("alarms", f"unknown alarm {unknown[0]!r}")
    for team_id in sorted(set(found.values())):
        require_team_role(ctx, team_id, Role.ENGINEER)


@dataclass(frozen=True)
class Schedule:
    """A silence's windows and the alarms it covers, as a person gives them: ``start`` and
    ``end`` are wall-clock times in ``time_zone`` (ISO 8601 text or datetimes)."""

    start: datetime | str
    end: datetime | str
    time_zone: str = "UTC"
    rrule: str | None = None
    alarms: tuple[str, ...] = ()


def _definition(name: str, schedule: Schedule) -> alarm_rules.Silence:
    # The name is the silence's address (/silences/{name}): it must be one a URL can carry.
    inputs.checked_key(name, "name", 200)
    return parse(
        {
            "name": name,
            "start": schedule.start,
            "end": schedule.end,
            "time_zone": schedule.time_zone,
            "rrule": schedule.rrule or None,
            "alarms": sorted(set(schedule.alarms)),
        }
    )


def _owning_teams(ctx: Ctx, alarm_names: Iterable[str]) -> dict[str, int]:
    return dict(
        ctx.session.execute(
            select(Alarm.name, OpsService.owner_team_id)
            .join(OpsService, OpsService.id == Alarm.service_id)
            .where(Alarm.name.in_(sorted(alarm_names)))
        ).all()
    )


def _visible_ones(ctx: Ctx, rows: Iterable[Silence]) -> list[Silence]:
    """A silence names alarms and nothing else: the caller sees it when they see every alarm
    it covers (its names would tell them about another organisation's alarms otherwise). One
    that covers every alarm, which only a site administrator makes, concerns everyone."""
    rows = list(rows)
    seen = tenancy(ctx)
    if seen.team_ids is None:
        return rows
    covered = {row.id: row.definition.get("alarms") or [] for row in rows}
    owners = _owning_teams(ctx, {name for names in covered.values() for name in names})
    # Alarms deleted since tell nothing about anyone: only those that exist decide.
    return [
        row
        for row in rows
        if all(seen.sees_team(owners[name]) for name in covered[row.id] if name in owners)
    ]


def _find(ctx: Ctx, name: str) -> Silence:
    found = ctx.session.execute(select(Silence).where(Silence.name == name)).scalar_one_or_none()
    if found is None or not _visible_ones(ctx, [found]):
        raise NotFound(f"silence {name!r} not found", details={"field": "silence"})
    return found


def create(ctx: Ctx, name: str, schedule: Schedule, comment: str = "") -> Silence:
    require_site_role(ctx, Role.ENGINEER)
    silence = _definition(name, schedule)
    _check_covers(ctx, silence)
    if ctx.session.execute(select(Silence.id).where(Silence.name == name)).first():
        raise Conflict(f"silence {name!r} already exists", details={"field": "name"})
    row = Silence(
        name=name,
        definition=silence.model_dump(mode="json"),
        comment=comment.strip(),
        created_by=ctx.principal.actor,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "ops.silence_created", "silence", name, after=snapshot(row))
    return row


def replace(ctx: Ctx, name: str, schedule: Schedule, comment: str = "") -> Silence:
    """Change a silence's windows or the alarms it covers (whoever may silence both the old
    and the new set of alarms)."""
    require_site_role(ctx, Role.ENGINEER)
    row = _find(ctx, name)
    silence = _definition(name, schedule)
    _check_covers(ctx, parse(row.definition))
    _check_covers(ctx, silence)
    before = snapshot(row)
    row.definition = silence.model_dump(mode="json")
    row.comment, row.updated_at = comment.strip(), ctx.now
    ctx.session.flush()
    audit.record(ctx, "ops.silence_changed", "silence", name, before=before, after=snapshot(row))
    return row


def delete(ctx: Ctx, name: str) -> None:
    require_site_role(ctx, Role.ENGINEER)
    row = _find(ctx, name)
    _check_covers(ctx, parse(row.definition))
    before = snapshot(row)
    ctx.session.delete(row)
    ctx.session.flush()
    audit.record(ctx, "ops.silence_deleted", "silence", name, before=before)


def get(ctx: Ctx, name: str) -> Silence:
    require_site_role(ctx, Role.VIEWER)
    return _find(ctx, name)


def list_silences(ctx: Ctx) -> list[Silence]:
    require_site_role(ctx, Role.VIEWER)
    return _visible_ones(ctx, ctx.session.execute(select(Silence).order_by(Silence.name)).scalars())


def window_now(row: Silence, now: datetime) -> tuple[datetime, datetime] | None:
    """The window of this silence open at ``now`` (UTC), if any."""
    return parse(row.definition).window_at(now)


def next_window(row: Silence, now: datetime) -> tuple[datetime, datetime] | None:
    """The next window of this silence to open after ``now`` (UTC), if any."""
    return parse(row.definition).next_window(now)


def _stored(ctx: Ctx) -> Iterator[alarm_rules.Silence]:
    """The stored silences, by name. One stored before today's bounds that breaks them (a
    FREQ=SECONDLY rule) silences nothing: alarms keep paging, and no evaluation walks it."""
    for name, definition in ctx.session.execute(
        select(Silence.name, Silence.definition).order_by(Silence.name)
    ):
        try:
            yield parse(definition)
        except InvalidInput as exc:
            log.warning("silence %r is ignored: %s", name, exc.message)


def silenced_until(ctx: Ctx) -> Callable[[str], datetime | None]:
    """For a page: alarm name -> until when (UTC) the silences open now keep it quiet (the
    latest end of their open windows), or None."""
    require_site_role(ctx, Role.VIEWER)
    open_now = []
    for silence in _stored(ctx):
        window = silence.window_at(ctx.now)
        if window is not None:
            open_now.append((silence, window[1]))
    return lambda name: max(
        (end for silence, end in open_now if silence.applies_to(name)), default=None
    )


def silencer(ctx: Ctx) -> Callable[[str], str | None]:
    """For one evaluation pass: alarm name -> the name of the silence that covers it now, or
    None. The silences open now are found once; each alarm then costs a set look-up."""
    open_now = [s for s in _stored(ctx) if s.window_at(ctx.now) is not None]
    if not open_now:
        return lambda _name: None
    return lambda name: next((s.name for s in open_now if s.applies_to(name)), None)
