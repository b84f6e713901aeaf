"""Identity service: users, teams, memberships, API tokens and web sessions."""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mechanisms.core import audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from mechanisms.core.identity import (
    SLUG_RE,
    TOKEN_NAME_MAX,
    USERNAME_RE,
    Principal,
    Role,
    new_api_token,
    new_session_secret,
    token_digest,
)
from mechanisms.core.permissions import (
    forget_tenancy,
    organisation_of,
    require_site_role,
    require_team_role,
    tenancy,
    visible_teams_filter,
)
from mechanisms.core.tables import ApiToken, Membership, Team, User, WebSession

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8
# Writing last_used_at on every request would turn reads into writes.
TOKEN_USE_RESOLUTION = timedelta(minutes=5)


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _field_error(
            "password", f"password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if "\x00" in password:
        raise _field_error("password", "password must not contain NUL characters")


def _check_text(field: str, value: str, max_len: int) -> str:
    value = value.strip()
    if not value:
        raise _field_error(field, f"{field} must not be empty")
    if len(value) > max_len:
        raise _field_error(field, f"{field} must have at most {max_len} characters")
    if "\x00" in value:
        raise _field_error(field, f"{field} must not contain NUL characters")
    return value


# Control characters move the cursor or rewrite a terminal line (\x1b[…), bidirectional
# controls (U+202E, U+2066…) make a name read differently from what it is, and line breaks
# forge extra lines in a listing: a token's name shows in audit records and tables.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _check_visible(field: str, value: str) -> str:
    bad = next((ch for ch in value if unicodedata.category(ch) in _INVISIBLE_CATEGORIES), None)
    if bad is not None:
        raise _field_error(
            field,
            f"{field} must not contain control or bidirectional characters (U+{ord(bad):04X})",
        )
    return value


# --- users --------------------------------------------------------------------------


def user_snapshot(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "is_bot": user.is_bot,
        "is_site_admin": user.is_site_admin,
        "active": user.active,
    }


def create_user(
    ctx: Ctx,
    username: str,
    display_name: str | None = None,
    *,
    password: str | None = None,
    email: str | None = None,
    is_bot: bool = False,
    is_site_admin: bool = False,
) -> User:
    require_site_role(ctx, Role.ADMIN)
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise _field_error(
            "username",
            "username must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        )
    if find_user(ctx.session, username) is not None:
        raise Conflict(f"user {username!r} already exists", details={"field": "username"})
    if password is not None:
        _check_password(password)
    if is_bot and password is not None:
        raise _field_error("password", "bots sign in with API tokens, not passwords")
    user = User(
        username=username,
        display_name=_check_text("display_name", display_name or username, 200),
        email=email.strip() if email else None,
        is_bot=is_bot,
        is_site_admin=is_site_admin,
        password_hash=_hasher.hash(password) if password else None,
        active=True,
        created_at=ctx.now,
    )
    ctx.session.add(user)
    ctx.session.flush()
    audit.record(ctx, "user.created", "user", user.id, after=user_snapshot(user))
    events.emit(ctx, "identity.user_created", "user", user.id, user_snapshot(user))
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.execute(
        select(User).where(User.username == username.strip().lower())
    ).scalar_one_or_none()


def named_person(session: Session, name: str) -> User:
    """The account ``name`` designates: its username or its email, trimmed and compared
    case-insensitively. Refused (naming the name) when no account or several answer to it,
    so a rule about a person (an author cannot approve) never rests on a typed string."""
    wanted = name.strip().lower()
    found = list(
        session.execute(
            select(User)
            .where((User.username == wanted) | (func.lower(User.email) == wanted))
            .limit(2)
        ).scalars()
    )
    if len(found) != 1:
        problem = "no account" if not found else "more than one account"
        raise InvalidInput(
            f"{problem} answers to {name.strip()!r}; name a user by username or email",
            code="unknown_person" if not found else "ambiguous_person",
            details={"value": name.strip()},
        )
    return found[0]


def get_user(ctx: Ctx, username: str) -> User:
    user = find_user(ctx.session, username)
    if user is None:
        raise NotFound(f"user {username!r} not found", details={"field": "username"})
    return user


def list_users(ctx: Ctx) -> list[User]:
    """Everyone for site administrators; for others, the people of their organisations."""
    require_site_role(ctx, Role.VIEWER)
    query = select(User).order_by(User.username)
    if tenancy(ctx).team_ids is not None:
        colleagues = select(Membership.user_id).where(visible_teams_filter(ctx, Membership.team_id))
        query = query.where(User.id.in_(colleagues) | (User.id == ctx.principal.user_id))
    return list(ctx.session.execute(query).scalars())


def get_visible_user(ctx: Ctx, username: str) -> User:
    """A user the caller may see: themselves or someone of their organisations."""
    require_site_role(ctx, Role.VIEWER)
    user = get_user(ctx, username)
    if user not in list_users(ctx):
        raise NotFound(f"user {username!r} not found", details={"field": "username"})
    return user


def set_password(ctx: Ctx, username: str, password: str) -> None:
    user = get_user(ctx, username)
    if ctx.principal.user_id != user.id:
        require_site_role(ctx, Role.ADMIN)
    if user.is_bot:
        raise _field_error("password", "bots sign in with API tokens, not passwords")
    _check_password(password)
    user.password_hash = _hasher.hash(password)
    ctx.session.flush()
    audit.record(ctx, "user.password_set", "user", user.id)


# --- teams and memberships ----------------------------------------------------------


def team_snapshot(team: Team) -> dict[str, Any]:
    return {"id": team.id, "slug": team.slug, "name": team.name, "parent_id": team.parent_id}


def find_team(session: Session, slug: str) -> Team | None:
    return session.execute(
        select(Team).where(Team.slug == slug.strip().lower())
    ).scalar_one_or_none()


def get_team(ctx: Ctx, slug: str) -> Team:
    team = find_team(ctx.session, slug)
    if team is None:
        raise NotFound(f"team {slug!r} not found", details={"field": "team"})
    return team


def create_team(ctx: Ctx, slug: str, name: str | None = None, parent: str | None = None) -> Team:
    """Create a team; without a parent it is an organisation (site admins only)."""
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise _field_error(
            "slug",
            "slug must be 1-64 characters of a-z, 0-9 or '-', starting with a letter or digit",
        )
    parent_team = get_team(ctx, parent) if parent else None
    if parent_team is None:
        require_site_role(ctx, Role.ADMIN)
    else:
        require_team_role(ctx, parent_team.id, Role.ADMIN)
    if find_team(ctx.session, slug) is not None:
        raise Conflict(f"team {slug!r} already exists", details={"field": "slug"})
    team = Team(
        slug=slug,
        name=_check_text("name", name or slug, 200),
        parent_id=parent_team.id if parent_team else None,
        created_at=ctx.now,
    )
    ctx.session.add(team)
    ctx.session.flush()
    forget_tenancy(ctx)
    audit.record(
        ctx,
        "team.created",
        "team",
        team.id,
        after=team_snapshot(team),
        org_id=organisation_of(ctx, team.id),
    )
    events.emit(ctx, "identity.team_created", "team", team.id, team_snapshot(team))
    return team


def list_teams(ctx: Ctx) -> list[Team]:
    require_site_role(ctx, Role.VIEWER)
    query = select(Team).where(visible_teams_filter(ctx, Team.id)).order_by(Team.slug)
    return list(ctx.session.execute(query).scalars())


def set_membership(ctx: Ctx, team_slug: str, username: str, role: str) -> Membership:
    """Add a person to a team with a role, or change their role there."""
    team = get_team(ctx, team_slug)
    require_team_role(ctx, team.id, Role.ADMIN)
    user = get_user(ctx, username)
    try:
        parsed = Role.parse(role)
    except ValueError as exc:
        raise _field_error("role", str(exc)) from None
    membership = ctx.session.execute(
        select(Membership).where(Membership.team_id == team.id, Membership.user_id == user.id)
    ).scalar_one_or_none()
    before = {"role": membership.role} if membership else None
    if membership is None:
        membership = Membership(
            team_id=team.id, user_id=user.id, role=parsed.label, created_at=ctx.now
        )
        ctx.session.add(membership)
    else:
        membership.role = parsed.label
    ctx.session.flush()
    forget_tenancy(ctx)
    audit.record(
        ctx,
        "team.member_set",
        "team",
        team.id,
        before=before,
        after={"role": parsed.label},
        details={"user": user.username},
        org_id=organisation_of(ctx, team.id),
    )
    events.emit(
        ctx,
        "identity.member_set",
        "team",
        team.id,
        {
            "team": team.slug,
            "user": user.username,
            "role": parsed.label,
            "previous_role": before and before["role"],
        },
    )
    return membership


def remove_membership(ctx: Ctx, team_slug: str, username: str) -> None:
    team = get_team(ctx, team_slug)
    require_team_role(ctx, team.id, Role.ADMIN)
    user = get_user(ctx, username)
    membership = ctx.session.execute(
        select(Membership).where(Membership.team_id == team.id, Membership.user_id == user.id)
    ).scalar_one_or_none()
    if membership is None:
        raise NotFound(f"{username} is not a member of {team_slug}")
    ctx.session.delete(membership)
    ctx.session.flush()
    forget_tenancy(ctx)
    audit.record(
        ctx,
        "team.member_removed",
        "team",
        team.id,
        before={"role": membership.role},
        details={"user": user.username},
        org_id=organisation_of(ctx, team.id),
    )
    events.emit(
        ctx,
        "identity.member_removed",
        "team",
        team.id,
        {"team": team.slug, "user": user.username, "previous_role": membership.role},
    )


def team_members(ctx: Ctx, team_slug: str) -> list[tuple[User, str]]:
    team = get_team(ctx, team_slug)
    require_team_role(ctx, team.id, Role.VIEWER)
    rows = ctx.session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.team_id == team.id)
        .order_by(User.username)
    )
    return [(user, role) for user, role in rows]


def memberships_of(session: Session, user_id: int) -> list[tuple[Team, str]]:
    rows = session.execute(
        select(Team, Membership.role)
        .join(Membership, Membership.team_id == Team.id)
        .where(Membership.user_id == user_id)
        .order_by(Team.slug)
    )
    return [(team, role) for team, role in rows]


# --- API tokens ---------------------------------------------------------------------


def token_snapshot(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "user_id": token.user_id,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked": token.revoked_at is not None,
    }


def _require_self_or_admin(ctx: Ctx, user_id: int) -> None:
    """People manage their own tokens; admins manage everyone's. A token acting on its own
    user's tokens must itself be allowed to change things."""
    if ctx.principal.user_id != user_id:
        require_site_role(ctx, Role.ADMIN)
    elif ctx.principal.via == "token":
        require_site_role(ctx, Role.ENGINEER)


def create_token(
    ctx: Ctx,
    username: str,
    name: str,
    scope: str = "engineer",
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create an API token; returns the stored row and the token itself, shown this once."""
    user = get_user(ctx, username)
    _require_self_or_admin(ctx, user.id)
    try:
        parsed_scope = Role.parse(scope)
    except ValueError as exc:
        raise _field_error("scope", str(exc)) from None
    if parsed_scope > ctx.principal.scope:
        raise Forbidden(
            f"a {ctx.principal.scope.label}-scoped credential cannot create a {parsed_scope.label}-scoped token"
        )
    if expires_at is not None and expires_at <= ctx.now:
        raise _field_error("expires_at", "expires_at must be in the future")
    secret = new_api_token()
    token = ApiToken(
        user_id=user.id,
        name=_check_visible("name", _check_text("name", name, TOKEN_NAME_MAX)),
        prefix=secret[:12],
        token_hash=token_digest(secret),
        scope=parsed_scope.label,
        created_at=ctx.now,
        expires_at=expires_at,
    )
    ctx.session.add(token)
    ctx.session.flush()
    audit.record(
        ctx,
        "token.created",
        "api_token",
        token.id,
        after=token_snapshot(token),
        details={"user": user.username},
    )
    return token, secret


def list_tokens(ctx: Ctx, username: str) -> list[ApiToken]:
    user = get_user(ctx, username)
    if ctx.principal.user_id != user.id:
        require_site_role(ctx, Role.ADMIN)
    return list(
        ctx.session.execute(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).scalars()
    )


def revoke_token(ctx: Ctx, token_id: int) -> ApiToken:
    token = ctx.session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"token {token_id} not found")
    _require_self_or_admin(ctx, token.user_id)
    if token.revoked_at is None:
        before = token_snapshot(token)
        token.revoked_at = ctx.now
        ctx.session.flush()
        audit.record(
            ctx, "token.revoked", "api_token", token.id, before=before, after=token_snapshot(token)
        )
    return token


@dataclass
class TokenCheck:
    principal: Principal
    token_id: int
    # True when last_used_at is stale enough to be worth a write.
    touch: bool


def check_token(session: Session, secret: str, now: datetime) -> TokenCheck:
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_digest(secret))
    ).first()
    if row is None:
        raise NotAuthenticated("the API token is not valid")
    token, user = row
    if token.revoked_at is not None:
        raise NotAuthenticated("the API token was revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("the API token has expired")
    if not user.active:
        raise NotAuthenticated("the token's user is deactivated")
    principal = Principal(
        user_id=user.id,
        username=user.username,
        via="token",
        is_site_admin=user.is_site_admin,
        is_bot=user.is_bot,
        token_id=token.id,
        token_name=token.name,
        scope=Role.parse(token.scope),
    )
    touch = token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RESOLUTION
    return TokenCheck(principal, token.id, touch)


def touch_token(session: Session, token_id: int, now: datetime) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = now


# --- web sessions -------------------------------------------------------------------


@dataclass
class SignedIn:
    principal: Principal
    csrf_token: str
    session_id: int


def _principal_for(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        via="session",
        is_site_admin=user.is_site_admin,
        is_bot=user.is_bot,
    )


_dummy_hashes: dict[int, str] = {}


def _dummy_hash() -> str:
    """A hash made with the current hasher's cost (tests swap in a cheaper hasher)."""
    key = id(_hasher)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hashes[key]


def login(ctx: Ctx, username: str, password: str, lifetime: timedelta) -> tuple[str, SignedIn]:
    """Check a password and open a session; returns the cookie value and the signed-in state."""
    # A username with NUL cannot exist, and PostgreSQL would refuse to even compare it.
    user = find_user(ctx.session, username) if username.strip() and "\x00" not in username else None
    if user is not None and user.active and user.password_hash and not user.is_bot:
        stored_hash = user.password_hash
    else:
        # Checking against a dummy hash takes as long as a real check, so the answer's
        # time does not tell whether the username exists.
        user, stored_hash = None, _dummy_hash()
    try:
        valid = _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        valid = False
    if not valid or user is None or user.password_hash is None:
        raise NotAuthenticated("wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    cookie = new_session_secret()
    web_session = WebSession(
        user_id=user.id,
        session_hash=token_digest(cookie),
        csrf_token=new_session_secret(),
        created_at=ctx.now,
        expires_at=ctx.now + lifetime,
    )
    ctx.session.add(web_session)
    ctx.session.flush()
    principal = _principal_for(user)
    ctx.principal = principal
    audit.record(ctx, "user.login", "user", user.id, details={"session": web_session.id})
    return cookie, SignedIn(principal, web_session.csrf_token, web_session.id)


def signed_in(session: Session, cookie: str, now: datetime) -> SignedIn | None:
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.session_hash == token_digest(cookie))
    ).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.ended_at is not None or web_session.expires_at <= now or not user.active:
        return None
    return SignedIn(_principal_for(user), web_session.csrf_token, web_session.id)


def logout(ctx: Ctx, session_id: int) -> None:
    web_session = ctx.session.get(WebSession, session_id)
    if web_session is None or web_session.ended_at is not None:
        return
    web_session.ended_at = ctx.now
    ctx.session.flush()
    audit.record(ctx, "user.logout", "user", web_session.user_id, details={"session": session_id})
