"""Metric ingest keys: a credential that writes samples for one service and nothing else,
for collectors and SDKs that should not hold a person's token. Leaders of the service's
owning team create, rotate and revoke them; each key is shown once and kept as a SHA-256
digest; every change is audited."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from mechanisms.core import audit
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from mechanisms.core.identity import Role, token_digest
from mechanisms.core.permissions import require_site_role, require_team_role
from mechanisms.ops import alarms, alerts
from mechanisms.ops.tables import IngestKey, OpsService

PREFIX = "mik_"  # recognisable in a leaked config file or a secret scanner's rules
HEADER = "X-Mech-Ingest-Key"
NAME_MAX = 100


def describe(key: IngestKey, service: OpsService) -> dict[str, Any]:
    """What people see of a key (never the key): an integration key's fields, and who made it."""
    return {**alerts.key_snapshot(key, service), "created_by": key.created_by}  # type: ignore[arg-type]


def _led_service(ctx: Ctx, service_key: str) -> OpsService:
    """The service, when the caller leads its owning team (who hands out its credentials)."""
    require_site_role(ctx, Role.ENGINEER)
    service = alarms.get_service(ctx, service_key)
    require_team_role(ctx, service.owner_team_id, Role.LEADER)
    return service


def _existing(ctx: Ctx, service: OpsService, name: str) -> IngestKey:
    found = ctx.session.execute(
        select(IngestKey).where(IngestKey.service_id == service.id, IngestKey.name == name)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"service {service.key!r} has no ingest key named {name!r}", details={"field": "name"}
        )
    return found


def _new_secret(key: IngestKey) -> str:
    secret = PREFIX + secrets.token_urlsafe(24)
    key.digest, key.hint = token_digest(secret), secret[: len(PREFIX) + 6]
    return secret


def create(ctx: Ctx, service_key: str, name: str) -> tuple[IngestKey, OpsService, str]:
    """A new key for the service; the secret is returned this once."""
    service = _led_service(ctx, service_key)
    name = name.strip()
    if not name or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"name: 1-{NAME_MAX} printable characters", details={"field": "name"})
    taken = select(IngestKey.id).where(IngestKey.service_id == service.id, IngestKey.name == name)
    if ctx.session.execute(taken).first():
        raise Conflict(
            f"service {service.key!r} already has an ingest key named {name!r}",
            details={"field": "name"},
        )
    key = IngestKey(
        service_id=service.id, name=name, created_by=ctx.principal.actor, created_at=ctx.now
    )
    secret = _new_secret(key)
    ctx.session.add(key)
    ctx.session.flush()
    audit.record(ctx, "ops.ingest_key_created", "ingest_key", key.id, after=describe(key, service))
    return key, service, secret


def rotate(ctx: Ctx, service_key: str, name: str) -> tuple[IngestKey, OpsService, str]:
    """A new secret for the key; the old one stops working at once."""
    service = _led_service(ctx, service_key)
    key = _existing(ctx, service, name)
    before = describe(key, service)
    secret = _new_secret(key)
    key.rotated_at = ctx.now
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.ingest_key_rotated",
        "ingest_key",
        key.id,
        before=before,
        after=describe(key, service),
    )
    return key, service, secret


def revoke(ctx: Ctx, service_key: str, name: str) -> None:
    service = _led_service(ctx, service_key)
    key = _existing(ctx, service, name)
    before = describe(key, service)
    ctx.session.delete(key)
    ctx.session.flush()
    audit.record(ctx, "ops.ingest_key_revoked", "ingest_key", key.id, before=before)


def list_keys(ctx: Ctx, service_key: str) -> list[tuple[IngestKey, OpsService]]:
    require_site_role(ctx, Role.VIEWER)
    service = alarms.get_service(ctx, service_key)
    keys = select(IngestKey).where(IngestKey.service_id == service.id).order_by(IngestKey.name)
    return [(k, service) for k in ctx.session.execute(keys).scalars()]


def service_of(ctx: Ctx, secret: str) -> OpsService:
    """The service an ingest key writes for; 401 for a key that is not (or no longer) one."""
    found = ctx.session.execute(
        select(OpsService)
        .join(IngestKey, IngestKey.service_id == OpsService.id)
        .where(IngestKey.digest == token_digest(secret))
    ).scalar_one_or_none()
    if found is None:
        raise NotAuthenticated(f"the {HEADER} is not a valid ingest key")
    return found
