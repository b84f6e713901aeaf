"""On-call service: schedules and escalation policies owned by teams, a team's paging
policy, who is on call, coverage and fairness reports, iCalendar feeds and handoffs.

Schedules and policies are stored as the pure domain models (``ops/oncall.py``,
``ops/escalation.py``) and validated by them on every write; the domain's field paths
become the ``field`` of the InvalidInput a bad definition gets. Every edit bumps the
row's version; an edit that names an older version is refused instead of overwriting.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mechanisms.core import accounts, audit, events, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.db import canonical_json
from mechanisms.core.errors import Conflict, InvalidInput, NotFound, StaleState
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    require_site_role,
    require_team_role,
    require_visible_team,
    team_lineage,
    visible_teams_filter,
)
from mechanisms.core.tables import Team
from mechanisms.ops import escalation, oncall
from mechanisms.ops.tables import (
    CalendarFeed,
    EscalationPolicy,
    OnCallSchedule,
    TeamPagingPolicy,
)

# Reports and listings over longer windows are a typo or a denial of service.
MAX_REPORT_WINDOW = timedelta(days=366)
MAX_SHIFTS_WINDOW = timedelta(days=93)
FEED_PREFIX = "mcal_"
FEED_PAST, FEED_FUTURE = timedelta(days=14), timedelta(days=90)
# How far the handoff job looks for the next change of person when the schedule has none
# soon (it then checks again this much later).
HANDOFF_HORIZON = timedelta(days=35)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def _domain_error(exc: ValidationError | ValueError, prefix: str = "") -> InvalidInput:
    """The domain's first complaint, named by its field path (``layers.0.rotation.type``)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        field = ".".join(p for p in (prefix, path) if p) or prefix or "definition"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return InvalidInput(f"{field}: {message}", details={"field": field})
    text = str(exc)
    field, sep, rest = text.partition(":")
    if not (sep and " " not in field):
        field, rest = prefix or "definition", " " + text
    # The caller knows which of its own inputs the domain's parameter came from.
    field = prefix or field
    return InvalidInput(f"{field}:{rest}", details={"field": field})


def _check_window(start: datetime, end: datetime, longest: timedelta) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise _invalid("start", "give instants with a time zone")
    if end <= start:
        raise _invalid("end", "must be after start")
    if end - start > longest:
        raise _invalid("end", f"the window may span at most {longest.days} days")


# --- schedules ----------------------------------------------------------------------


@lru_cache(maxsize=512)
def _parse_schedule(stored: str) -> oncall.Schedule:
    import json

    return oncall.Schedule.model_validate(json.loads(stored))


def model(row: OnCallSchedule) -> oncall.Schedule:
    """The stored schedule as the domain model (parsed once per distinct definition)."""
    return _parse_schedule(canonical_json({"name": row.name, **row.definition}))


def _validated_schedule(ctx: Ctx, data: dict[str, Any]) -> oncall.Schedule:
    try:
        schedule = oncall.Schedule.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise _domain_error(exc) from None
    _check_people(ctx, _people_in(schedule))
    return schedule


def _people_in(schedule: oncall.Schedule) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for i, layer in enumerate(schedule.layers):
        found += [(f"layers.{i}.participants", p) for p in layer.participants]
        for j, change in enumerate(layer.roster_changes):
            found += [
                (f"layers.{i}.roster_changes.{j}.participants", p) for p in change.participants
            ]
    for k, override in enumerate(schedule.overrides):
        found.append((f"overrides.{k}.user", override.user))
    return found


def _check_people(ctx: Ctx, people: Iterable[tuple[str, str]]) -> None:
    """Everyone on call must be a person here: pages, feeds and the home page find them."""
    known: dict[str, bool] = {}
    for field, username in people:
        if username not in known:
            known[username] = accounts.find_user(ctx.session, username) is not None
        if not known[username]:
            raise _invalid(field, f"no user named {username!r}")


def snapshot(row: OnCallSchedule) -> dict[str, Any]:
    return {"name": row.name, "team_id": row.team_id, "version": row.version, **row.definition}


def _store(row: OnCallSchedule, schedule: oncall.Schedule) -> None:
    row.definition = schedule.model_dump(mode="json", exclude={"name"})


def create_schedule(
    ctx: Ctx,
    team: str,
    name: str,
    time_zone: str,
    layers: list[dict[str, Any]],
    overrides: list[dict[str, Any]] | None = None,
) -> OnCallSchedule:
    require_site_role(ctx, Role.ENGINEER)
    owner = accounts.get_team(ctx, team)
    require_team_role(ctx, owner.id, Role.ENGINEER)
    # The name is the schedule's address (/schedules/{name}): it must be one a URL can carry.
    inputs.checked_key(name, "name", 200)
    schedule = _validated_schedule(
        ctx,
        {"name": name, "time_zone": time_zone, "layers": layers, "overrides": overrides or []},
    )
    if _find_schedule(ctx.session, schedule.name) is not None:
        raise Conflict(f"schedule {schedule.name!r} already exists", details={"field": "name"})
    row = OnCallSchedule(
        name=schedule.name,
        team_id=owner.id,
        version=1,
        handoff_check_at=ctx.now,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    _store(row, schedule)
    ctx.session.add(row)
    ctx.session.flush()
    _announce(ctx, row, "ops.schedule.created")
    return row


def _announce(
    ctx: Ctx, row: OnCallSchedule, action: str, before: dict[str, Any] | None = None
) -> None:
    after = snapshot(row)
    audit.record(ctx, action, "oncall_schedule", row.name, before=before, after=after)
    events.emit(
        ctx,
        action,
        "oncall_schedule",
        row.name,
        {"name": row.name, "team_id": row.team_id, "version": row.version},
    )


def _find_schedule(session: Session, name: str) -> OnCallSchedule | None:
    return session.execute(
        select(OnCallSchedule).where(OnCallSchedule.name == name)
    ).scalar_one_or_none()


def get_schedule(ctx: Ctx, name: str) -> OnCallSchedule:
    require_site_role(ctx, Role.VIEWER)
    row = _find_schedule(ctx.session, name)
    if row is None:
        raise NotFound(f"schedule {name!r} not found", details={"field": "schedule"})
    require_visible_team(ctx, row.team_id, f"schedule {name!r}")
    return row


def list_schedules(ctx: Ctx, team: str | None = None) -> list[OnCallSchedule]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(OnCallSchedule)
        .where(visible_teams_filter(ctx, OnCallSchedule.team_id))
        .order_by(OnCallSchedule.name)
    )
    if team:
        query = query.where(OnCallSchedule.team_id == accounts.get_team(ctx, team).id)
    return list(ctx.session.execute(query).scalars())


def _editable(ctx: Ctx, name: str, version: int | None) -> OnCallSchedule:
    require_site_role(ctx, Role.ENGINEER)
    row = get_schedule(ctx, name)
    require_team_role(ctx, row.team_id, Role.ENGINEER)
    if version is not None and version != row.version:
        raise StaleState(
            f"schedule {name!r} is at version {row.version}, not {version}; reload and retry",
            details={"field": "version", "current": row.version},
        )
    return row


def _replace(
    ctx: Ctx, row: OnCallSchedule, schedule: oncall.Schedule, action: str
) -> OnCallSchedule:
    before = snapshot(row)
    claimed = ctx.session.execute(
        update(OnCallSchedule)
        .where(OnCallSchedule.id == row.id, OnCallSchedule.version == row.version)
        .values(
            definition=schedule.model_dump(mode="json", exclude={"name"}),
            version=row.version + 1,
            updated_at=ctx.now,
            # An edit may change who is on call now: the handoff job looks again at once.
            handoff_check_at=ctx.now,
        )
        .returning(OnCallSchedule.version)
    ).scalar_one_or_none()
    if claimed is None:
        raise StaleState(f"schedule {row.name!r} was changed meanwhile; reload and retry")
    ctx.session.refresh(row)
    _announce(ctx, row, action, before)
    return row


def update_schedule(
    ctx: Ctx,
    name: str,
    *,
    time_zone: str | None = None,
    layers: list[dict[str, Any]] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    version: int | None = None,
) -> OnCallSchedule:
    """Replace the schedule's zone, layers or overrides (those given)."""
    row = _editable(ctx, name, version)
    current = model(row).model_dump(mode="json")
    if time_zone is not None:
        current["time_zone"] = time_zone
    if layers is not None:
        current["layers"] = layers
    if overrides is not None:
        current["overrides"] = overrides
    return _replace(ctx, row, _validated_schedule(ctx, current), "ops.schedule.updated")


def delete_schedule(ctx: Ctx, name: str) -> None:
    row = _editable(ctx, name, None)
    users = [p.name for p in _policies(ctx.session) if name in _schedule_targets(p)]
    if users:
        raise Conflict(
            f"schedule {name!r} is a target of escalation policy {users[0]!r}; change it first",
            details={"field": "schedule", "policies": users},
        )
    before = snapshot(row)
    audit.record(ctx, "ops.schedule.deleted", "oncall_schedule", row.name, before=before)
    events.emit(ctx, "ops.schedule.deleted", "oncall_schedule", row.name, {"name": row.name})
    ctx.session.delete(row)
    ctx.session.flush()


def add_override(
    ctx: Ctx,
    name: str,
    start: datetime,
    end: datetime,
    user: str,
    replaces: str | None = None,
    version: int | None = None,
) -> tuple[OnCallSchedule, str]:
    """``user`` takes [start, end) (only ``replaces``'s time in it, if given); returns the
    schedule and the override's id."""
    row = _editable(ctx, name, version)
    override_id = f"o-{uuid4().hex[:10]}"
    try:
        override = oncall.Override(
            id=override_id, start=start, end=end, user=user, replaces=replaces
        )
    except (ValidationError, ValueError) as exc:
        raise _domain_error(exc) from None
    _check_people(ctx, [("user", user)] + ([("replaces", replaces)] if replaces else []))
    schedule = model(row).with_overrides(override)
    return _replace(ctx, row, schedule, "ops.schedule.override_added"), override_id


def remove_override(
    ctx: Ctx, name: str, override_id: str, version: int | None = None
) -> OnCallSchedule:
    row = _editable(ctx, name, version)
    schedule = model(row)
    kept = tuple(o for o in schedule.overrides if o.id != override_id)
    if len(kept) == len(schedule.overrides):
        raise NotFound(f"schedule {name!r} has no override {override_id!r}")
    changed = schedule.model_copy(update={"overrides": kept})
    return _replace(ctx, row, changed, "ops.schedule.override_removed")


def _shift_at(schedule: oncall.Schedule, at: datetime, field: str) -> oncall.Shift:
    try:
        found = oncall.shifts(schedule, at - HANDOFF_HORIZON, at + HANDOFF_HORIZON)
    except ValueError as exc:
        raise _domain_error(exc, field) from None
    for shift in found:
        if shift.start <= at < shift.end:
            return shift
    raise _invalid(field, f"nobody is on call at {at.isoformat()}; there is no shift to swap")


def swap_shifts(
    ctx: Ctx, name: str, first_at: datetime, second_at: datetime, version: int | None = None
) -> tuple[OnCallSchedule, list[str]]:
    """The people on call at ``first_at`` and at ``second_at`` exchange those two shifts:
    two overrides, each bound to one shift and the person who had it."""
    row = _editable(ctx, name, version)
    schedule = model(row)
    first = _shift_at(schedule, first_at, "first_at")
    second = _shift_at(schedule, second_at, "second_at")
    prefix = f"s-{uuid4().hex[:10]}"
    try:
        pair = oncall.swap(first, second, id_prefix=prefix)
    except ValueError as exc:
        raise _domain_error(exc, "second_at") from None
    changed = _replace(ctx, row, schedule.with_overrides(*pair), "ops.schedule.swapped")
    return changed, [o.id for o in pair if o.id]


def add_roster_change(
    ctx: Ctx,
    name: str,
    layer: int,
    effective_at: datetime,
    participants: list[str],
    version: int | None = None,
) -> OnCallSchedule:
    """From ``effective_at`` (in the future: history is never rewritten) the layer rotates
    through ``participants``."""
    row = _editable(ctx, name, version)
    if effective_at.tzinfo is None or effective_at <= ctx.now:
        raise _invalid("effective_at", "a roster change takes effect in the future")
    data = model(row).model_dump(mode="json")
    if not 0 <= layer < len(data["layers"]):
        raise _invalid("layer", f"the schedule has layers 0 to {len(data['layers']) - 1}")
    data["layers"][layer]["roster_changes"].append(
        {"effective_at": effective_at.isoformat(), "participants": participants}
    )
    return _replace(ctx, row, _validated_schedule(ctx, data), "ops.schedule.roster_changed")


# --- who is on call -----------------------------------------------------------------


@dataclass(frozen=True)
class OnCallNow:
    schedule: str
    team_id: int
    person: str | None
    source: str | None
    # When the current shift (or the gap) ends, within the look-ahead; None beyond it.
    until: datetime | None


def person_at(session: Session, schedule_name: str, at: datetime) -> str | None:
    """Who is on call on the named schedule at ``at``; None if nobody is or there is no such
    schedule any more (a page then records the gap)."""
    row = _find_schedule(session, schedule_name)
    if row is None:
        return None
    return oncall.who_is_on_call(model(row), at).person


def _next_change(schedule: oncall.Schedule, now: datetime) -> datetime | None:
    for shift in oncall.shifts(schedule, now, now + HANDOFF_HORIZON):
        if shift.start > now:
            return shift.start
        if shift.end > now and shift.end < now + HANDOFF_HORIZON:
            return shift.end
    return None


def on_call_now(
    ctx: Ctx, *, team: str | None = None, schedule: str | None = None
) -> list[OnCallNow]:
    require_site_role(ctx, Role.VIEWER)
    rows = [get_schedule(ctx, schedule)] if schedule else list_schedules(ctx, team)
    found = []
    for row in rows:
        domain = model(row)
        who = oncall.who_is_on_call(domain, ctx.now)
        found.append(
            OnCallNow(
                row.name,
                row.team_id,
                who.person,
                str(who.source) if who.source else None,
                _next_change(domain, ctx.now),
            )
        )
    return found


def shifts_of(ctx: Ctx, name: str, start: datetime, end: datetime) -> list[oncall.Shift]:
    row = get_schedule(ctx, name)
    _check_window(start, end, MAX_SHIFTS_WINDOW)
    return oncall.shifts(model(row), start, end)


@dataclass(frozen=True)
class PersonShift:
    schedule: str
    shift: oncall.Shift


def person_shifts(ctx: Ctx, username: str, start: datetime, end: datetime) -> list[PersonShift]:
    """The person's shifts on every schedule in [start, end), in time order."""
    require_site_role(ctx, Role.VIEWER)
    _check_window(start, end, MAX_SHIFTS_WINDOW)
    accounts.get_user(ctx, username)
    found = [
        PersonShift(row.name, shift)
        for row in list_schedules(ctx)
        for shift in oncall.shifts(model(row), start, end)
        if shift.person == username
    ]
    return sorted(found, key=lambda s: (s.shift.start, s.schedule))


def coverage(ctx: Ctx, names: list[str], start: datetime, end: datetime) -> list[oncall.Interval]:
    """The parts of [start, end) that none of the named schedules covers (in UTC)."""
    require_site_role(ctx, Role.VIEWER)
    if not names:
        raise _invalid("schedule", "name at least one schedule")
    _check_window(start, end, MAX_REPORT_WINDOW)
    return oncall.gaps([model(get_schedule(ctx, n)) for n in names], start, end)


def fairness(ctx: Ctx, name: str, start: datetime, end: datetime) -> list[oncall.Load]:
    row = get_schedule(ctx, name)
    _check_window(start, end, MAX_REPORT_WINDOW)
    return oncall.fairness(model(row), start, end)


# --- handoffs -----------------------------------------------------------------------


def due_handoff_checks(session: Session, now: datetime, limit: int) -> list[int]:
    return list(
        session.execute(
            select(OnCallSchedule.id)
            .where(OnCallSchedule.handoff_check_at <= now)
            .order_by(OnCallSchedule.handoff_check_at)
            .limit(limit)
        ).scalars()
    )


def check_handoff(ctx: Ctx, schedule_id: int) -> bool:
    """Announce ``ops.oncall.handoff`` if the person on call changed since the last
    announcement; returns whether it did. Claimed with the row's version, so two workers
    announce each handoff once."""
    row = ctx.session.get(OnCallSchedule, schedule_id)
    if row is None or row.handoff_check_at > ctx.now:
        raise StaleState("another worker checked this schedule first")
    domain = model(row)
    person = oncall.who_is_on_call(domain, ctx.now).person
    # Read before the UPDATE, which also refreshes the loaded row.
    previous = row.announced_person
    next_check = _next_change(domain, ctx.now) or ctx.now + HANDOFF_HORIZON
    claimed = ctx.session.execute(
        update(OnCallSchedule)
        .where(OnCallSchedule.id == row.id, OnCallSchedule.version == row.version)
        .values(
            announced_person=person,
            handoff_check_at=next_check,
            version=row.version + 1,
        )
        .returning(OnCallSchedule.version)
    ).scalar_one_or_none()
    if claimed is None:
        raise StaleState("the schedule changed meanwhile")
    if person == previous:
        return False
    team = ctx.session.get(Team, row.team_id)
    payload = {
        "schedule": row.name,
        "team": team.slug if team else None,
        "from": previous,
        "to": person,
        "at": ctx.now.isoformat(),
        "until": next_check.isoformat(),
    }
    audit.record(ctx, "ops.oncall.handoff", "oncall_schedule", row.name, after=payload)
    events.emit(ctx, "ops.oncall.handoff", "oncall_schedule", row.name, payload)
    return True


# --- escalation policies ------------------------------------------------------------


@lru_cache(maxsize=512)
def _parse_policy(stored: str) -> escalation.Policy:
    import json

    return escalation.Policy.model_validate(json.loads(stored))


def policy_model(row: EscalationPolicy) -> escalation.Policy:
    return _parse_policy(canonical_json({"name": row.name, **row.definition}))


def _schedule_targets(policy: escalation.Policy) -> set[str]:
    return {t.name for level in policy.levels for t in level.targets if t.kind == "schedule"}


def _policies(session: Session) -> list[escalation.Policy]:
    return [
        policy_model(r)
        for r in session.execute(select(EscalationPolicy).order_by(EscalationPolicy.name)).scalars()
    ]


def _validated_policy(ctx: Ctx, data: dict[str, Any]) -> escalation.Policy:
    try:
        policy = escalation.Policy.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise _domain_error(exc) from None
    for i, level in enumerate(policy.levels):
        for j, target in enumerate(level.targets):
            field = f"levels.{i}.targets.{j}.name"
            if target.kind == "schedule" and _find_schedule(ctx.session, target.name) is None:
                raise _invalid(field, f"no schedule named {target.name!r}")
            if target.kind == "user":
                _check_people(ctx, [(field, target.name)])
    return policy


def policy_snapshot(row: EscalationPolicy) -> dict[str, Any]:
    return {"name": row.name, "team_id": row.team_id, "version": row.version, **row.definition}


def _announce_policy(
    ctx: Ctx, row: EscalationPolicy, action: str, before: dict[str, Any] | None = None
) -> None:
    audit.record(
        ctx, action, "escalation_policy", row.name, before=before, after=policy_snapshot(row)
    )
    events.emit(
        ctx,
        action,
        "escalation_policy",
        row.name,
        {"name": row.name, "team_id": row.team_id, "version": row.version},
    )


def create_policy(
    ctx: Ctx,
    team: str,
    name: str,
    levels: list[dict[str, Any]],
    repeat: int = 0,
    *,
    default: bool = False,
) -> EscalationPolicy:
    """A team's escalation policy; ``default`` makes it the one that pages for the team's
    SEV1 and SEV2 tickets."""
    require_site_role(ctx, Role.ENGINEER)
    owner = accounts.get_team(ctx, team)
    require_team_role(ctx, owner.id, Role.ENGINEER)
    policy = _validated_policy(ctx, {"name": name, "levels": levels, "repeat": repeat})
    if _find_policy(ctx.session, policy.name) is not None:
        raise Conflict(f"escalation policy {name!r} already exists", details={"field": "name"})
    row = EscalationPolicy(
        name=policy.name,
        team_id=owner.id,
        definition=policy.model_dump(mode="json", exclude={"name"}),
        version=1,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    _announce_policy(ctx, row, "ops.policy.created")
    if default:
        set_team_policy(ctx, owner.slug, row.name)
    return row


def _find_policy(session: Session, name: str) -> EscalationPolicy | None:
    return session.execute(
        select(EscalationPolicy).where(EscalationPolicy.name == name)
    ).scalar_one_or_none()


def get_policy(ctx: Ctx, name: str) -> EscalationPolicy:
    require_site_role(ctx, Role.VIEWER)
    row = _find_policy(ctx.session, name)
    if row is None:
        raise NotFound(f"escalation policy {name!r} not found", details={"field": "policy"})
    require_visible_team(ctx, row.team_id, f"escalation policy {name!r}")
    return row


def list_policies(ctx: Ctx, team: str | None = None) -> list[EscalationPolicy]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(EscalationPolicy)
        .where(visible_teams_filter(ctx, EscalationPolicy.team_id))
        .order_by(EscalationPolicy.name)
    )
    if team:
        query = query.where(EscalationPolicy.team_id == accounts.get_team(ctx, team).id)
    return list(ctx.session.execute(query).scalars())


def update_policy(
    ctx: Ctx,
    name: str,
    levels: list[dict[str, Any]],
    repeat: int = 0,
    version: int | None = None,
) -> EscalationPolicy:
    """Pages already open keep the policy they started with."""
    require_site_role(ctx, Role.ENGINEER)
    row = get_policy(ctx, name)
    require_team_role(ctx, row.team_id, Role.ENGINEER)
    if version is not None and version != row.version:
        raise StaleState(
            f"escalation policy {name!r} is at version {row.version}, not {version}",
            details={"field": "version", "current": row.version},
        )
    policy = _validated_policy(ctx, {"name": name, "levels": levels, "repeat": repeat})
    before = policy_snapshot(row)
    claimed = ctx.session.execute(
        update(EscalationPolicy)
        .where(EscalationPolicy.id == row.id, EscalationPolicy.version == row.version)
        .values(
            definition=policy.model_dump(mode="json", exclude={"name"}),
            version=row.version + 1,
            updated_at=ctx.now,
        )
        .returning(EscalationPolicy.version)
    ).scalar_one_or_none()
    if claimed is None:
        raise StaleState(f"escalation policy {name!r} was changed meanwhile; reload and retry")
    ctx.session.refresh(row)
    _announce_policy(ctx, row, "ops.policy.updated", before)
    return row


def set_team_policy(ctx: Ctx, team: str, policy: str) -> EscalationPolicy:
    """The policy that pages for ``team``'s high-severity tickets (one of its own, or of a
    team above it)."""
    require_site_role(ctx, Role.ENGINEER)
    owner = accounts.get_team(ctx, team)
    require_team_role(ctx, owner.id, Role.ENGINEER)
    row = get_policy(ctx, policy)
    if row.team_id not in team_lineage(ctx, owner.id):
        raise _invalid("policy", f"{policy!r} belongs to another team")
    current = ctx.session.get(TeamPagingPolicy, owner.id)
    before = {"policy_id": current.policy_id} if current else None
    if current is None:
        ctx.session.add(TeamPagingPolicy(team_id=owner.id, policy_id=row.id))
    else:
        current.policy_id = row.id
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.team_policy.set",
        "team",
        owner.slug,
        before=before,
        after={"policy_id": row.id, "policy": row.name},
    )
    events.emit(
        ctx, "ops.team_policy.set", "team", owner.slug, {"team": owner.slug, "policy": row.name}
    )
    return row


def team_policy(session: Session, team_id: int) -> EscalationPolicy | None:
    """The policy paging for a team: its own, else the nearest team above it that has one."""
    current: int | None = team_id
    seen: set[int] = set()
    while current is not None and current not in seen:
        seen.add(current)
        chosen = session.get(TeamPagingPolicy, current)
        if chosen is not None:
            return session.get(EscalationPolicy, chosen.policy_id)
        team = session.get(Team, current)
        current = team.parent_id if team else None
    return None


# --- calendar feeds -----------------------------------------------------------------


def _feed_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_feed(
    ctx: Ctx, *, schedule: str | None = None, person: str | None = None
) -> tuple[CalendarFeed, str]:
    """A secret feed URL token for one schedule or one person, shown this once. Creating
    one again rotates it: the earlier tokens of the same feed stop working."""
    require_site_role(ctx, Role.ENGINEER)
    if (schedule is None) == (person is None):
        raise _invalid("schedule", "name a schedule or a person, not both")
    schedule_row = None
    if schedule is not None:
        schedule_row = get_schedule(ctx, schedule)
        require_team_role(ctx, schedule_row.team_id, Role.ENGINEER)
    else:
        user = accounts.get_user(ctx, person or "")
        if ctx.principal.user_id != user.id:
            require_site_role(ctx, Role.ADMIN)
        person = user.username
    query = update(CalendarFeed).where(CalendarFeed.revoked_at.is_(None))
    if schedule_row is not None:
        query = query.where(CalendarFeed.schedule_id == schedule_row.id)
    else:
        query = query.where(CalendarFeed.person == person, CalendarFeed.schedule_id.is_(None))
    ctx.session.execute(query.values(revoked_at=ctx.now))
    secret = FEED_PREFIX + secrets.token_urlsafe(32)
    feed = CalendarFeed(
        token_hash=_feed_digest(secret),
        prefix=secret[:12],
        schedule_id=schedule_row.id if schedule_row else None,
        person=person,
        created_by=ctx.principal.actor,
        created_at=ctx.now,
    )
    ctx.session.add(feed)
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.calendar_feed.created",
        "calendar_feed",
        feed.id,
        after={"schedule": schedule, "person": person, "prefix": feed.prefix},
    )
    return feed, secret


def feed_calendar(ctx: Ctx, token: str) -> bytes:
    """The iCalendar text of the feed the token opens; the token is the credential."""
    if not token.startswith(FEED_PREFIX) or len(token) > 100:
        raise NotFound("no such calendar feed")
    feed = ctx.session.execute(
        select(CalendarFeed).where(CalendarFeed.token_hash == _feed_digest(token))
    ).scalar_one_or_none()
    if feed is None or feed.revoked_at is not None:
        raise NotFound("no such calendar feed (it may have been rotated)")
    start, end = ctx.now - FEED_PAST, ctx.now + FEED_FUTURE
    if feed.schedule_id is not None:
        row = ctx.session.get(OnCallSchedule, feed.schedule_id)
        if row is None:
            raise NotFound("no such calendar feed")
        return oncall.to_ical(model(row), start, end, dtstamp=ctx.now)
    rows = list(ctx.session.execute(select(OnCallSchedule).order_by(OnCallSchedule.name)).scalars())
    if not rows:
        return _empty_calendar(f"On call: {feed.person}")
    return oncall.to_ical(
        [model(r) for r in rows],
        start,
        end,
        dtstamp=ctx.now,
        person=feed.person,
        calendar_name=f"On call: {feed.person}",
    )


def _empty_calendar(name: str) -> bytes:
    from icalendar import Calendar

    calendar = Calendar()
    calendar.add("prodid", "-//Mechanisms//On-call schedule//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    return calendar.to_ical()
