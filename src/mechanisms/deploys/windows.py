"""Block windows: stored as the domain model's definitions, evaluated per call (decision 0013).

A window's scope is an org, a team, a service or a stage. Whoever creates or deletes one
needs the engineer role where it applies: on the org's root team for an org-wide freeze,
on the team for a team window, on the owning team for a service or stage window."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Text, bindparam, cast, select

from mechanisms.core import accounts, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, require_team_role, tenancy
from mechanisms.core.tables import Team
from mechanisms.deploys import access, calendar, changes, ical, protection
from mechanisms.deploys.calendar import (
    BlockWindow,
    Calendar,
    Freeze,
    GateState,
    Holidays,
    OneOff,
    Recurring,
    Scope,
)
from mechanisms.deploys.tables import BlockWindow as WindowRow
from mechanisms.deploys.tables import Pipeline, ProtectedChange

SCOPE_KINDS = ("org", "team", "service", "stage")
MAX_REASON = 2000


def _invalid(field: str, message: str, code: str = "invalid_input") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, details={"field": field})


# --- definitions as JSON ------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.isoformat()


def _parse_instant(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise _invalid(field, "an ISO 8601 date-time is required")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(field, f"{value!r} is not an ISO 8601 date-time") from None


def _int(value: Any, field: str, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, "a whole number is required")
    return value


def _str(value: Any, field: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise _invalid(field, "a non-empty text is required")
    return value.strip()


def rule_to_json(rule: calendar.Rule) -> dict[str, Any]:
    if isinstance(rule, OneOff):
        return {
            "kind": rule.kind.value,
            "start": _iso(rule.start),
            "end": _iso(rule.end),
            "tz": rule.tz,
        }
    if isinstance(rule, Recurring):
        return {
            "kind": rule.kind.value,
            "rrule": rule.rrule,
            "dtstart": _iso(rule.dtstart),
            "duration_minutes": int(rule.duration.total_seconds() // 60),
            "tz": rule.tz,
            "exdates": [_iso(d) for d in rule.exdates],
        }
    return {
        "kind": rule.kind.value,
        "country": rule.country,
        "subdivision": rule.subdivision,
        "tz": rule.tz,
        "days_before": rule.days_before,
        "days_after": rule.days_after,
    }


def rule_from_json(data: Any) -> calendar.Rule:
    """The rule a definition describes. Recurring rules take ``duration_minutes`` or an end
    on the wall clock (``end_time`` "09:00" and ``days_later``)."""
    if not isinstance(data, dict):
        raise _invalid("definition", "an object with a kind is required")
    kind = data.get("kind")
    tz = _str(data.get("tz"), "definition.tz", "UTC")
    if kind in ("one_off", "freeze"):
        cls = Freeze if kind == "freeze" else OneOff
        return cls(
            _parse_instant(data.get("start"), "definition.start"),
            _parse_instant(data.get("end"), "definition.end"),
            tz,
        )
    if kind == "recurring":
        dtstart = _parse_instant(data.get("dtstart"), "definition.dtstart")
        rrule = _str(data.get("rrule"), "definition.rrule")
        exdates_raw = data.get("exdates") or []
        if not isinstance(exdates_raw, list):
            raise _invalid("definition.exdates", "a list of date-times is required")
        exdates = tuple(
            _parse_instant(v, f"definition.exdates[{i}]") for i, v in enumerate(exdates_raw)
        )
        if data.get("end_time") is not None:
            try:
                end = datetime.strptime(
                    _str(data["end_time"], "definition.end_time"), "%H:%M"
                ).time()
            except ValueError:
                raise _invalid("definition.end_time", "HH:MM is required") from None
            days = _int(data.get("days_later"), "definition.days_later")
            if not 0 <= days <= 366:
                raise _invalid("definition.days_later", "0 to 366 days")
            return Recurring.until_wall_clock(
                rrule, dtstart, end, days_later=days, tz=tz, exdates=exdates
            )
        minutes = _int(data.get("duration_minutes"), "definition.duration_minutes", -1)
        if not 0 < minutes <= 366 * 24 * 60:
            raise _invalid("definition.duration_minutes", "between 1 minute and 366 days")
        return Recurring(rrule, dtstart, timedelta(minutes=minutes), tz, exdates)
    if kind == "holidays":
        subdivision = data.get("subdivision")
        return Holidays(
            _str(data.get("country"), "definition.country"),
            None if subdivision is None else _str(subdivision, "definition.subdivision"),
            tz,
            _int(data.get("days_before"), "definition.days_before"),
            _int(data.get("days_after"), "definition.days_after"),
        )
    raise _invalid("definition.kind", "one of one_off, freeze, recurring, holidays")


@lru_cache(maxsize=65_536)
def _scope_from_key(key: str) -> Scope:
    # Cached: the gate turns a few dozen stored keys into scopes on every call; a scope is
    # an immutable value of its key.
    return Scope(*key.split("/"))


def to_domain(row: WindowRow | Row[Any]) -> BlockWindow:
    return BlockWindow(
        row.uid, _scope_from_key(row.scope_key), rule_from_json(row.definition), row.reason
    )


def snapshot(row: WindowRow) -> dict[str, Any]:
    return {
        "id": row.uid,
        "scope": row.scope_kind,
        "scope_key": row.scope_key,
        "kind": row.kind,
        "definition": row.definition,
        "reason": row.reason,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }


# --- scopes -------------------------------------------------------------------------


def resolve_scope(ctx: Ctx, kind: str, target: str) -> tuple[Scope, int]:
    """The domain scope of ``kind`` ("org", "team", "service" or "stage") named by ``target``
    (a team slug, a service key, or "service/stage"), and the team whose engineers may
    change windows there."""
    if kind not in SCOPE_KINDS:
        raise _invalid("scope", f"one of {', '.join(SCOPE_KINDS)}")
    target = _str(target, "target")
    if kind in ("org", "team"):
        team = accounts.get_team(ctx, target)
        org = ctx.session.get(Team, accounts.organisation_of(ctx, team.id))
        assert org is not None
        if kind == "org":
            if org.id != team.id:
                raise _invalid("target", f"{target} is a team of {org.slug}, not an organisation")
            return Scope(org.slug), org.id
        return Scope(org.slug, team.slug), team.id
    service, _, stage = target.partition("/") if kind == "stage" else (target, "", "")
    if kind == "stage" and not stage:
        raise _invalid("target", "a stage is named service/stage")
    found = access.owner(ctx, service)
    return found.scope(stage or None), found.team_id


def _scope_team(ctx: Ctx, scope: Scope) -> int:
    if scope.service is not None:
        return access.owner(ctx, scope.service).team_id
    return accounts.get_team(ctx, scope.team or scope.org).id


# --- services -----------------------------------------------------------------------


def _expires_at(window: BlockWindow) -> datetime | None:
    rule = window.rule
    if isinstance(rule, OneOff):
        compiled = calendar.validate(window)
        return compiled.between(calendar.EARLIEST, calendar.LATEST)[0].end
    return None


# Windows written per round of statements: one duplicate check and one bulk write each.
_STORE_BATCH = 500


def _window_id(value: Any) -> str:
    """A user-chosen window id: it names the window in URLs (/windows/{id}), so one with
    "/", "..", NUL or control characters could be created but never fetched or deleted."""
    return inputs.checked_key(value, "id", ical.MAX_WINDOW_ID_LENGTH)


def _store(ctx: Ctx, windows: Sequence[BlockWindow], kind: str) -> list[WindowRow]:
    """Store the windows (all or none), a few statements per batch of windows rather than
    per window: an import of thousands must not hold the write lock for seconds."""
    rows: list[WindowRow] = []
    for first in range(0, len(windows), _STORE_BATCH):
        rows += _store_batch(ctx, windows[first : first + _STORE_BATCH], kind)
    return rows


def _store_batch(ctx: Ctx, windows: Sequence[BlockWindow], kind: str) -> list[WindowRow]:
    for window in windows:
        _window_id(window.id)
        calendar.validate(window)
    existing = ctx.session.execute(
        select(WindowRow.uid).where(WindowRow.uid.in_([w.id for w in windows])).limit(1)
    ).scalar()
    if existing is not None:
        raise InvalidInput(
            f"a window with the id {existing!r} exists already",
            code="duplicate_window",
            details={"field": "id"},
        )
    rows = [
        WindowRow(
            uid=window.id,
            scope_kind=kind,
            scope_key=str(window.scope),
            kind=window.kind.value,
            definition=rule_to_json(window.rule),
            reason=window.reason,
            created_by=ctx.principal.actor,
            created_at=ctx.now,
            expires_at=_expires_at(window),
        )
        for window in windows
    ]
    ctx.session.add_all(rows)
    ctx.session.flush()
    access.record_many(
        ctx,
        "window_created",
        [
            access.Change(
                service=window.scope.service or str(window.scope),
                stage=window.scope.stage,
                object_type="deploys_window",
                object_id=window.id,
                after=snapshot(row),
                details={"window": window.id, "scope": str(window.scope), "reason": window.reason},
            )
            for window, row in zip(windows, rows, strict=True)
        ],
    )
    return rows


def _reason(reason: Any) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise _invalid("reason", f"text up to {MAX_REASON} characters")
    try:
        return inputs.text(reason).strip()
    except ValueError as exc:
        raise _invalid("reason", str(exc)) from None


def create_window(
    ctx: Ctx,
    scope: str,
    target: str,
    definition: dict[str, Any],
    reason: str = "",
    window_id: str | None = None,
) -> WindowRow:
    """A block window on a scope; refused (nothing stored) when its rule cannot be evaluated."""
    require_site_role(ctx, Role.ENGINEER)
    domain_scope, team_id = resolve_scope(ctx, scope, target)
    require_team_role(ctx, team_id, Role.ENGINEER)
    rule = rule_from_json(definition)
    uid = _window_id(window_id) if window_id is not None else f"w-{secrets.token_hex(6)}"
    return _store(ctx, [BlockWindow(uid, domain_scope, rule, _reason(reason))], scope)[0]


def freeze(ctx: Ctx, scope: str, target: str, until: datetime, reason: str) -> WindowRow:
    """An ad-hoc freeze from now until ``until``; it expires by itself."""
    if until.tzinfo is None:
        raise _invalid("until", "the instant must carry a time zone")
    if until <= ctx.now:
        raise _invalid("until", "a freeze ends in the future")
    definition = {"kind": "freeze", "start": ctx.now.isoformat(), "end": until.isoformat()}
    return create_window(ctx, scope, target, definition, reason)


def get_window(ctx: Ctx, window_id: str) -> WindowRow:
    require_site_role(ctx, Role.VIEWER)
    row = ctx.session.execute(
        select(WindowRow).where(WindowRow.uid == window_id)
    ).scalar_one_or_none()
    if row is None or not tenancy(ctx).sees_team_slug(_org_slug(row)):
        raise NotFound(f"block window {window_id!r} not found", details={"field": "id"})
    return row


def _org_slug(row: WindowRow) -> str:
    """Every scope key starts with its organisation ("acme/payments/api/prod")."""
    return row.scope_key.split("/", 1)[0]


def list_windows(ctx: Ctx, service: str | None = None, stage: str | None = None) -> list[WindowRow]:
    """Every window, or the windows that apply to a service (or one of its stages)."""
    require_site_role(ctx, Role.VIEWER)
    query = select(WindowRow).order_by(WindowRow.scope_key, WindowRow.uid)
    if service is not None:
        keys = ["/".join(k) for k in access.owner(ctx, service).scope(stage).chain()]
        if stage is None:
            query = query.where(
                WindowRow.scope_key.in_(keys) | WindowRow.scope_key.startswith(f"{keys[-1]}/")
            )
        else:
            query = query.where(WindowRow.scope_key.in_(keys))
    seen = tenancy(ctx)
    return [
        row for row in ctx.session.execute(query).scalars() if seen.sees_team_slug(_org_slug(row))
    ]


def update_window(
    ctx: Ctx,
    window_id: str,
    definition: dict[str, Any],
    reason: str | None = None,
    *,
    ticket: str | None = None,
    change_reason: str | None = None,
) -> WindowRow | ProtectedChange:
    """Replace a window's rule (and reason); its scope stays. Refused whole when the new
    rule cannot be evaluated. A change that makes a window in force (or starting within a
    day) block less is protected (``changes.guarded``): it may come back as a request
    waiting for a second leader instead of the updated window."""
    require_site_role(ctx, Role.ENGINEER)
    row = get_window(ctx, window_id)
    scope = _scope_from_key(row.scope_key)
    require_team_role(ctx, _scope_team(ctx, scope), Role.ENGINEER)
    window = BlockWindow(
        row.uid,
        scope,
        rule_from_json(definition),
        row.reason if reason is None else _reason(reason),
    )
    calendar.validate(window)
    proposal = {"definition": rule_to_json(window.rule), "reason": window.reason}
    verdict = protection.classify_window(to_domain(row), window, ctx.now)
    return changes.guarded(
        ctx,
        _proposed(ctx, row, "window_update", proposal),
        verdict,
        lambda: _replace_rule(ctx, row, window),
        ticket=ticket,
        reason=change_reason,
    )


def _replace_rule(ctx: Ctx, row: WindowRow, window: BlockWindow) -> WindowRow:
    scope = window.scope
    before = snapshot(row)
    row.kind = window.kind.value
    row.definition = rule_to_json(window.rule)
    row.reason = window.reason
    row.expires_at = _expires_at(window)
    ctx.session.flush()
    access.record(
        ctx,
        "window_updated",
        scope.service or row.scope_key,
        stage=scope.stage,
        object_type="deploys_window",
        object_id=row.uid,
        before=before,
        after=snapshot(row),
        details={"window": row.uid, "scope": row.scope_key, "reason": row.reason},
    )
    return row


def delete_window(
    ctx: Ctx, window_id: str, *, ticket: str | None = None, reason: str | None = None
) -> ProtectedChange | None:
    """Delete a window; a window in force or starting within a day is protected
    (``changes.guarded``): None when deleted, else the request waiting for a second leader."""
    require_site_role(ctx, Role.ENGINEER)
    row = get_window(ctx, window_id)
    scope = _scope_from_key(row.scope_key)
    require_team_role(ctx, _scope_team(ctx, scope), Role.ENGINEER)
    verdict = protection.classify_window(to_domain(row), None, ctx.now)
    pending = changes.guarded(
        ctx,
        _proposed(ctx, row, "window_delete", {}),
        verdict,
        lambda: _remove(ctx, row, "window_deleted"),
        ticket=ticket,
        reason=reason,
    )
    return pending if isinstance(pending, ProtectedChange) else None


def _timeline_services(ctx: Ctx, scope: Scope) -> tuple[str, ...]:
    """The services whose pipelines a window on ``scope`` holds: their timelines show its
    protected changes (the scope's own key when it holds none yet)."""
    if scope.service is not None:
        return (scope.service,)
    held = []
    for service in ctx.session.execute(
        select(Pipeline.service_key).order_by(Pipeline.service_key)
    ).scalars():
        if scope.covers(access.owner(ctx, service).scope()):
            held.append(service)
    return tuple(held) or (str(scope),)


def _proposed(ctx: Ctx, row: WindowRow, kind: str, proposal: dict[str, Any]) -> changes.Proposed:
    scope = _scope_from_key(row.scope_key)
    return changes.Proposed(
        kind=kind,
        subject=row.uid,
        team_id=_scope_team(ctx, scope),
        services=_timeline_services(ctx, scope),
        proposal=proposal,
        base=snapshot(row),
    )


def apply_change(ctx: Ctx, change: ProtectedChange) -> str | None:
    """Apply an approved protected change of a window, or say why it no longer can be."""
    row = ctx.session.execute(
        select(WindowRow).where(WindowRow.uid == change.subject)
    ).scalar_one_or_none()
    if row is None:
        return f"window {change.subject} no longer exists"
    if problem := changes.unchanged(change, snapshot(row)):
        return problem
    if change.kind == "window_delete":
        _remove(ctx, row, "window_deleted")
        return None
    proposal = change.proposal
    window = BlockWindow(
        row.uid,
        _scope_from_key(row.scope_key),
        rule_from_json(proposal["definition"]),
        proposal["reason"],
    )
    _replace_rule(ctx, row, window)
    return None


def _remove(ctx: Ctx, row: WindowRow, kind: str) -> None:
    scope = _scope_from_key(row.scope_key)
    before = snapshot(row)
    ctx.session.delete(row)
    ctx.session.flush()
    access.record(
        ctx,
        kind,
        scope.service or row.scope_key,
        stage=scope.stage,
        object_type="deploys_window",
        object_id=row.uid,
        before=before,
        details={"window": row.uid, "scope": row.scope_key},
    )


# Plain rows, not ORM objects, and the statement built once: the gate reads a few dozen
# windows on every call and needs only what ``to_domain`` reads.
# The definition comes back as its stored JSON text, the key of the parsed-rule cache.
_CHAIN_WINDOWS = select(
    WindowRow.uid,
    WindowRow.scope_key,
    cast(WindowRow.definition, Text).label("definition_text"),
    WindowRow.reason,
).where(WindowRow.scope_key.in_([bindparam(f"key{i}") for i in range(len(calendar.SCOPE_PARTS))]))


@lru_cache(maxsize=65_536)
def _rule_from_text(definition_text: str) -> calendar.Rule:
    # Keyed by the stored definition itself: an edited window is a new key, so the cache
    # saves the JSON decoding and parsing on every gate call and can never answer for an
    # old definition. Rules are immutable values.
    return rule_from_json(json.loads(definition_text))


def calendar_for(ctx: Ctx, scope: Scope) -> Calendar:
    """The windows on ``scope``'s chain, compiled (rules are cached per definition)."""
    keys = ["/".join(k) for k in scope.chain()]
    # A fixed number of parameters (a short chain repeats its last key): an expanding IN
    # list is rendered anew on every call, which costs more than the select itself.
    keys += keys[-1:] * (len(calendar.SCOPE_PARTS) - len(keys))
    rows = ctx.session.execute(_CHAIN_WINDOWS, {f"key{i}": key for i, key in enumerate(keys)})
    return Calendar(
        [
            BlockWindow(
                r.uid, _scope_from_key(r.scope_key), _rule_from_text(r.definition_text), r.reason
            )
            for r in rows
        ]
    )


def gate_state(ctx: Ctx, service: str, stage: str, at: datetime) -> GateState:
    """OPEN or BLOCKED for one stage at ``at``, computed from the stored model on each call."""
    require_site_role(ctx, Role.VIEWER)
    scope = access.owner(ctx, service).scope(stage)
    return calendar_for(ctx, scope).gate_state(scope, at)


def occurrences(
    ctx: Ctx, service: str, stage: str | None, start: datetime, end: datetime
) -> list[calendar.ActiveBlock]:
    """Every window occurrence over a service (or one stage) in [start, end): a month view."""
    require_site_role(ctx, Role.VIEWER)
    scope = access.owner(ctx, service).scope(stage)
    return calendar_for(ctx, scope).occurrences(scope, start, end)


def import_ical(
    ctx: Ctx, scope: str, target: str, data: bytes | str, default_tz: str = "UTC"
) -> list[WindowRow]:
    """Every event of an iCalendar document as a window on one scope, all or none."""
    require_site_role(ctx, Role.ENGINEER)
    # Read before the first query: a writing unit of work takes SQLite's write lock with its
    # first statement, and reading two thousand events takes most of a second.
    read = ical.import_ical(data, scope=_PENDING_SCOPE, default_tz=default_tz)
    domain_scope, team_id = resolve_scope(ctx, scope, target)
    require_team_role(ctx, team_id, Role.ENGINEER)
    return _store(ctx, [dataclasses.replace(w, scope=domain_scope) for w in read], scope)


# The scope windows are read with before the import's scope is looked up (and replaced).
_PENDING_SCOPE = Scope("pending")


def export_ical(ctx: Ctx, service: str | None = None, stage: str | None = None) -> bytes:
    """The windows (of a service, or all) as iCalendar; holidays listed for the next year."""
    rows = list_windows(ctx, service, stage)
    start = ctx.now.astimezone(UTC)
    return ical.export_ical(
        [to_domain(r) for r in rows], holidays_from=start, holidays_to=start + timedelta(days=366)
    )


def expire_due(ctx: Ctx, limit: int = 500) -> int:
    """Remove one-off windows and freezes that are over (the worker's job)."""
    rows = list(
        ctx.session.execute(
            select(WindowRow).where(WindowRow.expires_at <= ctx.now).limit(limit)
        ).scalars()
    )
    for row in rows:
        _remove(ctx, row, "window_expired")
    return len(rows)
