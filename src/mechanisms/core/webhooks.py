"""Outbound webhooks, signed to the Standard Webhooks specification.

Each request carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` under the endpoint's
secret), so receivers can verify them with any Standard Webhooks library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Select, func, select

from mechanisms.core import audit, outbound
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.events import EventMessage
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role
from mechanisms.core.tables import Delivery, Event, Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(
        _secret_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_body(message: EventMessage) -> str:
    return json.dumps(
        {
            "type": message.type,
            "timestamp": message.occurred_at.isoformat(),
            "data": message.as_json(),
        },
        separators=(",", ":"),
    )


@dataclass
class SendResult:
    ok: bool
    status_code: int | None
    error: str | None


def send(client: httpx.Client, webhook: Webhook, message: EventMessage) -> SendResult:
    body = message_body(message)
    msg_id = f"evt_{message.id}"
    # The signature timestamp is the wall-clock time of this attempt (replay protection
    # on the receiver's side), not the domain clock.
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "mechanisms-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(webhook.secret, msg_id, timestamp, body),
    }
    try:
        response = client.post(webhook.url, content=body.encode(), headers=headers)
    except outbound.RefusedDestination as exc:
        return SendResult(False, None, f"refused: {exc}")
    except httpx.HTTPError as exc:
        # The exception's name only: its text may quote what the other end sent.
        return SendResult(False, None, f"{type(exc).__name__}")
    if 200 <= response.status_code < 300:
        return SendResult(True, response.status_code, None)
    return SendResult(False, response.status_code, f"HTTP {response.status_code}")


# --- service functions -------------------------------------------------------------


def _validate_url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or not c.isprintable() for c in url)
    ):
        raise InvalidInput("url must be an absolute http or https URL", details={"field": "url"})
    outbound.check_url(url)
    return url


def _validate_event_types(event_types: list[str]) -> list[str]:
    cleaned = [t.strip() for t in event_types if t.strip()]
    if not cleaned:
        raise InvalidInput(
            'event_types needs at least one pattern (use "*" for every event)',
            details={"field": "event_types"},
        )
    return cleaned


def snapshot(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "description": hook.description,
        "event_types": hook.event_types,
        "active": hook.active,
        "created_at": hook.created_at.isoformat(),
    }


def create(
    ctx: Ctx, url: str, event_types: list[str], description: str = ""
) -> tuple[Webhook, str]:
    """Register a webhook; returns it with its signing secret, shown this once."""
    require_site_role(ctx, Role.ADMIN)
    hook = Webhook(
        url=_validate_url(url),
        description=description.strip(),
        secret=new_secret(),
        event_types=_validate_event_types(event_types),
        active=True,
        created_at=ctx.now,
    )
    ctx.session.add(hook)
    ctx.session.flush()
    audit.record(ctx, "webhook.created", "webhook", hook.id, after=snapshot(hook))
    return hook, hook.secret


def get(ctx: Ctx, webhook_id: int) -> Webhook:
    require_site_role(ctx, Role.ADMIN)
    hook = ctx.session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return hook


def list_all(ctx: Ctx) -> list[Webhook]:
    require_site_role(ctx, Role.ADMIN)
    return list(ctx.session.execute(select(Webhook).order_by(Webhook.id)).scalars())


def set_active(ctx: Ctx, webhook_id: int, active: bool) -> Webhook:
    hook = get(ctx, webhook_id)
    before = snapshot(hook)
    hook.active = active
    ctx.session.flush()
    audit.record(
        ctx,
        "webhook.enabled" if active else "webhook.disabled",
        "webhook",
        hook.id,
        before=before,
        after=snapshot(hook),
    )
    return hook


def delivery_counts(ctx: Ctx) -> dict[str, int]:
    require_site_role(ctx, Role.ADMIN)
    rows = ctx.session.execute(
        select(Delivery.status, func.count()).group_by(Delivery.status)
    ).all()
    return {status: n for status, n in rows}


def _delivery_dict(d: Delivery, event_type: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": event_type,
        "target": d.target,
        "object_key": d.object_key,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_error": d.last_error,
        "last_status_code": d.last_status_code,
        "delivered_at": d.delivered_at,
    }


def _deliveries_query() -> Select[tuple[Delivery, str]]:
    return select(Delivery, Event.type).join(Event, Event.id == Delivery.event_id)


def list_deliveries(ctx: Ctx, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    require_site_role(ctx, Role.ADMIN)
    if status not in (None, "pending", "delivered", "dead"):
        raise InvalidInput("status must be pending, delivered or dead", details={"field": "status"})
    query = _deliveries_query().order_by(Delivery.id.desc()).limit(max(1, min(limit, 500)))
    if status:
        query = query.where(Delivery.status == status)
    return [_delivery_dict(d, t) for d, t in ctx.session.execute(query).all()]


def get_delivery(ctx: Ctx, delivery_id: int) -> dict[str, Any]:
    require_site_role(ctx, Role.ADMIN)
    row = ctx.session.execute(_deliveries_query().where(Delivery.id == delivery_id)).first()
    if row is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return _delivery_dict(*row)


def retry_dead(ctx: Ctx, delivery_id: int) -> Delivery:
    """Send a dead-lettered delivery again from its first attempt."""
    require_site_role(ctx, Role.ADMIN)
    delivery = ctx.session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if delivery.status != "dead":
        # The request is well-formed; the delivery's state is what refuses it.
        raise Conflict(
            f"delivery {delivery_id} is {delivery.status}; only dead deliveries can be retried"
        )
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = ctx.now
    delivery.version += 1
    ctx.session.flush()
    audit.record(
        ctx,
        "delivery.retried",
        "delivery",
        delivery.id,
        before={"status": "dead"},
        after={"status": "pending"},
    )
    return delivery
