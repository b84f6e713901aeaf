"""Identity domain: roles, principals and the pure rules that relate them."""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass


class Role(enum.IntEnum):
    """Roles per team, ordered: each role may do everything the ones below it may."""

    VIEWER = 1
    ENGINEER = 2
    LEADER = 3
    ADMIN = 4

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise ValueError(f"unknown role {value!r}; expected one of: {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES = [r.label for r in Role]


# An actor is stored in 200-character columns everywhere: a username (at most 64) plus
# "[token:…]" must fit, so token names are at most 100 characters.
TOKEN_NAME_MAX = 100


@dataclass(frozen=True)
class Principal:
    """Who is acting: a person through a web session, anyone through an API token, or the
    local operator through the CLI (``system``)."""

    user_id: int | None
    username: str
    via: str  # "session" | "token" | "system" | "anonymous"
    is_site_admin: bool = False
    is_bot: bool = False
    token_id: int | None = None
    token_name: str | None = None
    # The most the credential may do, whatever the user may do.
    scope: Role = Role.ADMIN

    @property
    def actor(self) -> str:
        if self.via == "token":
            # Tokens named before the limit existed are cut, not refused, so they still work.
            return f"{self.username}[token:{(self.token_name or '')[:TOKEN_NAME_MAX]}]"
        return self.username

    @property
    def is_authenticated(self) -> bool:
        return self.via != "anonymous"

    @property
    def is_human(self) -> bool:
        """Humans act through web sessions or tokens of human users; the CLI operator and bots
        never count where a rule asks for people (the two-person rule)."""
        return self.via in ("session", "token") and not self.is_bot

    def capped(self, role: Role | None) -> Role | None:
        """The role the principal holds once the credential's scope is applied."""
        if role is None:
            return None
        return Role(min(role, self.scope))


ANONYMOUS = Principal(user_id=None, username="anonymous", via="anonymous", scope=Role.VIEWER)


def system_principal(name: str = "cli") -> Principal:
    return Principal(user_id=None, username=f"system:{name}", via="system", is_site_admin=True)


USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

TOKEN_PREFIX = "mech_"


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)
