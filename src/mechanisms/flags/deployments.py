"""Flag deployments: strategies, deploying a version step by step (the worker advances
each step once its wait or bake is over), completion, rollback by hand or when a watched
alarm fires, and the kill switch. Builds on the lookups of ``flags.service``; every change writes its audit record and events in the
caller's transaction. Alarm states come from the ops mechanism's service."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mechanisms.core import audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, NotFound, StaleState
from mechanisms.core.identity import Role
from mechanisms.core.permissions import organisation_of, require_site_role, require_visible_team
from mechanisms.flags import rollout
from mechanisms.flags.service import (
    RUNNING,
    bump,
    can_read,
    check_key,
    environments,
    flag_state,
    get_app,
    get_environment,
    get_flag,
    get_version,
    invalid,
    new_version,
    require_owner,
    running_deployment,
    single_value,
    validation_error,
)
from mechanisms.flags.tables import (
    DeploymentStrategy,
    Flag,
    FlagApp,
    FlagDeployment,
    FlagDeploymentStep,
    FlagEnvironment,
    FlagState,
    FlagVersion,
)
from mechanisms.ops import alarms as ops_alarms

ALARM = "ALARM"


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
    check_key("name", name)
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
        raise validation_error(exc, "definition.") from None
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


def check_monitors(ctx: Ctx, monitors: Any) -> dict[str, Any]:
    """The monitors a rollout watches, each alarm one the caller can see: a typo, or
    another organisation's alarm, would leave the rollout silently unprotected."""
    if not isinstance(monitors, dict):
        raise invalid("monitors", "monitors must be an object")
    alarms = monitors.get("alarms", [])
    if not isinstance(alarms, list) or not all(
        isinstance(a, str) and 0 < len(a) <= 200 for a in alarms
    ):
        raise invalid("monitors.alarms", "monitors.alarms must be a list of alarm names")
    guardrails = monitors.get("guardrails", False)
    if not isinstance(guardrails, bool):
        raise invalid("monitors.guardrails", "monitors.guardrails is true or false")
    unknown = set(monitors) - {"alarms", "guardrails"}
    if unknown:
        raise invalid(f"monitors.{sorted(unknown)[0]}", "unknown monitor kind")
    for i, name in enumerate(alarms):
        try:
            ops_alarms.get_alarm(ctx, name)
        except NotFound:
            raise invalid(f"monitors.alarms[{i}]", f"no ops alarm is named {name!r}") from None
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
    require_owner(ctx, flag.owner_team_id)
    if env.requires_approval:
        raise Forbidden(
            f"{env.key} needs approval: propose the change instead (it becomes a change request)"
        )
    get_version(ctx.session, flag, env, number)
    return start_deployment(
        ctx, app, flag, env, number, strategy, get_strategy(ctx, strategy), monitors or {}
    )


def start_deployment(
    ctx: Ctx,
    app: FlagApp,
    flag: Flag,
    env: FlagEnvironment,
    number: int,
    strategy_name: str,
    strategy: rollout.Strategy,
    monitors: dict[str, Any],
) -> FlagDeployment:
    monitors = check_monitors(ctx, monitors)
    state = flag_state(ctx.session, flag, env)
    running = running_deployment(ctx.session, flag, env)
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
    bump(env, ctx.now)
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


def _complete(
    ctx: Ctx, flag: Flag, env: FlagEnvironment, state: FlagState, dep: FlagDeployment
) -> None:
    old = get_version(ctx.session, flag, env, state.live_number).config
    new = get_version(ctx.session, flag, env, dep.to_number).config
    before, after = single_value(old), single_value(new)
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
    _complete(ctx, flag, env, flag_state(ctx.session, flag, env), dep)
    _record_step(ctx, dep, note)
    bump(env, ctx.now)


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
        ctx,
        action,
        "flag",
        subject,
        after=snapshot,
        details={"environment": env.key, **extra},
        org_id=organisation_of(ctx, flag.owner_team_id),
    )
    events.emit(ctx, action, "flag", subject, {"environment": env.key, **extra, **snapshot})


def firing_alarms(session: Session, dep: FlagDeployment) -> list[str]:
    """The watched alarms in ALARM now, as the ops mechanism's service reports them."""
    return ops_alarms.firing(session, dep.monitors.get("alarms", []))


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
    state = flag_state(ctx.session, flag, env)
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
    bump(env, ctx.now)
    _announce(ctx, event, app, flag, env, dep)


def get_visible(ctx: Ctx, deployment_id: int) -> FlagDeployment:
    """A deployment of a flag of the caller's organisations."""
    dep = ctx.session.get(FlagDeployment, deployment_id)
    if dep is None:
        raise NotFound(f"deployment {deployment_id} not found")
    flag = ctx.session.get(Flag, dep.flag_id)
    require_visible_team(ctx, flag.owner_team_id, f"deployment {deployment_id}")
    return dep


def rollback(ctx: Ctx, deployment_id: int, reason: str) -> FlagDeployment:
    dep = get_visible(ctx, deployment_id)
    flag = ctx.session.get(Flag, dep.flag_id)
    require_owner(ctx, flag.owner_team_id)
    if dep.state not in RUNNING:
        raise Conflict(
            f"deployment {deployment_id} is {dep.state}; only a running deployment rolls back"
        )
    if not reason.strip():
        raise invalid("reason", "say why you roll back")
    _claim(ctx, dep)
    _rollback(ctx, dep, reason.strip(), automatic=False)
    return dep


def _rollback(ctx: Ctx, dep: FlagDeployment, reason: str, *, automatic: bool) -> None:
    flag = ctx.session.get(Flag, dep.flag_id)
    env = ctx.session.get(FlagEnvironment, dep.environment_id)
    app = ctx.session.get(FlagApp, flag.app_id)
    state = flag_state(ctx.session, flag, env)
    state.deployment_id = None
    state.version += 1
    dep.state, dep.finished_at, dep.next_step_at = "rolled_back", ctx.now, None
    dep.reason = ("automatic: " if automatic else "") + reason
    dep.percent = 0.0
    _record_step(ctx, dep, dep.reason)
    bump(env, ctx.now)
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
    require_owner(ctx, flag.owner_team_id)
    if not reason.strip():
        raise invalid("reason", "say why you kill the flag")
    created = []
    for env in environments(ctx.session, app):
        running = running_deployment(ctx.session, flag, env)
        if running is not None:
            _claim(ctx, running)
            _rollback(ctx, running, f"kill switch: {reason.strip()}", automatic=False)
        state = flag_state(ctx.session, flag, env)
        live = get_version(ctx.session, flag, env, state.live_number)
        if not live.config.get("enabled", True):
            continue
        version = new_version(
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
        bump(env, ctx.now)
        created.append(version)
    audit.record(
        ctx, "flags.killed", "flag", f"{app.key}/{flag.key}", details={"reason": reason.strip()}
    )
    events.emit(ctx, "flags.killed", "flag", f"{app.key}/{flag.key}", {"reason": reason.strip()})
    return created


# --- alarms (owned by the ops mechanism) -------------------------------------------


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


def rollouts_watching(session: Session, alarm: str) -> list[str]:
    """Running rollouts whose monitors name the alarm (ops asks before deleting or renaming)."""
    running = session.execute(
        select(
            FlagDeployment.id, FlagDeployment.monitors, FlagApp.key, Flag.key, FlagEnvironment.key
        )
        .join(Flag, Flag.id == FlagDeployment.flag_id)
        .join(FlagApp, FlagApp.id == Flag.app_id)
        .join(FlagEnvironment, FlagEnvironment.id == FlagDeployment.environment_id)
        .where(FlagDeployment.state.in_(RUNNING))
    ).all()
    return [
        f"flag rollout #{deployment_id} of {app}/{flag} in {environment}"
        for deployment_id, monitors, app, flag, environment in running
        if alarm in (monitors or {}).get("alarms", [])
    ]
