"""Flags service: applications, environments, flags and their versions, segments,
layers, change requests, and the rule set SDKs download. Deploying a version (its
strategy, steps, rollback, the kill switch and the alarms it watches) lives in
``flags.deployments``, which builds on the lookups here. Every change writes its audit
record and events in the caller's transaction."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mechanisms.core import accounts, audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    require_site_role,
    require_team_role,
    require_visible_team,
    tenancy,
    visible_teams_filter,
)
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
    ChangeRequest,
    Flag,
    FlagApp,
    FlagDeployment,
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
DEFAULT_ENVIRONMENTS = [
    ("beta", "Beta", False),
    ("gamma", "Gamma", False),
    ("prod", "Production", True),
]


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def check_key(field: str, key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise invalid(
            field, f"{field} must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return key


def validation_error(exc: ValidationError, prefix: str = "") -> InvalidInput:
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
    if app is None or not tenancy(ctx).sees_team(app.owner_team_id):
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


def flag_state(session: Session, flag: Flag, env: FlagEnvironment) -> FlagState:
    return session.execute(
        select(FlagState).where(FlagState.flag_id == flag.id, FlagState.environment_id == env.id)
    ).scalar_one()


def get_version(session: Session, flag: Flag, env: FlagEnvironment, number: int) -> FlagVersion:
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


def running_deployment(session: Session, flag: Flag, env: FlagEnvironment) -> FlagDeployment | None:
    return session.execute(
        select(FlagDeployment).where(
            FlagDeployment.flag_id == flag.id,
            FlagDeployment.environment_id == env.id,
            FlagDeployment.state.in_(RUNNING),
        )
    ).scalar_one_or_none()


def served_configs(session: Session, flag: Flag, env: FlagEnvironment) -> list[dict[str, Any]]:
    """The configurations some keys may be served now: the live version and, while a
    deployment runs, the version it deploys."""
    state = flag_state(session, flag, env)
    configs = [get_version(session, flag, env, state.live_number).config]
    if state.deployment_id is not None:
        dep = session.get(FlagDeployment, state.deployment_id)
        configs.append(get_version(session, flag, env, dep.to_number).config)
    return configs


def bump(env: FlagEnvironment, now: datetime) -> None:
    """SDKs see a new ETag after every change to what this environment serves."""
    env.revision += 1
    env.updated_at = now


# --- authorisation ------------------------------------------------------------------


def require_owner(ctx: Ctx, team_id: int, needed: Role = Role.ENGINEER) -> None:
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
    check_key("key", key)
    team = accounts.get_team(ctx, owner_team)
    require_owner(ctx, team.id)
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
    check_key("environment", key)
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
    require_owner(ctx, app.owner_team_id, Role.LEADER)
    existing = environments(ctx.session, app)
    if any(e.key == key for e in existing):
        raise Conflict(f"environment {key!r} already exists in {app.key}", details={"field": "key"})
    env = _add_environment(ctx, app, key, name, requires_approval, len(existing))
    # Every flag starts in a new environment as it starts anywhere: its first version there
    # is a copy of its latest configuration in the first environment, switched off.
    for flag in ctx.session.execute(select(Flag).where(Flag.app_id == app.id)).scalars():
        source = existing[0] if existing else None
        base = (
            get_version(
                ctx.session, flag, source, flag_state(ctx.session, flag, source).live_number
            )
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
    require_owner(ctx, app.owner_team_id, Role.LEADER)
    if not 0 <= percent <= 50:
        raise invalid("holdout_percent", "the holdout must be between 0 and 50 percent")
    env = get_environment(ctx, app, env_key)
    before = env_snapshot(env)
    env.holdout_percent = percent
    bump(env, ctx.now)
    audit.record(
        ctx, "flags.holdout_set", "flag_app", app.key, before=before, after=env_snapshot(env)
    )
    return env


def list_apps(ctx: Ctx) -> list[FlagApp]:
    can_read(ctx)
    query = select(FlagApp).where(visible_teams_filter(ctx, FlagApp.owner_team_id))
    return list(ctx.session.execute(query.order_by(FlagApp.key)).scalars())


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
        raise invalid(field, f"{field} must be an object")
    try:
        return FlagConfig.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, f"{field}.") from None


def default_config(
    flag_type: str, variants: dict[str, Any] | None, off_variant: str | None
) -> dict[str, Any]:
    """A new flag's first configuration: on/off for booleans, serving the off variant."""
    if variants is None:
        if flag_type != "boolean":
            raise invalid("variants", f"a {flag_type} flag needs its variants")
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
                for config in served_configs(ctx.session, other, env)
                for p in config.get("prerequisites", [])
            ]
    for i, prerequisite in enumerate(config.prerequisites):
        target = flags.get(prerequisite.flag)
        if target is None:
            raise invalid(f"config.prerequisites.{i}.flag", f"unknown flag {prerequisite.flag!r}")
        if target.id != flag.id:
            known = {
                v for config in served_configs(ctx.session, target, env) for v in config["variants"]
            }
            unknown = [v for v in prerequisite.variants if v not in known]
            if unknown:
                raise invalid(
                    f"config.prerequisites.{i}.variants",
                    f"{prerequisite.flag} has no variant {unknown[0]!r}",
                )
    cycle = prerequisite_cycle(edges)
    if cycle:
        raise invalid("config.prerequisites", "prerequisites form a cycle: " + " → ".join(cycle))


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
    bump(env, ctx.now)


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
    check_key("key", key)
    if flag_type not in FLAG_TYPES:
        raise invalid("type", f"type must be one of {', '.join(FLAG_TYPES)}")
    if kind not in FLAG_KINDS:
        raise invalid("kind", f"kind must be one of {', '.join(FLAG_KINDS)}")
    if json_schema is not None and flag_type != "object":
        raise invalid("json_schema", "only object flags carry a JSON Schema")
    if json_schema is not None:
        _check_schema(json_schema)
    if not 1 <= stale_after_days <= 3650:
        raise invalid("stale_after_days", "stale_after_days must be between 1 and 3650")
    team = accounts.get_team(ctx, owner_team) if owner_team else None
    owner_id = team.id if team else app.owner_team_id
    require_owner(ctx, owner_id)
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
        raise invalid("variants", "variants must be a non-empty object of name to value")
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
        raise invalid("json_schema", "json_schema must be an object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise invalid("json_schema", f"not a valid JSON Schema: {exc.message}") from None


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
    # Imported here, not at the top: deployments builds on this module's lookups.
    from mechanisms.flags import deployments

    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    env = get_environment(ctx, app, env_key)
    require_owner(ctx, flag.owner_team_id)
    if flag.archived_at is not None:
        raise Conflict(f"flag {flag.key} is archived", details={"field": "flag"})
    config = _validated(ctx, app, flag, env, raw_config)
    latest = _latest_number(ctx.session, flag, env)
    if base_number is not None and base_number != latest:
        raise Conflict(
            f"version {latest} replaced version {base_number} while you edited; reload and try again",
            details={"field": "base_number", "latest": latest},
        )
    strategy_def = deployments.get_strategy(ctx, strategy)
    normalized = config.model_dump(mode="json")
    if env.requires_approval:
        request = ChangeRequest(
            flag_id=flag.id,
            environment_id=env.id,
            base_number=latest,
            config=normalized,
            strategy_name=strategy,
            monitors=deployments.check_monitors(ctx, monitors or {}),
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
    version = new_version(ctx, app, flag, env, normalized, comment)
    deployment = deployments.start_deployment(
        ctx, app, flag, env, version.number, strategy, strategy_def, monitors or {}
    )
    return ConfigChange(version=version, deployment=deployment)


def new_version(
    ctx: Ctx, app: FlagApp, flag: Flag, env: FlagEnvironment, config: dict[str, Any], comment: str
) -> FlagVersion:
    number = _latest_number(ctx.session, flag, env) + 1
    previous = get_version(ctx.session, flag, env, number - 1)
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
    old = get_version(ctx.session, flag, env, number)
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
    require_visible_team(ctx, app.owner_team_id, f"change request {request_id}")
    return request, flag, app, env


def approve_change(ctx: Ctx, request_id: int, note: str = "") -> ConfigChange:
    # Imported here, not at the top: deployments builds on this module's lookups.
    from mechanisms.flags import deployments

    request, flag, app, env = _get_change_request(ctx, request_id)
    require_owner(ctx, flag.owner_team_id)
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
    version = new_version(
        ctx, app, flag, env, request.config, request.comment or f"change request {request.id}"
    )
    version.author = request.requested_by
    deployment = deployments.start_deployment(
        ctx,
        app,
        flag,
        env,
        version.number,
        request.strategy_name,
        deployments.get_strategy(ctx, request.strategy_name),
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
    require_owner(ctx, flag.owner_team_id)
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


# --- archiving ----------------------------------------------------------------------


def archive(ctx: Ctx, app_key: str, flag_key: str) -> Flag:
    app = get_app(ctx, app_key)
    flag = get_flag(ctx, app, flag_key)
    require_owner(ctx, flag.owner_team_id)
    dependants = _dependants(ctx, app, flag)
    if dependants:
        raise Conflict(
            f"{', '.join(dependants)} use {flag.key} as a prerequisite", details={"field": "flag"}
        )
    before = flag_snapshot(flag)
    flag.archived_at = ctx.now
    for env in environments(ctx.session, app):
        if running_deployment(ctx.session, flag, env):
            raise Conflict(f"{flag.key} is being deployed in {env.key}")
        bump(env, ctx.now)
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
            configs = served_configs(ctx.session, other, env)
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
    require_owner(ctx, app.owner_team_id)
    check_key("key", key)
    if not isinstance(definition, dict):
        raise invalid("definition", "definition must be an object")
    try:
        segment = Segment.model_validate({**definition, "key": key})
    except ValidationError as exc:
        raise validation_error(exc, "definition.") from None
    known = _segment_keys(ctx.session, app)
    for i, rule in enumerate(segment.rules):
        for j, clause in enumerate(rule):
            if clause.op == "segment_match":
                raise invalid(
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
        bump(env, ctx.now)
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
    require_owner(ctx, app.owner_team_id)
    row = ctx.session.execute(
        select(FlagSegment).where(FlagSegment.app_id == app.id, FlagSegment.key == key)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"segment {key!r} not found in {app.key}")
    for flag in ctx.session.execute(select(Flag).where(Flag.app_id == app.id)).scalars():
        for env in environments(ctx.session, app):
            rules = [
                rule
                for config in served_configs(ctx.session, flag, env)
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
        bump(env, ctx.now)
    audit.record(
        ctx, "flags.segment_deleted", "flag_segment", f"{app.key}/{key}", before=row.definition
    )


def create_layer(ctx: Ctx, app_key: str, key: str) -> FlagLayer:
    app = get_app(ctx, app_key)
    require_owner(ctx, app.owner_team_id)
    check_key("key", key)
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
    require_owner(ctx, flag.owner_team_id)
    before = {"layer_id": flag.layer_id, "start": flag.layer_start, "end": flag.layer_end}
    if layer_key is None:
        flag.layer_id = flag.layer_start = flag.layer_end = None
    else:
        if flag.kind != "experiment":
            raise invalid("flag", "only experiment flags go in a mutual-exclusion layer")
        if not 0 < percent <= 100:
            raise invalid("percent", "percent must be above 0 and at most 100")
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
        bump(env, ctx.now)
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


def single_value(config: dict[str, Any]) -> str | None:
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
        single = single_value(version.config)
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
