"""HTTP API of the core: who am I, users, teams, tokens, the audit trail, webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from mechanisms.core import accounts, audit, webhooks
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, NotAuthenticated
from mechanisms.core.identity import TOKEN_NAME_MAX, Role
from mechanisms.core.permissions import require_site_role
from mechanisms.core.tables import ApiToken, Team, User
from mechanisms.web.http import (
    BigRowId,
    Input,
    Instant,
    RowId,
    Text,
    UnitOfWorkRoute,
    request_ctx,
)

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)
CtxDep = Annotated[Ctx, Depends(request_ctx)]
RoleName = Literal["viewer", "engineer", "leader", "admin"]


# --- schemas ------------------------------------------------------------------------


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    email: str | None
    is_bot: bool
    is_site_admin: bool
    active: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(**accounts.user_snapshot(user))


class UserIn(Input):
    username: Text = Field(max_length=64)
    display_name: Text | None = Field(default=None, max_length=200)
    email: Text | None = Field(default=None, max_length=320)
    password: Text | None = Field(default=None, max_length=1000)
    is_bot: bool = False
    is_site_admin: bool = False


class MembershipOut(BaseModel):
    team: str
    role: RoleName


class MeOut(BaseModel):
    user: UserOut | None
    via: str
    scope: RoleName
    memberships: list[MembershipOut]


class TeamOut(BaseModel):
    id: int
    slug: str
    name: str
    parent_id: int | None

    @classmethod
    def of(cls, team: Team) -> TeamOut:
        return cls(**accounts.team_snapshot(team))


class TeamIn(Input):
    slug: Text = Field(max_length=64)
    name: Text | None = Field(default=None, max_length=200)
    parent: Text | None = Field(default=None, max_length=64)


class MemberOut(BaseModel):
    username: str
    display_name: str
    role: RoleName


class MemberIn(Input):
    role: RoleName


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scope: RoleName
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            scope=token.scope,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenIn(Input):
    name: Text = Field(min_length=1, max_length=TOKEN_NAME_MAX)
    scope: RoleName = "engineer"
    expires_at: Instant | None = None
    username: Text | None = Field(
        default=None,
        max_length=64,
        description="whose token; defaults to the caller (admins only for others)",
    )


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself; it is shown only in this response")


class AuditOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    change_digest: str
    details: dict[str, Any]
    hash: str


class AuditPage(BaseModel):
    records: list[AuditOut]
    next_before_seq: int | None


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None


class WebhookOut(BaseModel):
    id: int
    url: str
    description: str
    event_types: list[str]
    active: bool
    created_at: datetime


class WebhookIn(Input):
    url: Text = Field(max_length=2000, pattern=r"^https?://[^/?#\s]")
    # Glob patterns (fnmatch) matched against every event: short ones only.
    event_types: list[Annotated[Text, Field(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=100
    )
    description: Text = Field(default="", max_length=500)


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Standard Webhooks signing secret; shown only in this response")


class WebhookPatch(Input):
    active: bool


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    event_type: str
    target: str
    object_key: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status_code: int | None
    delivered_at: datetime | None


# --- routes -------------------------------------------------------------------------


@router.get("/me", response_model=MeOut, tags=["identity"])
def me(ctx: CtxDep) -> MeOut:
    principal = ctx.principal
    if not principal.is_authenticated:
        raise NotAuthenticated("sign in or send an API token")
    user = ctx.session.get(User, principal.user_id) if principal.user_id else None
    memberships = accounts.memberships_of(ctx.session, user.id) if user else []
    return MeOut(
        user=UserOut.of(user) if user else None,
        via=principal.via,
        scope=principal.scope.label,
        memberships=[MembershipOut(team=t.slug, role=r) for t, r in memberships],
    )


@router.get("/users", response_model=list[UserOut], tags=["identity"])
def list_users(ctx: CtxDep) -> list[UserOut]:
    return [UserOut.of(u) for u in accounts.list_users(ctx)]


@router.post("/users", response_model=UserOut, status_code=201, tags=["identity"])
def create_user(body: UserIn, ctx: CtxDep) -> UserOut:
    user = accounts.create_user(
        ctx,
        body.username,
        body.display_name,
        password=body.password,
        email=body.email,
        is_bot=body.is_bot,
        is_site_admin=body.is_site_admin,
    )
    return UserOut.of(user)


@router.get("/users/{username}", response_model=UserOut, tags=["identity"])
def get_user(username: str, ctx: CtxDep) -> UserOut:
    return UserOut.of(accounts.get_visible_user(ctx, username))


@router.get("/teams", response_model=list[TeamOut], tags=["identity"])
def list_teams(ctx: CtxDep) -> list[TeamOut]:
    return [TeamOut.of(t) for t in accounts.list_teams(ctx)]


@router.post("/teams", response_model=TeamOut, status_code=201, tags=["identity"])
def create_team(body: TeamIn, ctx: CtxDep) -> TeamOut:
    return TeamOut.of(accounts.create_team(ctx, body.slug, body.name, body.parent))


@router.get("/teams/{slug}/members", response_model=list[MemberOut], tags=["identity"])
def team_members(slug: str, ctx: CtxDep) -> list[MemberOut]:
    return [
        MemberOut(username=u.username, display_name=u.display_name, role=r)
        for u, r in accounts.team_members(ctx, slug)
    ]


@router.put("/teams/{slug}/members/{username}", response_model=MemberOut, tags=["identity"])
def set_member(slug: str, username: str, body: MemberIn, ctx: CtxDep) -> MemberOut:
    membership = accounts.set_membership(ctx, slug, username, body.role)
    user = accounts.get_user(ctx, username)
    return MemberOut(username=user.username, display_name=user.display_name, role=membership.role)


@router.delete("/teams/{slug}/members/{username}", status_code=204, tags=["identity"])
def remove_member(slug: str, username: str, ctx: CtxDep) -> None:
    accounts.remove_membership(ctx, slug, username)


@router.get("/tokens", response_model=list[TokenOut], tags=["identity"])
def list_tokens(
    ctx: CtxDep, username: Annotated[str | None, Query(max_length=64)] = None
) -> list[TokenOut]:
    owner = username or _caller_username(ctx)
    return [TokenOut.of(t) for t in accounts.list_tokens(ctx, owner)]


def _caller_username(ctx: Ctx) -> str:
    if ctx.principal.user_id is None:
        require_site_role(ctx, Role.VIEWER)
        raise InvalidInput("name a user: this caller is not a user", details={"field": "username"})
    return ctx.principal.username


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["identity"])
def create_token(body: TokenIn, ctx: CtxDep) -> TokenCreated:
    owner = body.username or _caller_username(ctx)
    token, secret = accounts.create_token(ctx, owner, body.name, body.scope, body.expires_at)
    return TokenCreated(**TokenOut.of(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut, tags=["identity"])
def revoke_token(token_id: RowId, ctx: CtxDep) -> TokenOut:
    return TokenOut.of(accounts.revoke_token(ctx, token_id))


@router.get("/audit", response_model=AuditPage, tags=["audit"])
def browse_audit(
    ctx: CtxDep,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[Instant | None, Query()] = None,
    until: Annotated[Instant | None, Query()] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    records = audit.browse_for(
        ctx,
        audit.AuditFilter(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            since=since,
            until=until,
            before_seq=before_seq,
            limit=limit,
        ),
    )
    next_seq = records[-1].seq if len(records) == limit else None
    return AuditPage(
        records=[AuditOut(**audit.to_dict(r)) for r in records], next_before_seq=next_seq
    )


@router.get("/audit/verify", response_model=VerifyOut, tags=["audit"])
def verify_audit(ctx: CtxDep) -> VerifyOut:
    require_site_role(ctx, Role.ADMIN)
    result = audit.verify(ctx.session)
    return VerifyOut(
        ok=result.ok,
        checked=result.checked,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
    )


@router.get("/webhooks", response_model=list[WebhookOut], tags=["events"])
def list_webhooks(ctx: CtxDep) -> list[WebhookOut]:
    return [WebhookOut(**webhooks.snapshot(h)) for h in webhooks.list_all(ctx)]


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, tags=["events"])
def create_webhook(body: WebhookIn, ctx: CtxDep) -> WebhookCreated:
    hook, secret = webhooks.create(ctx, body.url, body.event_types, body.description)
    return WebhookCreated(**webhooks.snapshot(hook), secret=secret)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["events"])
def patch_webhook(webhook_id: RowId, body: WebhookPatch, ctx: CtxDep) -> WebhookOut:
    return WebhookOut(**webhooks.snapshot(webhooks.set_active(ctx, webhook_id, body.active)))


@router.get("/deliveries", response_model=list[DeliveryOut], tags=["events"])
def list_deliveries(
    ctx: CtxDep,
    status: Literal["pending", "delivered", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    return [DeliveryOut(**d) for d in webhooks.list_deliveries(ctx, status, limit)]


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryOut, tags=["events"])
def retry_delivery(delivery_id: BigRowId, ctx: CtxDep) -> DeliveryOut:
    webhooks.retry_dead(ctx, delivery_id)
    return DeliveryOut(**webhooks.get_delivery(ctx, delivery_id))
