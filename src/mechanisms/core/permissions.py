"""Authorisation, checked in the service layer so every interface gets the same answer.

A person's role in a team is the highest role they hold in that team or any team
above it (an organisation's leader leads every team in it); site administrators
are admins everywhere. Whatever the person may do, a credential may do no more
than its scope: a viewer-scoped token can read and nothing else.
"""

from __future__ import annotations

from sqlalchemy import CTE, ColumnElement, Select, bindparam, literal, select

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
