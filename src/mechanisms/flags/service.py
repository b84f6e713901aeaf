"""Flags service: applications, environments, flags and their versions, segments,
layers, change requests, deployments with their steps, the kill switch, and the
rule set SDKs download. Every change writes its audit record and events in the
caller's transaction."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mechanisms.core import accounts, audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound, StaleState
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, require_team_role
from mechanisms.flags import rollout
from mechanisms.flags.bucketing import BUCKETS, percent_to_buckets
from mechanisms.flags.domain import (
    KEY_PATTERN,
    FlagConfig,
    FlagSpec,
    Holdout,
    LayerSlice,
    Rollout,
    RuleError,
    RuleSet,
    Segment,
    Serve,
    check_config,
    prerequisite_cycle,
)
from mechanisms.flags.tables import (
    AlarmState,
    ChangeRequest,
    DeploymentStrategy,
    Flag,
    FlagApp,
    FlagDeployment,
    FlagDeploymentStep,
    FlagEnvironment,
    FlagLayer,
    FlagSegment,
    FlagState,
    FlagVersion,
)

KEY_RE = re.compile(KEY_PATTERN)
FLAG_TYPES = ("boolean", "string", "number", "object")
FLAG_KINDS = ("release", "experiment", "operational", "permission", "kill_switch")
RUNNING = ("rolling", "baking")
ALARM = "ALARM"
DEFAULT_ENVIRONMENTS = [
    ("beta", "Beta", False),
    ("gamma", "Gamma", False),
    ("prod", "Production", True),
]


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def _check_key(field: str, key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise _invalid(
            field, f"{field} must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return key


def _validation_error(exc: ValidationError, prefix: str = "") -> InvalidInput:
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    field = f"{prefix}{path}" if path else prefix.rstrip(".")
    return InvalidInput(
        f"{field}: {message}" if field else message,
        details={
            "field": field,
            "errors": [
                {"field": f"{prefix}{'.'.join(str(p) for p in e['loc'])}", "problem": e["msg"]}
                for e in exc.errors()
            ],
        },
    )


# --- lookups ------------------------------------------------------------------------


def get_app(ctx: Ctx, key: str) -> FlagApp:
    app = ctx.session.execute(select(FlagApp).where(FlagApp.key == key)).scalar_one_or_none()
    if app is None:
        raise NotFound(f"application {key!r} not found", details={"field": "app"})
    return app


def get_environment(ctx: Ctx, app: FlagApp, key: str) -> FlagEnvironment:
    env = ctx.session.execute(
        select(FlagEnvironment).where(FlagEnvironment.app_id == app.id, FlagEnvironment.key == key)
    ).scalar_one_or_none()
    if env is None:
        raise NotFound(
            f"environment {key!r} not found in {app.key}", details={"field": "environment"}
        )
    return env


def environments(session: Session, app: FlagApp) -> list[FlagEnvironment]:
    return list(
        session.execute(
            select(FlagEnvironment)
            .where(FlagEnvironment.app_id == app.id)
            .order_by(FlagEnvironment.position)
        ).scalars()
    )


def get_flag(ctx: Ctx, app: FlagApp, key: str) -> Flag:
    flag = ctx.session.execute(
        select(Flag).where(Flag.app_id == app.id, Flag.key == key)
    ).scalar_one_or_none()
    if flag is None:
        raise NotFound(f"flag {key!r} not found in {app.key}", details={"field": "flag"})
    return flag


def _state(session: Session, flag: Flag, env: FlagEnvironment) -> FlagState:
    return session.execute(
        select(FlagState).where(FlagState.flag_id == flag.id, FlagState.environment_id == env.id)
    ).scalar_one()


def _version(session: Session, flag: Flag, env: FlagEnvironment, number: int) -> FlagVersion:
    row = session.execute(
        select(FlagVersion).where(
            FlagVersion.flag_id == flag.id,
            FlagVersion.environment_id == env.id,
            FlagVersion.number == number,
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"version {number} of {flag.key} in {env.key} not found", details={"field": "version"}
        )
    return row


def _latest_number(session: Session, flag: Flag, env: FlagEnvironment) -> int:
    return (
        session.execute(
            select(func.max(FlagVersion.number)).where(
                FlagVersion.flag_id == flag.id, FlagVersion.environment_id == env.id
            )
        ).scalar_one()
        or 0
    )


def _running_deployment(
    session: Session, flag: Flag, env: FlagEnvironment
) -> FlagDeployment | None:
    return session.execute(
        select(FlagDeployment).where(
            FlagDeployment.flag_id == flag.id,
            FlagDeployment.environment_id == env.id,
            FlagDeployment.state.in_(RUNNING),
        )
    ).scalar_one_or_none()


def _served_configs(session: Session, flag: Flag, env: FlagEnvironment) -> list[dict[str, Any]]:
    """The configurations some keys may be served now: the live version and, while a
    deployment runs, the version it deploys."""
    state = _state(session, flag, env)
    configs = [_version(session, flag, env, state.live_number).config]
    if state.deployment_id is not None:
        dep = session.get(FlagDeployment, state.deployment_id)
        configs.append(_version(session, flag, env, dep.to_number).config)
    return configs


def _bump(env: FlagEnvironment, now: datetime) -> None:
    """SDKs see a new ETag after every change to what this environment serves."""
    env.revision += 1
    env.updated_at = now


# --- authorisation ------------------------------------------------------------------


def _require_owner(ctx: Ctx, team_id: int, needed: Role = Role.ENGINEER) -> None:
    require_team_role(ctx, team_id, needed)


def can_read(ctx: Ctx) -> None:
    require_site_role(ctx, Role.VIEWER)


# --- applications and environments --------------------------------------------------


def app_snapshot(app: FlagApp) -> dict[str, Any]:
    return {"id": app.id, "key": app.key, "name": app.name, "owner_team_id": app.owner_team_id}


def env_snapshot(env: FlagEnvironment) -> dict[str, Any]:
    return {
        "key": env.key,
        "name": env.name,
        "position": env.position,
        "requires_approval": env.requires_approval,
        "holdout_percent": env.holdout_percent,
        "revision": env.revision,
    }


def create_app(
    ctx: Ctx,
    key: str,
    name: str,
    owner_team: str,
    environment_list: list[tuple[str, str, bool]] | None = None,
) -> FlagApp:
    _check_key("key", key)
    team = accounts.get_team(ctx, owner_team)
    _require_owner(ctx, team.id)
    if ctx.session.execute(select(FlagApp.id).where(FlagApp.key == key)).first():
        raise Conflict(f"application {key!r} already exists", details={"field": "key"})
    app = FlagApp(key=key, name=name.strip() or key, owner_team_id=team.id, created_at=ctx.now)
    ctx.session.add(app)
    ctx.session.flush()
    for position, (env_key, env_name, approval) in enumerate(
        environment_list or DEFAULT_ENVIRONMENTS
    ):
        _add_environment(ctx, app, env_key, env_name, approval, position)
    audit.record(ctx, "flags.app_created", "flag_app", app.key, after=app_snapshot(app))
    events.emit(ctx, "flags.app_created", "flag_app", app.key, app_snapshot(app))
    return app


def _add_environment(
    ctx: Ctx, app: FlagApp, key: str, name: str, requires_approval: bool, position: int
) -> FlagEnvironment:
    _check_key("environment", key)
    env = FlagEnvironment(
        app_id=app.id,
        key=key,
        name=name or key,
        position=position,
        requires_approval=requires_approval,
        salt=secrets.token_hex(8),
        holdout_percent=0.0,
        revision=1,
        updated_at=ctx.now,
    )
    ctx.session.add(env)
    ctx.session.flush()
    return env


def add_environment(
    ctx: Ctx, app_key: str, key: str, name: str, requires_approval: bool = False
) -> FlagEnvironment:
    app = get_app(ctx, app_key)
    _require_owner(ctx, app.owner_team_id, Role.LEADER)
    existing = environments(ctx.session, app)
    if any(e.key == key for e in existing):
        raise Conflict(f"environment {key!r} already exists in {app.key}", details={"field": "key"})
    env = _add_environment(ctx, app, key, name, requires_approval, len(existing))
    # Every flag starts in a new environment as it starts anywhere: its first version there
    # is a copy of its latest configuration in the first environment, switched off.
    for flag in ctx.session.execute(select(Flag).where(Flag.app_id == app.id)).scalars():
        source = existing[0] if existing else None
        base = (
            _version(ctx.session, flag, source, _state(ctx.session, flag, source).live_number)
            if source
            else None
        )
        config = {**base.config, "enabled": False} if base else None
        if config is not None:
            _first_version(ctx, flag, env, config)
    audit.record(ctx, "flags.environment_added", "flag_app", app.key, after=env_snapshot(env))
    return env


def set_holdout(ctx: Ctx, app_key: str, env_key: str, percent: float) -> FlagEnvironment:
    app = get_app(ctx, app_key)
    _require_owner(ctx, app.owner_team_id, Role.LEADER)
    if not 0 <= percent <= 50:
        raise _invalid("holdout_percent", "the holdout must be between 0 and 50 percent")
    env = get_environment(ctx, app, env_key)
    before = env_snapshot(env)
    env.holdout_percent = percent
    _bump(env, ctx.now)
    audit.record(
        ctx, "flags.holdout_set", "flag_app", app.key, before=before, after=env_snapshot(env)
    )
    return env


def list_apps(ctx: Ctx) -> list[FlagApp]:
    can_read(ctx)
    return list(ctx.session.execute(select(FlagApp).order_by(FlagApp.key)).scalars())


# --- flags and versions -------------------------------------------------------------


def flag_snapshot(flag: Flag) -> dict[str, Any]:
    return {
        "key": flag.key,
        "type": flag.type,
        "kind": flag.kind,
        "description": flag.description,
        "owner_team_id": flag.owner_team_id,
        "json_schema": flag.json_schema,
        "stale_after_days": flag.stale_after_days,
        "archived": flag.archived_at is not None,
    }


def _parse_config(raw: Any, field: str = "config") -> FlagConfig:
    if not isinstance(raw, dict):
        raise _invalid(field, f"{field} must be an object")
    try:
        return FlagConfig.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, f"{field}.") from None


def default_config(
    flag_type: str, variants: dict[str, Any] | None, off_variant: str | None
) -> dict[str, Any]:
    """A new flag's first configuration: on/off for booleans, serving the off variant."""
    if variants is None:
        if flag_type != "boolean":
            raise _invalid("variants", f"a {flag_type} flag needs its variants")
        variants = {"on": True, "off": False}
    off = off_variant or ("off" if "off" in variants else next(iter(variants)))
    return {
        "variants": variants,
        "off_variant": off,
        "fallthrough": {"variant": off},
        "enabled": True,
    }


def _segment_keys(session: Session, app: FlagApp) -> set[str]:
    return set(
        session.execute(select(FlagSegment.key).where(FlagSegment.app_id == app.id)).scalars()
    )


def _validated(
    ctx: Ctx, app: FlagApp, flag: Flag, env: FlagEnvironment | None, raw: Any
) -> FlagConfig:
    config = _parse_config(raw)
    try:
        check_config(flag.type, config, _segment_keys(ctx.session, app), flag.json_schema)
    except RuleError as exc:
        raise InvalidInput(
            f"config.{exc.path}: {exc.message}", details={"field": f"config.{exc.path}"}
        ) from None
    if env is not None:
        _check_prerequisites(ctx, app, flag, env, config)
    return config


def _check_prerequisites(
    ctx: Ctx, app: FlagApp, flag: Flag, env: FlagEnvironment, config: FlagConfig
) -> None:
    flags = {
        f.key: f for f in ctx.session.execute(select(Flag).where(Flag.app_id == app.id)).scalars()
    }
    # The edited flag goes first, so a cycle is reported starting from it.
    edges: dict[str, list[str]] = {flag.key: [p.flag for p in config.prerequisites]}
    for other in flags.values():
        if other.id != flag.id:
            edges[other.key] = [
                p["flag"]
                for config in _served_configs(ctx.session, other, env)
                for p in config.get("prerequisites", [])
            ]
    for i, prerequisite in enumerate(config.prerequisites):
        target = flags.get(prerequisite.flag)
        if target is None:
            raise _invalid(f"config.prerequisites.{i}.flag", f"unknown flag {prerequisite.flag!r}")
        if target.id != flag.id:
            known = {
                v
                for config in _served_configs(ctx.session, target, env)
                for v in config["variants"]
            }
            unknown = [v for v in prerequisite.variants if v not in known]
            if unknown:
                raise _invalid(
                    f"config.prerequisites.{i}.variants",
                    f"{prerequisite.flag} has no variant {unknown[0]!r}",
                )
    cycle = prerequisite_cycle(edges)
    if cycle:
        raise _invalid("config.prerequisites", "prerequisites form a cycle: " + " → ".join(cycle))


def _first_version(ctx: Ctx, flag: Flag, env: FlagEnvironment, config: dict[str, Any]) -> None:
    ctx.session.add(
        FlagVersion(
            flag_id=flag.id,
            environment_id=env.id,
            number=1,
            config=config,
            author=ctx.principal.actor,
            comment="created",
            created_at=ctx.now,
        )
    )
    ctx.session.add(
        FlagState(
            flag_id=flag.id, environment_id=env.id, live_number=1, served_since=ctx.now, version=0
        )
    )
    _bump(env, ctx.now)


def create_flag(
    ctx: Ctx,
    app_key: str,
    key: str,
    *,
    flag_type: str = "boolean",
    kind: str = "release",
    description: str = "",
    owner_team: str | None = None,
    variants: dict[str, Any] | None = None,
    off_variant: str | None = None,
    json_schema: dict[str, Any] | None = None,
    stale_after_days: int = 30,
) -> Flag:
    app = get_app(ctx, app_key)
    _check_key("key", key)
    if flag_type not in FLAG_TYPES:
        raise _invalid("type", f"type must be one of {', '.join(FLAG_TYPES)}")
    if kind not in FLAG_KINDS:
        raise _invalid("kind", f"kind must be one of {', '.join(FLAG_KINDS)}")
    if json_schema is not None and flag_type != "object":
        raise _invalid("json_schema", "only object flags carry a JSON Schema")
    if json_schema is not None:
        _check_schema(json_schema)
    if not 1 <= stale_after_days <= 3650:
        raise _invalid("stale_after_days", "stale_after_days must be between 1 and 3650")
    team = accounts.get_team(ctx, owner_team) if owner_team else None
    owner_id = team.id if team else app.owner_team_id
    _require_owner(ctx, owner_id)
    if ctx.session.execute(select(Flag.id).where(Flag.app_id == app.id, Flag.key == key)).first():
        raise Conflict(f"flag {key!r} already exists in {app.key}", details={"field": "key"})
    flag = Flag(
        app_id=app.id,
        key=key,
        type=flag_type,
        kind=kind,
        description=description.strip(),
        owner_team_id=owner_id,
        json_schema=json_schema,
        salt=f"{app.key}.{key}.{secrets.token_hex(4)}",
        stale_after_days=stale_after_days,
        created_at=ctx.now,
    )
    ctx.session.add(flag)
    ctx.session.flush()
    if variants is not None and (not isinstance(variants, dict) or not variants):
        raise _invalid("variants", "variants must be a non-empty object of name to value")
    raw = default_config(flag_type, variants, off_variant)
    config = _validated(ctx, app, flag, None, raw).model_dump(mode="json", exclude_defaults=False)
    for env in environments(ctx.session, app):
        _first_version(ctx, flag, env, config)
    ctx.session.flush()
    audit.record(ctx, "flags.flag_created", "flag", f"{app.key}/{key}", after=flag_snapshot(flag))
    events.emit(ctx, "flags.flag_created", "flag", f"{app.key}/{key}", flag_snapshot(flag))
    return flag


def _check_schema(schema: Any) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise _invalid("json_schema", "json_schema must be an object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _invalid("json_schema", f"not a valid JSON Schema: {exc.message}") from None


def list_flags(ctx: Ctx, app_key: str, include_archived: bool = False) -> list[Flag]:
    can_read(ctx)
    app = get_app(ctx, app_key)
    query = select(Flag).where(Flag.app_id == app.id).order_by(Flag.key)
    if not include_archived:
        query = query.where(Flag.archived_at.is_(None))
    return list(ctx.session.execute(query).scalars())


@dataclass
class ConfigChange:
    """What a configuration change did: a new version deployed, or a change request."""

    version: FlagVersion | None = None
    deployment: FlagDeployment | None = None
    change_request: ChangeRequest | None = None


def set_config(
    ctx: Ctx,
    app_key: str,
    flag_key: str,
    env_key: str,
    raw_config: Any,
    *,
    comment: str = "",
    base_number: int | None = None,
    strategy: str = "AllAtOnce",
    monitors: dict[str, Any] | None = None,
) -> ConfigChange:
    """Propose a new configuration. Where the environment needs approval it becomes a change
    request; elsewhere it becomes a new version and is deployed with the strategy."""
    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    env = get_environment(ctx, app, env_key)
    _require_owner(ctx, flag.owner_team_id)
    if flag.archived_at is not None:
        raise Conflict(f"flag {flag.key} is archived", details={"field": "flag"})
    config = _validated(ctx, app, flag, env, raw_config)
    latest = _latest_number(ctx.session, flag, env)
    if base_number is not None and base_number != latest:
        raise Conflict(
            f"version {latest} replaced version {base_number} while you edited; reload and try again",
            details={"field": "base_number", "latest": latest},
        )
    strategy_def = get_strategy(ctx, strategy)
    normalized = config.model_dump(mode="json")
    if env.requires_approval:
        request = ChangeRequest(
            flag_id=flag.id,
            environment_id=env.id,
            base_number=latest,
            config=normalized,
            strategy_name=strategy,
            monitors=_check_monitors(monitors or {}),
            comment=comment,
            state="open",
            requested_by_user_id=ctx.principal.user_id,
            requested_by=ctx.principal.actor,
            created_at=ctx.now,
        )
        ctx.session.add(request)
        ctx.session.flush()
        audit.record(
            ctx,
            "flags.change_requested",
            "flag",
            f"{app.key}/{flag.key}",
            details={"environment": env.key, "change_request": request.id, "base_number": latest},
        )
        events.emit(
            ctx,
            "flags.change_requested",
            "flag",
            f"{app.key}/{flag.key}",
            {
                "environment": env.key,
                "change_request": request.id,
                "requested_by": ctx.principal.actor,
            },
        )
        return ConfigChange(change_request=request)
    version = _new_version(ctx, app, flag, env, normalized, comment)
    deployment = _deploy(
        ctx, app, flag, env, version.number, strategy, strategy_def, monitors or {}
    )
    return ConfigChange(version=version, deployment=deployment)


def _new_version(
    ctx: Ctx, app: FlagApp, flag: Flag, env: FlagEnvironment, config: dict[str, Any], comment: str
) -> FlagVersion:
    number = _latest_number(ctx.session, flag, env) + 1
    previous = _version(ctx.session, flag, env, number - 1)
    version = FlagVersion(
        flag_id=flag.id,
        environment_id=env.id,
        number=number,
        config=config,
        author=ctx.principal.actor,
        comment=comment.strip(),
        created_at=ctx.now,
    )
    ctx.session.add(version)
    # Any further edit invalidates the change requests written against older versions.
    for request in ctx.session.execute(
        select(ChangeRequest).where(
            ChangeRequest.flag_id == flag.id,
            ChangeRequest.environment_id == env.id,
            ChangeRequest.state == "open",
        )
    ).scalars():
        request.state = "invalidated"
        request.decided_at = ctx.now
        request.decision_note = f"version {number} was created after this request"
    ctx.session.flush()
    audit.record(
        ctx,
        "flags.version_created",
        "flag",
        f"{app.key}/{flag.key}",
        before=previous.config,
        after=config,
        details={"environment": env.key, "number": number},
    )
    events.emit(
        ctx,
        "flags.version_created",
        "flag",
        f"{app.key}/{flag.key}",
        {"environment": env.key, "number": number, "comment": version.comment},
    )
    return version


def versions(ctx: Ctx, app_key: str, flag_key: str, env_key: str) -> list[FlagVersion]:
    can_read(ctx)
    app = get_app(ctx, app_key)
    flag, env = get_flag(ctx, app, flag_key), get_environment(ctx, app, env_key)
    return list(
        ctx.session.execute(
            select(FlagVersion)
            .where(FlagVersion.flag_id == flag.id, FlagVersion.environment_id == env.id)
            .order_by(FlagVersion.number.desc())
        ).scalars()
    )


def restore(
    ctx: Ctx, app_key: str, flag_key: str, env_key: str, number: int, strategy: str = "AllAtOnce"
) -> ConfigChange:
    """Bring back an older version's configuration as a new version."""
    app = get_app(ctx, app_key)
    flag, env = get_flag(ctx, app, flag_key), get_environment(ctx, app, env_key)
    old = _version(ctx.session, flag, env, number)
    return set_config(
        ctx,
        app_key,
        flag_key,
        env_key,
        old.config,
        comment=f"restore version {number}",
        strategy=strategy,
    )


# --- change requests ----------------------------------------------------------------


def change_requests(ctx: Ctx, app_key: str, state: str | None = "open") -> list[ChangeRequest]:
    can_read(ctx)
    app = get_app(ctx, app_key)
    query = (
        select(ChangeRequest)
        .join(Flag, Flag.id == ChangeRequest.flag_id)
        .where(Flag.app_id == app.id)
        .order_by(ChangeRequest.id.desc())
    )
    if state:
        query = query.where(ChangeRequest.state == state)
    return list(ctx.session.execute(query).scalars())


def _get_change_request(
    ctx: Ctx, request_id: int
) -> tuple[ChangeRequest, Flag, FlagApp, FlagEnvironment]:
    request = ctx.session.get(ChangeRequest, request_id)
    if request is None:
        raise NotFound(f"change request {request_id} not found")
    flag = ctx.session.get(Flag, request.flag_id)
    env = ctx.session.get(FlagEnvironment, request.environment_id)
    app = ctx.session.get(FlagApp, flag.app_id)
    return request, flag, app, env


def approve_change(ctx: Ctx, request_id: int, note: str = "") -> ConfigChange:
    request, flag, app, env = _get_change_request(ctx, request_id)
    _require_owner(ctx, flag.owner_team_id)
    if not ctx.principal.is_human:
        raise Forbidden(
            "only a person can approve a change request (not a bot or the CLI operator)"
        )
    if ctx.principal.user_id == request.requested_by_user_id:
        raise Forbidden("a change request needs another person's approval than its author's")
    if request.state != "open":
        raise Conflict(f"change request {request_id} is {request.state}")
    latest = _latest_number(ctx.session, flag, env)
    if latest != request.base_number:
        request.state, request.decided_at = "invalidated", ctx.now
        raise Conflict(f"version {latest} was created after this request; it no longer applies")
    request.state, request.decided_by, request.decided_at = "applied", ctx.principal.actor, ctx.now
    request.decision_note = note.strip()
    version = _new_version(
        ctx, app, flag, env, request.config, request.comment or f"change request {request.id}"
    )
    version.author = request.requested_by
    deployment = _deploy(
        ctx,
        app,
        flag,
        env,
        version.number,
        request.strategy_name,
        get_strategy(ctx, request.strategy_name),
        request.monitors,
    )
    audit.record(
        ctx,
        "flags.change_approved",
        "flag",
        f"{app.key}/{flag.key}",
        details={"change_request": request.id, "environment": env.key, "version": version.number},
    )
    events.emit(
        ctx,
        "flags.change_approved",
        "flag",
        f"{app.key}/{flag.key}",
        {"change_request": request.id, "environment": env.key, "approved_by": ctx.principal.actor},
    )
    return ConfigChange(version=version, deployment=deployment, change_request=request)


def reject_change(ctx: Ctx, request_id: int, note: str = "") -> ChangeRequest:
    request, flag, app, env = _get_change_request(ctx, request_id)
    _require_owner(ctx, flag.owner_team_id)
    if request.state != "open":
        raise Conflict(f"change request {request_id} is {request.state}")
    request.state, request.decided_by, request.decided_at = "rejected", ctx.principal.actor, ctx.now
    request.decision_note = note.strip()
    audit.record(
        ctx,
        "flags.change_rejected",
        "flag",
        f"{app.key}/{flag.key}",
        details={
            "change_request": request.id,
            "environment": env.key,
            "note": request.decision_note,
        },
    )
    return request


# --- strategies ---------------------------------------------------------------------


def get_strategy(ctx: Ctx, name: str) -> rollout.Strategy:
    if name in rollout.PREDEFINED:
        return rollout.PREDEFINED[name][1]
    row = ctx.session.execute(
        select(DeploymentStrategy).where(DeploymentStrategy.name == name)
    ).scalar_one_or_none()
    if row is None:
        known = ", ".join(sorted(rollout.PREDEFINED))
        raise NotFound(
            f"deployment strategy {name!r} not found (predefined: {known})",
            details={"field": "strategy"},
        )
    return rollout.Strategy.model_validate(row.definition)


def list_strategies(ctx: Ctx) -> list[tuple[str, str, rollout.Strategy, bool]]:
    can_read(ctx)
    custom = [
        (row.name, row.description, rollout.Strategy.model_validate(row.definition), False)
        for row in ctx.session.execute(
            select(DeploymentStrategy)
            .where(DeploymentStrategy.predefined.is_(False))
            .order_by(DeploymentStrategy.name)
        ).scalars()
    ]
    predefined = [
        (name, desc, strategy, True) for name, (desc, strategy) in rollout.PREDEFINED.items()
    ]
    return predefined + custom


def create_strategy(
    ctx: Ctx, name: str, definition: Any, description: str = ""
) -> DeploymentStrategy:
    require_site_role(ctx, Role.ENGINEER)
    _check_key("name", name)
    if (
        name in rollout.PREDEFINED
        or ctx.session.execute(
            select(DeploymentStrategy.id).where(DeploymentStrategy.name == name)
        ).first()
    ):
        raise Conflict(f"strategy {name!r} already exists", details={"field": "name"})
    try:
        strategy = rollout.Strategy.model_validate(definition)
    except ValidationError as exc:
        raise _validation_error(exc, "definition.") from None
    row = DeploymentStrategy(
        name=name,
        description=description.strip(),
        definition=strategy.model_dump(mode="json"),
        predefined=False,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "flags.strategy_created", "flag_strategy", name, after=row.definition)
    return row


# --- deployments --------------------------------------------------------------------


def deployment_snapshot(dep: FlagDeployment) -> dict[str, Any]:
    return {
        "id": dep.id,
        "from_number": dep.from_number,
        "to_number": dep.to_number,
        "strategy": dep.strategy_name,
        "state": dep.state,
        "percent": dep.percent,
        "step": dep.step,
        "reason": dep.reason,
    }


def _check_monitors(monitors: Any) -> dict[str, Any]:
    if not isinstance(monitors, dict):
        raise _invalid("monitors", "monitors must be an object")
    alarms = monitors.get("alarms", [])
    if not isinstance(alarms, list) or not all(
        isinstance(a, str) and 0 < len(a) <= 200 for a in alarms
    ):
        raise _invalid("monitors.alarms", "monitors.alarms must be a list of alarm names")
    guardrails = monitors.get("guardrails", False)
    if not isinstance(guardrails, bool):
        raise _invalid("monitors.guardrails", "monitors.guardrails is true or false")
    unknown = set(monitors) - {"alarms", "guardrails"}
    if unknown:
        raise _invalid(f"monitors.{sorted(unknown)[0]}", "unknown monitor kind")
    return {"alarms": sorted(set(alarms)), "guardrails": guardrails}


def deploy(
    ctx: Ctx,
    app_key: str,
    flag_key: str,
    env_key: str,
    number: int,
    strategy: str = "AllAtOnce",
    monitors: dict[str, Any] | None = None,
) -> FlagDeployment:
    """Deploy an existing version (where the environment needs approval, use set_config)."""
    app = get_app(ctx, app_key)
    flag, env = get_flag(ctx, app, flag_key), get_environment(ctx, app, env_key)
    _require_owner(ctx, flag.owner_team_id)
    if env.requires_approval:
        raise Forbidden(
            f"{env.key} needs approval: propose the change instead (it becomes a change request)"
        )
    _version(ctx.session, flag, env, number)
    return _deploy(
        ctx, app, flag, env, number, strategy, get_strategy(ctx, strategy), monitors or {}
    )


def _deploy(
    ctx: Ctx,
    app: FlagApp,
    flag: Flag,
    env: FlagEnvironment,
    number: int,
    strategy_name: str,
    strategy: rollout.Strategy,
    monitors: dict[str, Any],
) -> FlagDeployment:
    monitors = _check_monitors(monitors)
    state = _state(ctx.session, flag, env)
    running = _running_deployment(ctx.session, flag, env)
    if running is not None:
        raise Conflict(
            f"deployment {running.id} of {flag.key} in {env.key} is still running; roll it back or wait",
            details={"deployment": running.id},
        )
    if state.live_number == number:
        raise Conflict(f"version {number} is already live in {env.key}")
    steps = rollout.plan(strategy)
    dep = FlagDeployment(
        flag_id=flag.id,
        environment_id=env.id,
        from_number=state.live_number,
        to_number=number,
        strategy_name=strategy_name,
        strategy=strategy.model_dump(mode="json"),
        state="rolling",
        percent=steps[0][1],
        step=0,
        started_at=ctx.now,
        monitors=monitors,
        created_by=ctx.principal.actor,
        version=0,
    )
    ctx.session.add(dep)
    ctx.session.flush()
    _schedule_next(dep, steps, strategy, ctx.now)
    _record_step(ctx, dep, "started")
    if dep.state == "complete":
        _complete(ctx, flag, env, state, dep)
    else:
        state.deployment_id = dep.id
    _bump(env, ctx.now)
    _announce(ctx, "flags.deployment_started", app, flag, env, dep)
    return dep


def _schedule_next(
    dep: FlagDeployment, steps: list[tuple[int, float]], strategy: rollout.Strategy, now: datetime
) -> None:
    """After applying step ``dep.step``: when the next step (or the end of the bake) is due."""
    if dep.step + 1 < len(steps):
        dep.state = "rolling"
        dep.next_step_at = now + timedelta(seconds=steps[dep.step + 1][0])
    elif strategy.bake_seconds > 0:
        dep.state = "baking"
        dep.next_step_at = now + timedelta(seconds=strategy.bake_seconds)
    else:
        dep.state = "complete"
        dep.next_step_at = None


def _record_step(ctx: Ctx, dep: FlagDeployment, note: str) -> None:
    ctx.session.add(
        FlagDeploymentStep(
            deployment_id=dep.id, at=ctx.now, percent=dep.percent, state=dep.state, note=note
        )
    )


def _single_value(config: dict[str, Any]) -> str | None:
    """The one variant a configuration serves to everyone, if it serves only one."""
    if not config.get("enabled", True):
        return config["off_variant"]
    served = set(config.get("targets", {}))
    for rule in config.get("rules", []):
        served |= set(Serve.model_validate(rule["serve"]).variants())
    served |= set(Serve.model_validate(config["fallthrough"]).variants())
    if config.get("prerequisites"):
        served.add(config["off_variant"])
    return served.pop() if len(served) == 1 else None


def _complete(
    ctx: Ctx, flag: Flag, env: FlagEnvironment, state: FlagState, dep: FlagDeployment
) -> None:
    old = _version(ctx.session, flag, env, state.live_number).config
    new = _version(ctx.session, flag, env, dep.to_number).config
    before, after = _single_value(old), _single_value(new)
    if not (
        before is not None and before == after and old["variants"][before] == new["variants"][after]
    ):
        state.served_since = ctx.now
    state.live_number = dep.to_number
    state.deployment_id = None
    state.version += 1
    dep.state, dep.finished_at, dep.next_step_at, dep.percent = "complete", ctx.now, None, 100.0


def _claim(ctx: Ctx, dep: FlagDeployment) -> None:
    """Optimistic concurrency: only one worker (or person) moves a deployment at a time."""
    result = ctx.session.execute(
        update(FlagDeployment)
        .where(FlagDeployment.id == dep.id, FlagDeployment.version == dep.version)
        .values(version=FlagDeployment.version + 1)
    )
    if result.rowcount != 1:
        raise StaleState(f"deployment {dep.id} was moved by someone else")
    ctx.session.refresh(dep)


def finish_now(ctx: Ctx, dep: FlagDeployment, note: str) -> None:
    """Make a running deployment's version live for everyone at once, skipping the steps
    and bake left (an experiment decision builds on what people were shown)."""
    _claim(ctx, dep)
    flag = ctx.session.get(Flag, dep.flag_id)
    env = ctx.session.get(FlagEnvironment, dep.environment_id)
    _complete(ctx, flag, env, _state(ctx.session, flag, env), dep)
    _record_step(ctx, dep, note)
    _bump(env, ctx.now)


def _announce(
    ctx: Ctx,
    action: str,
    app: FlagApp,
    flag: Flag,
    env: FlagEnvironment,
    dep: FlagDeployment,
    **extra: Any,
) -> None:
    """A deployment changed: the audit record and the event other mechanisms follow."""
    subject = f"{app.key}/{flag.key}"
    snapshot = deployment_snapshot(dep)
    audit.record(
        ctx, action, "flag", subject, after=snapshot, details={"environment": env.key, **extra}
    )
    events.emit(ctx, action, "flag", subject, {"environment": env.key, **extra, **snapshot})


def firing_alarms(session: Session, dep: FlagDeployment) -> list[str]:
    names = dep.monitors.get("alarms", [])
    if not names:
        return []
    return list(
        session.execute(
            select(AlarmState.name).where(AlarmState.name.in_(names), AlarmState.state == ALARM)
        ).scalars()
    )


def running_deployments(session: Session) -> list[FlagDeployment]:
    return list(
        session.execute(select(FlagDeployment).where(FlagDeployment.state.in_(RUNNING))).scalars()
    )


def due_deployments(session: Session, now: datetime, limit: int) -> list[int]:
    """Deployments whose next step is due, or whose monitors fire (roll back at once)."""
    due = []
    for dep in running_deployments(session):
        if (dep.next_step_at is not None and dep.next_step_at <= now) or firing_alarms(
            session, dep
        ):
            due.append(dep.id)
    return due[:limit]


def advance(ctx: Ctx, deployment_id: int) -> None:
    """Move one deployment one step: roll back if a monitor fires, else the next share, the
    bake, or completion. Raises StaleState when another worker moved it first."""
    dep = ctx.session.get(FlagDeployment, deployment_id)
    if dep is None or dep.state not in RUNNING:
        raise StaleState(f"deployment {deployment_id} is no longer running")
    _claim(ctx, dep)
    firing = firing_alarms(ctx.session, dep)
    if firing:
        _rollback(ctx, dep, f"alarm {', '.join(firing)} in ALARM", automatic=True)
        return
    if dep.next_step_at is None or dep.next_step_at > ctx.now:
        return
    flag = ctx.session.get(Flag, dep.flag_id)
    env = ctx.session.get(FlagEnvironment, dep.environment_id)
    app = ctx.session.get(FlagApp, flag.app_id)
    if dep.monitors.get("guardrails"):
        # Imported here because experiments builds on this module.
        from mechanisms.flags import experiments

        crossed = experiments.crossed_guardrails(ctx, flag, env)
        if crossed:
            _rollback(ctx, dep, "guardrail crossed: " + "; ".join(crossed), automatic=True)
            return
    strategy = rollout.Strategy.model_validate(dep.strategy)
    steps = rollout.plan(strategy)
    state = _state(ctx.session, flag, env)
    if dep.state == "baking":
        _complete(ctx, flag, env, state, dep)
        _record_step(ctx, dep, "baked")
        event = "flags.deployment_completed"
    else:
        dep.step += 1
        dep.percent = steps[dep.step][1]
        _schedule_next(dep, steps, strategy, ctx.now)
        if dep.state == "complete":
            _complete(ctx, flag, env, state, dep)
        _record_step(ctx, dep, f"step {dep.step + 1} of {len(steps)}")
        event = (
            "flags.deployment_completed" if dep.state == "complete" else "flags.deployment_stepped"
        )
    _bump(env, ctx.now)
    _announce(ctx, event, app, flag, env, dep)


def rollback(ctx: Ctx, deployment_id: int, reason: str) -> FlagDeployment:
    dep = ctx.session.get(FlagDeployment, deployment_id)
    if dep is None:
        raise NotFound(f"deployment {deployment_id} not found")
    flag = ctx.session.get(Flag, dep.flag_id)
    _require_owner(ctx, flag.owner_team_id)
    if dep.state not in RUNNING:
        raise Conflict(
            f"deployment {deployment_id} is {dep.state}; only a running deployment rolls back"
        )
    if not reason.strip():
        raise _invalid("reason", "say why you roll back")
    _claim(ctx, dep)
    _rollback(ctx, dep, reason.strip(), automatic=False)
    return dep


def _rollback(ctx: Ctx, dep: FlagDeployment, reason: str, *, automatic: bool) -> None:
    flag = ctx.session.get(Flag, dep.flag_id)
    env = ctx.session.get(FlagEnvironment, dep.environment_id)
    app = ctx.session.get(FlagApp, flag.app_id)
    state = _state(ctx.session, flag, env)
    state.deployment_id = None
    state.version += 1
    dep.state, dep.finished_at, dep.next_step_at = "rolled_back", ctx.now, None
    dep.reason = ("automatic: " if automatic else "") + reason
    dep.percent = 0.0
    _record_step(ctx, dep, dep.reason)
    _bump(env, ctx.now)
    _announce(ctx, "flags.deployment_rolled_back", app, flag, env, dep, automatic=automatic)


def deployments(
    ctx: Ctx, app_key: str, flag_key: str, env_key: str | None = None
) -> list[FlagDeployment]:
    can_read(ctx)
    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    query = (
        select(FlagDeployment)
        .where(FlagDeployment.flag_id == flag.id)
        .order_by(FlagDeployment.id.desc())
    )
    if env_key:
        query = query.where(FlagDeployment.environment_id == get_environment(ctx, app, env_key).id)
    return list(ctx.session.execute(query).scalars())


def deployment_steps(ctx: Ctx, deployment_id: int) -> list[FlagDeploymentStep]:
    can_read(ctx)
    return list(
        ctx.session.execute(
            select(FlagDeploymentStep)
            .where(FlagDeploymentStep.deployment_id == deployment_id)
            .order_by(FlagDeploymentStep.id)
        ).scalars()
    )


# --- kill switch --------------------------------------------------------------------


def kill(ctx: Ctx, app_key: str, flag_key: str, reason: str) -> list[FlagVersion]:
    """Turn a flag off everywhere at once: stop its deployments and make a disabled copy of
    its configuration live in every environment, approvals notwithstanding."""
    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    _require_owner(ctx, flag.owner_team_id)
    if not reason.strip():
        raise _invalid("reason", "say why you kill the flag")
    created = []
    for env in environments(ctx.session, app):
        running = _running_deployment(ctx.session, flag, env)
        if running is not None:
            _claim(ctx, running)
            _rollback(ctx, running, f"kill switch: {reason.strip()}", automatic=False)
        state = _state(ctx.session, flag, env)
        live = _version(ctx.session, flag, env, state.live_number)
        if not live.config.get("enabled", True):
            continue
        version = _new_version(
            ctx, app, flag, env, {**live.config, "enabled": False}, f"kill switch: {reason.strip()}"
        )
        dep = FlagDeployment(
            flag_id=flag.id,
            environment_id=env.id,
            from_number=state.live_number,
            to_number=version.number,
            strategy_name="kill switch",
            strategy=rollout.PREDEFINED["AllAtOnce"][1].model_dump(mode="json"),
            state="rolling",
            percent=100.0,
            step=0,
            started_at=ctx.now,
            monitors={},
            created_by=ctx.principal.actor,
        )
        ctx.session.add(dep)
        ctx.session.flush()
        _complete(ctx, flag, env, state, dep)
        _record_step(ctx, dep, "kill switch")
        _bump(env, ctx.now)
        created.append(version)
    audit.record(
        ctx, "flags.killed", "flag", f"{app.key}/{flag.key}", details={"reason": reason.strip()}
    )
    events.emit(ctx, "flags.killed", "flag", f"{app.key}/{flag.key}", {"reason": reason.strip()})
    return created


def archive(ctx: Ctx, app_key: str, flag_key: str) -> Flag:
    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    _require_owner(ctx, flag.owner_team_id)
    dependants = _dependants(ctx, app, flag)
    if dependants:
        raise Conflict(
            f"{', '.join(dependants)} use {flag.key} as a prerequisite", details={"field": "flag"}
        )
    before = flag_snapshot(flag)
    flag.archived_at = ctx.now
    for env in environments(ctx.session, app):
        if _running_deployment(ctx.session, flag, env):
            raise Conflict(f"{flag.key} is being deployed in {env.key}")
        _bump(env, ctx.now)
    audit.record(
        ctx,
        "flags.archived",
        "flag",
        f"{app.key}/{flag.key}",
        before=before,
        after=flag_snapshot(flag),
    )
    return flag


def _dependants(ctx: Ctx, app: FlagApp, flag: Flag) -> list[str]:
    found = []
    for other in ctx.session.execute(
        select(Flag).where(Flag.app_id == app.id, Flag.id != flag.id)
    ).scalars():
        for env in environments(ctx.session, app):
            configs = _served_configs(ctx.session, other, env)
            if any(
                p["flag"] == flag.key for config in configs for p in config.get("prerequisites", [])
            ):
                found.append(f"{other.key} ({env.key})")
    return found


# --- segments and layers ------------------------------------------------------------


def set_segment(
    ctx: Ctx, app_key: str, key: str, definition: Any, description: str | None = None
) -> FlagSegment:
    """Create or replace a segment; ``description=None`` keeps the current description."""
    app = get_app(ctx, app_key)
    _require_owner(ctx, app.owner_team_id)
    _check_key("key", key)
    if not isinstance(definition, dict):
        raise _invalid("definition", "definition must be an object")
    try:
        segment = Segment.model_validate({**definition, "key": key})
    except ValidationError as exc:
        raise _validation_error(exc, "definition.") from None
    known = _segment_keys(ctx.session, app)
    for i, rule in enumerate(segment.rules):
        for j, clause in enumerate(rule):
            if clause.op == "segment_match":
                raise _invalid(
                    f"definition.rules.{i}.{j}.op", "segments cannot contain other segments"
                )
    row = ctx.session.execute(
        select(FlagSegment).where(FlagSegment.app_id == app.id, FlagSegment.key == key)
    ).scalar_one_or_none()
    stored = segment.model_dump(mode="json", exclude={"key"})
    before = row.definition if row else None
    if row is None:
        row = FlagSegment(
            app_id=app.id,
            key=key,
            description=(description or "").strip(),
            definition=stored,
            updated_at=ctx.now,
        )
        ctx.session.add(row)
    else:
        row.definition, row.updated_at = stored, ctx.now
        row.description = row.description if description is None else description.strip()
    for env in environments(ctx.session, app):
        _bump(env, ctx.now)
    ctx.session.flush()
    audit.record(
        ctx, "flags.segment_set", "flag_segment", f"{app.key}/{key}", before=before, after=stored
    )
    events.emit(
        ctx, "flags.segment_set", "flag_segment", f"{app.key}/{key}", {"created": key not in known}
    )
    return row


def list_segments(ctx: Ctx, app_key: str) -> list[FlagSegment]:
    can_read(ctx)
    app = get_app(ctx, app_key)
    return list(
        ctx.session.execute(
            select(FlagSegment).where(FlagSegment.app_id == app.id).order_by(FlagSegment.key)
        ).scalars()
    )


def delete_segment(ctx: Ctx, app_key: str, key: str) -> None:
    app = get_app(ctx, app_key)
    _require_owner(ctx, app.owner_team_id)
    row = ctx.session.execute(
        select(FlagSegment).where(FlagSegment.app_id == app.id, FlagSegment.key == key)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"segment {key!r} not found in {app.key}")
    for flag in ctx.session.execute(select(Flag).where(Flag.app_id == app.id)).scalars():
        for env in environments(ctx.session, app):
            rules = [
                rule
                for config in _served_configs(ctx.session, flag, env)
                for rule in config.get("rules", [])
            ]
            if any(
                c["op"] == "segment_match" and key in c["values"]
                for rule in rules
                for c in rule["clauses"]
            ):
                raise Conflict(f"{flag.key} uses segment {key} in {env.key}")
    ctx.session.delete(row)
    for env in environments(ctx.session, app):
        _bump(env, ctx.now)
    audit.record(
        ctx, "flags.segment_deleted", "flag_segment", f"{app.key}/{key}", before=row.definition
    )


def create_layer(ctx: Ctx, app_key: str, key: str) -> FlagLayer:
    app = get_app(ctx, app_key)
    _require_owner(ctx, app.owner_team_id)
    _check_key("key", key)
    if ctx.session.execute(
        select(FlagLayer.id).where(FlagLayer.app_id == app.id, FlagLayer.key == key)
    ).first():
        raise Conflict(f"layer {key!r} already exists", details={"field": "key"})
    layer = FlagLayer(
        app_id=app.id, key=key, salt=f"{app.key}.{key}.{secrets.token_hex(4)}", created_at=ctx.now
    )
    ctx.session.add(layer)
    ctx.session.flush()
    audit.record(ctx, "flags.layer_created", "flag_layer", f"{app.key}/{key}")
    return layer


def place_in_layer(
    ctx: Ctx, app_key: str, flag_key: str, layer_key: str | None, percent: float = 0
) -> Flag:
    """Give an experiment a slice of a layer (first free range that fits), or take it out."""
    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    _require_owner(ctx, flag.owner_team_id)
    before = {"layer_id": flag.layer_id, "start": flag.layer_start, "end": flag.layer_end}
    if layer_key is None:
        flag.layer_id = flag.layer_start = flag.layer_end = None
    else:
        if flag.kind != "experiment":
            raise _invalid("flag", "only experiment flags go in a mutual-exclusion layer")
        if not 0 < percent <= 100:
            raise _invalid("percent", "percent must be above 0 and at most 100")
        layer = ctx.session.execute(
            select(FlagLayer).where(FlagLayer.app_id == app.id, FlagLayer.key == layer_key)
        ).scalar_one_or_none()
        if layer is None:
            raise NotFound(f"layer {layer_key!r} not found", details={"field": "layer"})
        taken = sorted(
            (f.layer_start, f.layer_end)
            for f in ctx.session.execute(
                select(Flag).where(Flag.layer_id == layer.id, Flag.id != flag.id)
            ).scalars()
        )
        size = percent_to_buckets(percent)
        start = _first_fit(taken, size)
        if start is None:
            free = BUCKETS - sum(end - begin for begin, end in taken)
            raise Conflict(
                f"layer {layer_key} has only {free / 1000:g} % free", details={"field": "percent"}
            )
        flag.layer_id, flag.layer_start, flag.layer_end = layer.id, start, start + size
    for env in environments(ctx.session, app):
        _bump(env, ctx.now)
    audit.record(
        ctx,
        "flags.layer_placed",
        "flag",
        f"{app.key}/{flag.key}",
        before=before,
        after={"layer_id": flag.layer_id, "start": flag.layer_start, "end": flag.layer_end},
    )
    return flag


def _first_fit(taken: list[tuple[int, int]], size: int) -> int | None:
    cursor = 0
    for begin, end in taken:
        if begin - cursor >= size:
            return cursor
        cursor = max(cursor, end)
    return cursor if BUCKETS - cursor >= size else None


# --- alarm states (until the ops mechanism owns alarms) -----------------------------


def set_alarm_state(ctx: Ctx, name: str, state: str, reason: str = "") -> AlarmState:
    require_site_role(ctx, Role.ENGINEER)
    if state not in ("OK", ALARM, "INSUFFICIENT_DATA"):
        raise _invalid("state", "state must be OK, ALARM or INSUFFICIENT_DATA")
    if not name or len(name) > 200:
        raise _invalid("name", "name must have 1-200 characters")
    row = ctx.session.execute(
        select(AlarmState).where(AlarmState.name == name)
    ).scalar_one_or_none()
    before = {"state": row.state} if row else None
    if row is None:
        row = AlarmState(name=name, state=state, reason=reason, updated_at=ctx.now)
        ctx.session.add(row)
    else:
        row.state, row.reason, row.updated_at = state, reason, ctx.now
    ctx.session.flush()
    if before is None or before["state"] != state:
        audit.record(
            ctx, "alarms.state_changed", "alarm", name, before=before, after={"state": state}
        )
        events.emit(
            ctx,
            "alarms.state_changed",
            "alarm",
            name,
            {"name": name, "state": state, "reason": reason},
        )
    return row


def mirror_alarm_state(ctx: Ctx, name: str, state: str) -> None:
    """Record an alarm state announced by an event (no audit: the announcer audited it)."""
    if state not in ("OK", ALARM, "INSUFFICIENT_DATA") or not name:
        return
    row = ctx.session.execute(
        select(AlarmState).where(AlarmState.name == name)
    ).scalar_one_or_none()
    if row is None:
        ctx.session.add(AlarmState(name=name, state=state, reason="", updated_at=ctx.now))
    elif row.state != state:
        row.state, row.updated_at = state, ctx.now
    ctx.session.flush()


def list_alarm_states(ctx: Ctx) -> list[AlarmState]:
    can_read(ctx)
    return list(ctx.session.execute(select(AlarmState).order_by(AlarmState.name)).scalars())


def rollback_on_alarm(ctx: Ctx, alarm_name: str) -> list[int]:
    """Roll back every running deployment that watches this alarm (the worker calls this
    when an alarm goes into ALARM)."""
    rolled = []
    for dep in running_deployments(ctx.session):
        if alarm_name in dep.monitors.get("alarms", []) and firing_alarms(ctx.session, dep):
            try:
                _claim(ctx, dep)
            except StaleState:
                continue  # the worker's reconcile pass got there first
            _rollback(ctx, dep, f"alarm {alarm_name} in ALARM", automatic=True)
            rolled.append(dep.id)
    return rolled


# --- the rule set -------------------------------------------------------------------


def etag(app: FlagApp, env: FlagEnvironment) -> str:
    return f'"{app.id}.{env.id}.{env.revision}"'


def ruleset(session: Session, app: FlagApp, env: FlagEnvironment) -> RuleSet:
    """What an SDK needs to evaluate every flag of this environment locally."""
    flags: dict[str, FlagSpec] = {}
    layers = {
        layer.id: layer
        for layer in session.execute(select(FlagLayer).where(FlagLayer.app_id == app.id)).scalars()
    }
    rows = session.execute(
        select(Flag, FlagState)
        .join(FlagState, FlagState.flag_id == Flag.id)
        .where(
            Flag.app_id == app.id, Flag.archived_at.is_(None), FlagState.environment_id == env.id
        )
    ).all()
    version_rows = session.execute(
        select(FlagVersion).where(
            FlagVersion.environment_id == env.id, FlagVersion.flag_id.in_([f.id for f, _ in rows])
        )
    ).scalars()
    configs = {(v.flag_id, v.number): v.config for v in version_rows}
    deployments_by_id = {
        d.id: d
        for d in session.execute(
            select(FlagDeployment).where(
                FlagDeployment.id.in_([s.deployment_id for _, s in rows if s.deployment_id])
            )
        ).scalars()
    }
    for flag, state in rows:
        live = configs[(flag.id, state.live_number)]
        config, number, rollout_spec = live, state.live_number, None
        dep = deployments_by_id.get(state.deployment_id) if state.deployment_id else None
        if dep is not None:
            config, number = configs[(flag.id, dep.to_number)], dep.to_number
            rollout_spec = Rollout(
                deployment_id=dep.id,
                buckets=percent_to_buckets(dep.percent),
                salt=f"rollout/{flag.salt}/{dep.id}",
                previous=FlagConfig.model_validate(live),
                previous_version=state.live_number,
            )
        layer = layers.get(flag.layer_id) if flag.layer_id else None
        flags[flag.key] = FlagSpec(
            key=flag.key,
            type=flag.type,
            kind=flag.kind,
            salt=flag.salt,
            version=number,
            config=FlagConfig.model_validate(config),
            rollout=rollout_spec,
            layer=LayerSlice(
                layer=layer.key,
                salt=f"layer/{layer.salt}",
                start=flag.layer_start,
                end=flag.layer_end,
            )
            if layer is not None
            else None,
        )
    segments = {
        s.key: Segment.model_validate({**s.definition, "key": s.key})
        for s in session.execute(select(FlagSegment).where(FlagSegment.app_id == app.id)).scalars()
    }
    holdout = (
        Holdout(salt=f"holdout/{env.salt}", buckets=percent_to_buckets(env.holdout_percent))
        if env.holdout_percent
        else None
    )
    return RuleSet(environment=env.key, flags=flags, segments=segments, holdout=holdout)


# --- reports ------------------------------------------------------------------------


@dataclass
class FlagStatus:
    flag: Flag
    environment: str
    live_number: int
    enabled: bool
    single_value: str | None
    deployment: FlagDeployment | None
    stale: bool
    served_since: datetime


def statuses(ctx: Ctx, app_key: str) -> list[FlagStatus]:
    """Each flag's state per environment, with staleness (one value to everyone for longer
    than the flag's stale_after_days)."""
    can_read(ctx)
    app = get_app(ctx, app_key)
    envs = {e.id: e for e in environments(ctx.session, app)}
    out = []
    rows = ctx.session.execute(
        select(Flag, FlagState, FlagVersion)
        .join(FlagState, FlagState.flag_id == Flag.id)
        .join(
            FlagVersion,
            (FlagVersion.flag_id == Flag.id)
            & (FlagVersion.environment_id == FlagState.environment_id)
            & (FlagVersion.number == FlagState.live_number),
        )
        .where(Flag.app_id == app.id, Flag.archived_at.is_(None))
        .order_by(Flag.key)
    ).all()
    for flag, state, version in rows:
        single = _single_value(version.config)
        dep = ctx.session.get(FlagDeployment, state.deployment_id) if state.deployment_id else None
        stale = (
            single is not None
            and dep is None
            and ctx.now - state.served_since >= timedelta(days=flag.stale_after_days)
        )
        out.append(
            FlagStatus(
                flag,
                envs[state.environment_id].key,
                state.live_number,
                version.config.get("enabled", True),
                single,
                dep,
                stale,
                state.served_since,
            )
        )
    order = {e.key: e.position for e in envs.values()}
    return sorted(out, key=lambda s: (s.flag.key, order[s.environment]))
