"""A demo organisation a new user can explore: teams, people in every role, a bot with
a token. Each mechanism adds its own demo data through ``extend``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from mechanisms.core import accounts
from mechanisms.core.clock import Clock, SystemClock
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.identity import Principal, system_principal
from mechanisms.core.tables import ApiToken

DEMO_PASSWORD = "mechanisms-demo"
DEMO_TOKEN_NAME = "demo"

ORG = ("acme", "Acme Corporation")
TEAMS = [
    ("platform", "Platform"),
    ("payments", "Payments"),
    ("search", "Search"),
]
# username, display name, [(team, role)], site admin
PEOPLE = [
    ("alice", "Alice Admin", [("acme", "admin")], True),
    ("oliver", "Oliver Org-Leader", [("acme", "leader")], False),
    ("lena", "Lena Lead", [("payments", "leader")], False),
    ("erin", "Erin Engineer", [("payments", "engineer")], False),
    ("evan", "Evan Engineer", [("platform", "engineer")], False),
    ("sam", "Sam Search", [("search", "engineer")], False),
    ("vera", "Vera Viewer", [("acme", "viewer")], False),
]
BOT = ("ci-bot", "CI pipeline", [("platform", "engineer")])


@dataclass
class DemoInfo:
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # username, password, role
    token: str = ""
    token_user: str = ""
    created: bool = False


Extension = Callable[[Ctx], None]
_extensions: list[Extension] = []


def extend(extension: Extension) -> Extension:
    """Mechanisms register their demo data; it runs once, when the org is first seeded."""
    _extensions.append(extension)
    return extension


def acting_as(ctx: Ctx, username: str, at: datetime) -> Ctx:
    """The demo person ``username`` acting at ``at``, as through a web session (rules that
    count people, such as break-glass's two-person rule, count them)."""
    user = accounts.get_user(ctx, username)
    principal = Principal(user.id, user.username, "session", is_site_admin=user.is_site_admin)
    return Ctx(ctx.session, principal, at)


def seed(db: Database, clock: Clock | None = None) -> DemoInfo:
    clock = clock or SystemClock()
    info = DemoInfo()
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("demo"), clock.now())
        if accounts.find_team(session, ORG[0]) is None:
            _seed_org(ctx)
            for extension in _extensions:
                extension(ctx)
            info.created = True
        info.token_user = "alice"
        info.token = _fresh_demo_token(ctx, info.token_user)
    info.logins = [
        (
            username,
            DEMO_PASSWORD,
            ", ".join(f"{role} of {team}" for team, role in roles)
            + (" · site admin" if admin else ""),
        )
        for username, _name, roles, admin in PEOPLE
    ]
    return info


def _seed_org(ctx: Ctx) -> None:
    accounts.create_team(ctx, ORG[0], ORG[1])
    for slug, name in TEAMS:
        accounts.create_team(ctx, slug, name, parent=ORG[0])
    for username, name, roles, admin in PEOPLE:
        accounts.create_user(ctx, username, name, password=DEMO_PASSWORD, is_site_admin=admin)
        for team, role in roles:
            accounts.set_membership(ctx, team, username, role)
    bot_name, bot_display, bot_roles = BOT
    accounts.create_user(ctx, bot_name, bot_display, is_bot=True)
    for team, role in bot_roles:
        accounts.set_membership(ctx, team, bot_name, role)


def _fresh_demo_token(ctx: Ctx, username: str) -> str:
    """One live demo token at a time: each start revokes the last and prints a new one."""
    user = accounts.get_user(ctx, username)
    for token in ctx.session.execute(
        select(ApiToken).where(
            ApiToken.user_id == user.id,
            ApiToken.name == DEMO_TOKEN_NAME,
            ApiToken.revoked_at.is_(None),
        )
    ).scalars():
        accounts.revoke_token(ctx, token.id)
    _row, secret = accounts.create_token(ctx, username, DEMO_TOKEN_NAME, "admin")
    return secret
