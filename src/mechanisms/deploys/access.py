"""Who owns a deploy service, who may act on it, and the history every change writes.

A deploy service is an ops service (decision 0014): ops knows its owning team, and the
team's place in the organisation gives the block-window scope (org → team → service →
stage) and the leaders who count for break-glass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select

from mechanisms.core import audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.db import bulk_insert
from mechanisms.core.errors import NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    credential_reaches,
    require_team_role,
    team_chain,
    team_lineage,
    team_role,
)
from mechanisms.core.tables import Membership, User
from mechanisms.deploys import approvals
from mechanisms.deploys.calendar import Scope
from mechanisms.deploys.tables import TimelineEntry
from mechanisms.ops import alarms as ops_alarms

T = TypeVar("T")


@dataclass(frozen=True)
class Owner:
    """A service and where it sits: its owning team and that team's organisation."""

    service: str
    team_id: int
    team: str
    org_id: int
    org: str

    def scope(self, stage: str | None = None) -> Scope:
        return Scope(self.org, self.team, self.service, stage)


def owner(ctx: Ctx, service_key: str) -> Owner:
    """The service's owning team and that team's organisation (the team chain in one query)."""
    service = ops_alarms.get_service(ctx, service_key)
    chain = team_chain(ctx, service.owner_team_id)
    team, org = chain[0], chain[-1]
    return Owner(service.key, team.id, team.slug, org.id, org.slug)


def visible_services(ctx: Ctx) -> list[str]:
    """The keys of the services of the caller's organisations."""
    return [service.key for service in ops_alarms.list_services(ctx)]


def load(ctx: Ctx, model: type[T], row_id: int, what: str, *, lock: bool = False) -> T:
    """One row of a deploys table by id, or NotFound naming ``what``. ``lock`` reads it under
    a row lock (``FOR UPDATE``; SQLite serialises writers with ``BEGIN IMMEDIATE``) and
    refreshes it, so two decisions on one request happen one after the other."""
    query = select(model).where(model.id == row_id)  # type: ignore[attr-defined]
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = ctx.session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{what} {row_id} not found", details={"field": "id"})
    return found


def require_engineer(ctx: Ctx, service_key: str) -> Owner:
    """Engineers of the owning team (or above it) change a service's deploys."""
    found = owner(ctx, service_key)
    require_team_role(ctx, found.team_id, Role.ENGINEER)
    return found


def actor(ctx: Ctx) -> approvals.Principal:
    """The acting principal as the two-person rule sees it: bots, machine tokens and the
    local CLI operator are never human, and a credential scoped below leader never leads."""
    return approvals.Principal(
        ctx.principal.username,
        human=ctx.principal.is_human,
        leader_scope=credential_reaches(ctx.principal, Role.LEADER),
    )


def roles_held(ctx: Ctx, team_id: int) -> frozenset[str]:
    """Every role label the acting principal holds on the team (a leader is an engineer too)."""
    held = team_role(ctx, team_id)
    if held is None:
        return frozenset()
    return frozenset(r.label for r in Role if Role.ENGINEER <= r <= held)


def leaders(ctx: Ctx, team_id: int) -> frozenset[str]:
    """People holding leader (or admin) in the owning team or any team above it; bots and
    inactive accounts never count. People, not credentials: what a person did counts as a
    leader's only if it was done with a leader-scoped credential (``actor``)."""
    rows = ctx.session.execute(
        select(User.username)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.team_id.in_(team_lineage(ctx, team_id)),
            Membership.role.in_((Role.LEADER.label, Role.ADMIN.label)),
            User.is_bot.is_(False),
            User.active.is_(True),
        )
    ).scalars()
    return frozenset(rows)


def record(
    ctx: Ctx,
    kind: str,
    service: str,
    *,
    stage: str | None = None,
    digest: str | None = None,
    object_type: str = "deploys_service",
    object_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    event: bool = True,
) -> None:
    """One change: the service's timeline entry, the audit record and the ``deploys.<kind>``
    event, all in the caller's transaction."""
    payload = {"service": service, "stage": stage, "digest": digest, **(details or {})}
    ctx.session.add(
        TimelineEntry(
            service_key=service,
            stage=stage,
            digest=digest,
            kind=kind,
            actor=ctx.principal.actor,
            at=ctx.now,
            details=details or {},
        )
    )
    ctx.session.flush()
    audit.record(
        ctx,
        f"deploys.{kind}",
        object_type,
        object_id if object_id is not None else service,
        before=before,
        after=after,
        details=payload,
    )
    if event:
        events.emit(ctx, f"deploys.{kind}", object_type, object_id or service, payload)


@dataclass(frozen=True)
class Change:
    """One change for ``record_many``: the arguments ``record`` takes for one object."""

    service: str
    object_type: str
    object_id: Any
    stage: str | None = None
    after: dict[str, Any] | None = None
    details: dict[str, Any] | None = None


def record_many(ctx: Ctx, kind: str, changes: Sequence[Change]) -> None:
    """``record`` for many changes of one kind, in order, with bulk INSERTs: an iCalendar
    import of two thousand windows writes its history in tens of milliseconds, not seconds
    (the unit of work holds the database's write lock meanwhile)."""
    at, actor_name = ctx.now, ctx.principal.actor
    payloads = [
        {"service": c.service, "stage": c.stage, "digest": None, **(c.details or {})}
        for c in changes
    ]
    ctx.session.flush()
    bulk_insert(
        ctx.session,
        TimelineEntry.__table__,
        [
            {
                "service_key": c.service,
                "stage": c.stage,
                "digest": None,
                "kind": kind,
                "actor": actor_name,
                "at": at,
                "details": c.details or {},
            }
            for c in changes
        ],
    )
    action = f"deploys.{kind}"
    audit.record_many(
        ctx,
        [
            audit.Entry(action, c.object_type, c.object_id, None, c.after, payload)
            for c, payload in zip(changes, payloads, strict=True)
        ],
    )
    events.emit_many(
        ctx,
        [
            events.Emitted(action, c.object_type, c.object_id, payload)
            for c, payload in zip(changes, payloads, strict=True)
        ],
    )
