"""Authorisation, checked in the service layer so every interface gets the same answer.

A person's role in a team is the highest role they hold in that team or any team
above it (an organisation's leader leads every team in it); site administrators
are admins everywhere. Whatever the person may do, a credential may do no more
than its scope: a viewer-scoped token can read and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, ColumnElement, Select, bindparam, literal, select, true
from sqlalchemy.orm import Session

from mechanisms.core.context import Ctx
from mechanisms.core.errors import Forbidden, NotAuthenticated, NotFound
from mechanisms.core.identity import Principal, Role
from mechanisms.core.tables import Membership, Team

# Deeper than any real organisation; bounds the recursive query should the tree ever loop.
MAX_TEAM_DEPTH = 64


def team_chain_cte(team_id: ColumnElement[int]) -> CTE:
    """A recursive CTE of (id, parent_id, slug, depth): the team ``team_id`` names (a bound
    parameter or a subquery) at depth 0 and every team above it."""
    chain = (
        select(Team.id, Team.parent_id, Team.slug, literal(0).label("depth"))
        .where(Team.id == team_id)
        .cte("team_chain", recursive=True)
    )
    return chain.union_all(
        select(Team.id, Team.parent_id, Team.slug, chain.c.depth + 1)
        .join(chain, Team.id == chain.c.parent_id)
        .where(chain.c.depth < MAX_TEAM_DEPTH)
    )


def _team_chain_query() -> Select[tuple[Team]]:
    chain = team_chain_cte(bindparam("team_id"))
    return select(Team).join(chain, Team.id == chain.c.id).order_by(chain.c.depth)


# Built once: constructing a recursive CTE costs more CPU than running it (about a
# millisecond), and permission checks and the deploys gate ask for a chain on every call.
_TEAM_CHAIN = _team_chain_query()


def team_chain(ctx: Ctx, team_id: int) -> list[Team]:
    """The team and every team above it, nearest first, in one query whatever the depth."""
    rows = ctx.session.execute(_TEAM_CHAIN, {"team_id": team_id}).scalars()
    found: list[Team] = []
    for team in rows:
        if team in found:
            break  # a loop in the tree: each team once, as far as the first repeat
        found.append(team)
    if not found:
        raise NotFound(f"team {team_id} not found")
    return found


def team_lineage(ctx: Ctx, team_id: int) -> list[int]:
    """The team and every team above it, nearest first."""
    return [team.id for team in team_chain(ctx, team_id)]


def organisation_of(ctx: Ctx, team_id: int) -> int:
    """The organisation (root team) a team belongs to."""
    return team_chain(ctx, team_id)[-1].id


def _held_role(ctx: Ctx, principal: Principal, team_id: int) -> Role | None:
    if principal.is_site_admin:
        return Role.ADMIN
    if principal.user_id is None:
        return None
    roles = ctx.session.execute(
        select(Membership.role).where(
            Membership.user_id == principal.user_id,
            Membership.team_id.in_(team_lineage(ctx, team_id)),
        )
    ).scalars()
    held = [Role.parse(r) for r in roles]
    return max(held) if held else None


def credential_reaches(principal: Principal, role: Role) -> bool:
    """Whether the credential's scope reaches ``role``. ``team_role`` and ``site_role`` cap
    by it already; a rule that reads a person's role some other way (a roster of a team's
    leaders, a site-admin flag) asks this too, so a leader's engineer-scoped token never
    acts as a leader."""
    return principal.capped(role) == role


def team_role(ctx: Ctx, team_id: int, principal: Principal | None = None) -> Role | None:
    principal = principal or ctx.principal
    return principal.capped(_held_role(ctx, principal, team_id))


def _require_authenticated(ctx: Ctx) -> None:
    if not ctx.principal.is_authenticated:
        raise NotAuthenticated("sign in or send an API token")


def _refuse(ctx: Ctx, needed: Role, where: str) -> Forbidden:
    scope_note = ""
    if ctx.principal.scope < needed:
        scope_note = f" (this credential is limited to {ctx.principal.scope.label})"
    return Forbidden(
        f"{ctx.principal.actor} needs the {needed.label} role {where}{scope_note}",
        details={"needed_role": needed.label},
    )


def require_team_role(ctx: Ctx, team_id: int, needed: Role) -> Role:
    _require_authenticated(ctx)
    held = team_role(ctx, team_id)
    if held is None or held < needed:
        team = ctx.session.get(Team, team_id)
        raise _refuse(ctx, needed, f"in team {team.slug if team else team_id}")
    return held


def site_role(ctx: Ctx) -> Role | None:
    """The highest role held anywhere; only site administrators hold the site's admin role."""
    principal = ctx.principal
    if principal.is_site_admin:
        return principal.capped(Role.ADMIN)
    if principal.user_id is None:
        return None
    roles = [
        Role.parse(r)
        for r in ctx.session.execute(
            select(Membership.role).where(Membership.user_id == principal.user_id)
        ).scalars()
    ]
    best = min(max(roles), Role.LEADER) if roles else Role.VIEWER
    return principal.capped(best)


def require_site_role(ctx: Ctx, needed: Role) -> None:
    """For actions that belong to no single team (webhooks, users, the audit trail)."""
    _require_authenticated(ctx)
    if needed == Role.VIEWER and ctx.principal.user_id is not None:
        # Every user holds at least viewer on the site (``site_role`` never answers less
        # for one, whatever their memberships and their credential's scope), so the
        # commonest check, made by every read, needs no query.
        return
    held = site_role(ctx)
    if held is None or held < needed:
        raise _refuse(ctx, needed, "for the whole site")


# --- tenancy: organisations are separate -----------------------------------------------


@dataclass(frozen=True)
class Tenancy:
    """What a principal may see: the teams of the organisations they belong to (a membership
    anywhere in an organisation's tree makes one a member of it). ``None``: every team
    (site administrators and the local operator)."""

    org_ids: frozenset[int] | None
    team_ids: frozenset[int] | None
    team_slugs: frozenset[str] | None

    def sees_team(self, team_id: int | None) -> bool:
        return self.team_ids is None or team_id in self.team_ids

    def sees_team_slug(self, slug: str | None) -> bool:
        return self.team_slugs is None or slug in self.team_slugs


EVERYTHING = Tenancy(None, None, None)
_TENANCY_KEY = "mechanisms.tenancy"


def _roots(parents: dict[int, int | None]) -> dict[int, int]:
    """Each team's organisation, following parents at most MAX_TEAM_DEPTH steps."""
    roots = {}
    for team_id in parents:
        current = team_id
        for _ in range(MAX_TEAM_DEPTH):
            parent = parents.get(current)
            if parent is None:
                break
            current = parent
        roots[team_id] = current
    return roots


def tenancy_of(session: Session, principal: Principal) -> Tenancy:
    if principal.is_site_admin:
        return EVERYTHING
    if principal.user_id is None:
        return Tenancy(frozenset(), frozenset(), frozenset())
    teams = session.execute(select(Team.id, Team.parent_id, Team.slug)).all()
    roots = _roots({team.id: team.parent_id for team in teams})
    member_of = session.execute(
        select(Membership.team_id).where(Membership.user_id == principal.user_id)
    ).scalars()
    orgs = frozenset(roots[team_id] for team_id in member_of if team_id in roots)
    visible = [team for team in teams if roots[team.id] in orgs]
    return Tenancy(
        orgs, frozenset(team.id for team in visible), frozenset(team.slug for team in visible)
    )


def tenancy(ctx: Ctx) -> Tenancy:
    """The caller's tenancy, worked out once per unit of work (the session lives that long)."""
    cache = ctx.session.info.setdefault(_TENANCY_KEY, {})
    key = (ctx.principal.user_id, ctx.principal.is_site_admin)
    if key not in cache:
        cache[key] = tenancy_of(ctx.session, ctx.principal)
    return cache[key]


def forget_tenancy(ctx: Ctx) -> None:
    """After a change to the tree or to memberships, work tenancies out afresh."""
    ctx.session.info.pop(_TENANCY_KEY, None)


def visible_teams_filter(ctx: Ctx, team_column: ColumnElement[Any]) -> ColumnElement[bool]:
    """A WHERE clause for list queries: rows owned by a team of the caller's organisations."""
    team_ids = tenancy(ctx).team_ids
    return true() if team_ids is None else team_column.in_(sorted(team_ids))


def visible_slugs_filter(ctx: Ctx, slug_column: ColumnElement[Any]) -> ColumnElement[bool]:
    """The same, for rows that name their team or organisation by slug."""
    slugs = tenancy(ctx).team_slugs
    return true() if slugs is None else slug_column.in_(sorted(slugs))


def require_visible_team(ctx: Ctx, team_id: int | None, what: str) -> None:
    """Refuse an object of another organisation as if it did not exist: a caller of another
    tenant learns nothing, not even that the name is taken."""
    if not tenancy(ctx).sees_team(team_id):
        raise NotFound(f"{what} not found")


def single_org_of(ctx: Ctx) -> int | None:
    """The caller's organisation when they belong to exactly one: where their actions land."""
    orgs = tenancy(ctx).org_ids
    return next(iter(orgs)) if orgs is not None and len(orgs) == 1 else None
