"""Experiments (treatment groups): exposures and feedback in, results and decisions out.

SDKs report the first time each unit (targeting key) is served a variant; anyone may
send feedback keyed by the same targeting key (a rating, a conversion, a latency, a
comment). Results join the two: per variant, per metric, with the statistics of
``mechanisms.flags.stats``. Deciding ships the winner through a gradual rollout or rolls
the flag back to the control, in one step, with the reason recorded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mechanisms.core import audit, events, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, require_visible_team
from mechanisms.flags import deployments, service, stats
from mechanisms.flags.domain import KEY_PATTERN, FlagConfig, Serve
from mechanisms.flags.tables import (
    Flag,
    FlagApp,
    FlagEnvironment,
    FlagExperiment,
    FlagExposure,
    FlagFeedback,
)

KEY_RE = re.compile(KEY_PATTERN)
MAX_BATCH = 1000
DIRECTIONS = ("increase_is_bad", "decrease_is_bad")


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


# --- setting up ---------------------------------------------------------------------


def _check_metrics(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw or len(raw) > 20:
        raise _invalid("metrics", "give 1-20 metrics")
    metrics, names = [], set()
    for i, metric in enumerate(raw):
        field = f"metrics.{i}"
        if not isinstance(metric, dict):
            raise _invalid(field, "each metric is an object")
        unknown = set(metric) - {"name", "kind", "higher_is_better", "guardrail"}
        if unknown:
            raise _invalid(f"{field}.{sorted(unknown)[0]}", "unknown field")
        name = metric.get("name")
        if not isinstance(name, str) or not KEY_RE.match(name):
            raise _invalid(
                f"{field}.name", "a metric name is 1-128 letters, digits, '.', '_' or '-'"
            )
        if name in names:
            raise _invalid(f"{field}.name", f"metric {name!r} is listed twice")
        names.add(name)
        kind = metric.get("kind", "numeric")
        if kind not in ("conversion", "numeric"):
            raise _invalid(f"{field}.kind", "kind is conversion or numeric")
        higher = metric.get("higher_is_better", True)
        if not isinstance(higher, bool):
            raise _invalid(f"{field}.higher_is_better", "true or false")
        guard = metric.get("guardrail")
        if guard is not None:
            if not isinstance(guard, dict) or guard.get("direction") not in DIRECTIONS:
                raise _invalid(
                    f"{field}.guardrail.direction",
                    "direction is increase_is_bad or decrease_is_bad",
                )
            bound = guard.get("bound")
            if isinstance(bound, bool) or not isinstance(bound, int | float) or not 0 < bound <= 10:
                raise _invalid(
                    f"{field}.guardrail.bound", "bound is a relative change above 0 and at most 10"
                )
            guard = {"direction": guard["direction"], "bound": float(bound)}
        metrics.append({"name": name, "kind": kind, "higher_is_better": higher, "guardrail": guard})
    return metrics


def _split_of(config: FlagConfig) -> dict[str, float]:
    """The split the experiment measures: the fallthrough's, or the first rule's."""
    serves: list[Serve] = [config.fallthrough, *(rule.serve for rule in config.rules)]
    for serve in serves:
        if serve.split is not None:
            weights: dict[str, float] = {}
            for part in serve.split:
                weights[part.variant] = weights.get(part.variant, 0.0) + part.percent
            return weights
    raise InvalidInput(
        "the flag serves no percentage split here; split its variants before running an experiment",
        details={"field": "config"},
    )


def _served_config(ctx: Ctx, flag: Flag, env: FlagEnvironment) -> FlagConfig:
    return FlagConfig.model_validate(service.served_configs(ctx.session, flag, env)[-1])


def start(
    ctx: Ctx,
    app_key: str,
    flag_key: str,
    env_key: str,
    *,
    control: str,
    metrics: Any,
    hypothesis: str = "",
) -> FlagExperiment:
    app = service.get_app(ctx, app_key)
    flag, env = service.get_flag(ctx, app, flag_key), service.get_environment(ctx, app, env_key)
    service.require_owner(ctx, flag.owner_team_id)
    if _running(ctx, flag, env) is not None:
        raise Conflict(f"{flag.key} already runs an experiment in {env.key}")
    weights = _split_of(_served_config(ctx, flag, env))
    if control not in weights:
        raise _invalid(
            "control", f"the control must be one of the split's variants: {', '.join(weights)}"
        )
    experiment = FlagExperiment(
        flag_id=flag.id,
        environment_id=env.id,
        hypothesis=hypothesis.strip(),
        control_variant=control,
        weights=weights,
        metrics=_check_metrics(metrics),
        state="running",
        started_at=ctx.now,
        created_by=ctx.principal.actor,
    )
    ctx.session.add(experiment)
    ctx.session.flush()
    audit.record(
        ctx,
        "flags.experiment_started",
        "flag_experiment",
        experiment.id,
        after={
            "flag": flag.key,
            "environment": env.key,
            "control": control,
            "weights": weights,
            "metrics": experiment.metrics,
            "hypothesis": experiment.hypothesis,
        },
    )
    events.emit(
        ctx,
        "flags.experiment_started",
        "flag",
        f"{app.key}/{flag.key}",
        {"experiment": experiment.id, "environment": env.key},
    )
    return experiment


def _running(ctx: Ctx, flag: Flag, env: FlagEnvironment) -> FlagExperiment | None:
    return ctx.session.execute(
        select(FlagExperiment).where(
            FlagExperiment.flag_id == flag.id,
            FlagExperiment.environment_id == env.id,
            FlagExperiment.state == "running",
        )
    ).scalar_one_or_none()


def get(ctx: Ctx, experiment_id: int) -> FlagExperiment:
    service.can_read(ctx)
    experiment = ctx.session.get(FlagExperiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} not found")
    flag = ctx.session.get(Flag, experiment.flag_id)
    require_visible_team(ctx, flag.owner_team_id, f"experiment {experiment_id}")
    return experiment


def list_for(ctx: Ctx, app_key: str, flag_key: str | None = None) -> list[FlagExperiment]:
    service.can_read(ctx)
    app = service.get_app(ctx, app_key)
    query = (
        select(FlagExperiment)
        .join(Flag, Flag.id == FlagExperiment.flag_id)
        .where(Flag.app_id == app.id)
    )
    if flag_key:
        query = query.where(Flag.key == flag_key)
    return list(ctx.session.execute(query.order_by(FlagExperiment.id.desc())).scalars())


# --- exposures and feedback ---------------------------------------------------------


def _text(item: dict[str, Any], field: str, path: str, max_len: int) -> str:
    value = item.get(field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _invalid(f"{path}.{field}", f"a non-empty string of at most {max_len} characters")
    return _valid_text(value, f"{path}.{field}")


def _valid_text(value: str, field: str) -> str:
    try:
        return inputs.text(value)
    except ValueError as exc:
        raise _invalid(field, str(exc)) from None


def _batch(raw: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _invalid(field, "a list")
    if len(raw) > MAX_BATCH:
        raise _invalid(field, f"at most {MAX_BATCH} items per request")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _invalid(f"{field}.{i}", "each item is an object")
    return raw


def _insert_ignoring_duplicates(ctx: Ctx, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    insert = pg_insert if ctx.session.bind.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(FlagExposure)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["environment_id", "flag_key", "targeting_key"])
    )
    return ctx.session.execute(statement).rowcount or 0


def record_exposures(ctx: Ctx, app_key: str, env_key: str, raw: Any) -> int:
    """Store first exposures; a unit already exposed keeps its first variant. The whole
    batch is checked before anything is stored."""
    require_site_role(ctx, Role.ENGINEER)
    app = service.get_app(ctx, app_key)
    env = service.get_environment(ctx, app, env_key)
    rows = []
    for i, item in enumerate(_batch(raw, "exposures")):
        path = f"exposures.{i}"
        rows.append(
            {
                "environment_id": env.id,
                "flag_key": _text(item, "flag", path, 128),
                "targeting_key": _text(item, "targetingKey", path, 256),
                "variant": _text(item, "variant", path, 128),
                "first_seen_at": ctx.now,
            }
        )
    unique = list({(r["flag_key"], r["targeting_key"]): r for r in rows}.values())
    return _insert_ignoring_duplicates(ctx, unique)


def record_feedback(ctx: Ctx, app_key: str, env_key: str, raw: Any) -> int:
    require_site_role(ctx, Role.ENGINEER)
    app = service.get_app(ctx, app_key)
    env = service.get_environment(ctx, app, env_key)
    rows = []
    for i, item in enumerate(_batch(raw, "events")):
        path = f"events.{i}"
        metric = _text(item, "metric", path, 128)
        if not KEY_RE.match(metric):
            raise _invalid(f"{path}.metric", "1-128 letters, digits, '.', '_' or '-'")
        value = item.get("value", 1.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _invalid(f"{path}.value", "a finite number")
        comment = item.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 5000):
            raise _invalid(f"{path}.comment", "a string of at most 5000 characters")
        if comment is not None:
            _valid_text(comment, f"{path}.comment")
        rows.append(
            FlagFeedback(
                environment_id=env.id,
                targeting_key=_text(item, "targetingKey", path, 256),
                metric=metric,
                value=float(value),
                comment=comment,
                at=ctx.now,
            )
        )
    ctx.session.add_all(rows)
    ctx.session.flush()
    return len(rows)


# --- results ------------------------------------------------------------------------


@dataclass
class MetricResult:
    metric: dict[str, Any]
    analysis: stats.ExperimentAnalysis | None
    not_enough_data: str | None
    guardrails: dict[str, stats.GuardrailResult]


@dataclass
class Results:
    experiment: FlagExperiment
    flag_key: str
    environment: str
    exposures: dict[str, int]
    sample_ratio: stats.SampleRatioResult | None
    metrics: list[MetricResult]
    comments: dict[str, list[str]]


def _exposure_filter(experiment: FlagExperiment, flag_key: str) -> Any:
    return and_(
        FlagExposure.environment_id == experiment.environment_id,
        FlagExposure.flag_key == flag_key,
        FlagExposure.first_seen_at >= experiment.started_at,
    )


def _feedback_join(metric: str) -> Any:
    # Only feedback after the unit's first exposure can be caused by what it was shown.
    return and_(
        FlagFeedback.environment_id == FlagExposure.environment_id,
        FlagFeedback.targeting_key == FlagExposure.targeting_key,
        FlagFeedback.metric == metric,
        FlagFeedback.at >= FlagExposure.first_seen_at,
    )


def _summaries(
    ctx: Ctx,
    experiment: FlagExperiment,
    flag_key: str,
    metric: dict[str, Any],
    exposures: dict[str, int],
) -> dict[str, stats.Summary]:
    where = _exposure_filter(experiment, flag_key)
    if metric["kind"] == "conversion":
        converted = dict(
            ctx.session.execute(
                select(FlagExposure.variant, func.count(func.distinct(FlagExposure.targeting_key)))
                .join(FlagFeedback, _feedback_join(metric["name"]))
                .where(where, FlagFeedback.value > 0)
                .group_by(FlagExposure.variant)
            ).all()
        )
        return {v: stats.ConversionSummary(n, converted.get(v, 0)) for v, n in exposures.items()}
    per_unit = (
        select(FlagExposure.variant.label("variant"), func.avg(FlagFeedback.value).label("value"))
        .join(FlagFeedback, _feedback_join(metric["name"]))
        .where(where)
        .group_by(FlagExposure.variant, FlagExposure.targeting_key)
        .subquery()
    )
    rows = ctx.session.execute(
        select(
            per_unit.c.variant,
            func.count(),
            func.sum(per_unit.c.value),
            func.sum(per_unit.c.value * per_unit.c.value),
        ).group_by(per_unit.c.variant)
    ).all()
    found = {
        v: stats.NumericSummary(n, total or 0.0, squares or 0.0) for v, n, total, squares in rows
    }
    return {v: found.get(v, stats.NumericSummary(0, 0.0, 0.0)) for v in exposures}


def results(ctx: Ctx, experiment_id: int, level: float = 0.95) -> Results:
    experiment = get(ctx, experiment_id)
    flag = ctx.session.get(Flag, experiment.flag_id)
    env = ctx.session.get(FlagEnvironment, experiment.environment_id)
    counted = dict(
        ctx.session.execute(
            select(FlagExposure.variant, func.count())
            .where(_exposure_filter(experiment, flag.key))
            .group_by(FlagExposure.variant)
        ).all()
    )
    exposures = {v: counted.get(v, 0) for v in experiment.weights} | counted
    srm = None
    if sum(exposures.values()) > 0:
        weights = {v: experiment.weights.get(v, 0.0) for v in exposures}
        srm = stats.sample_ratio_mismatch(exposures, weights)
    metric_results = []
    for metric in experiment.metrics:
        summaries = _summaries(ctx, experiment, flag.key, metric, exposures)
        try:
            analysis = stats.analyze(summaries, experiment.control_variant, level=level)
            problem = None
        except stats.InsufficientData as exc:
            analysis, problem = None, str(exc)
        guardrails = {}
        if metric["guardrail"] and analysis is not None:
            guardrails = _guardrails(
                summaries, experiment.control_variant, metric["guardrail"], level
            )
        metric_results.append(MetricResult(metric, analysis, problem, guardrails))
    comments = _comments(ctx, experiment, flag.key)
    return Results(experiment, flag.key, env.key, exposures, srm, metric_results, comments)


def _guardrails(
    summaries: dict[str, stats.Summary], control: str, guard: dict[str, Any], level: float
) -> dict[str, stats.GuardrailResult]:
    found = {}
    for variant, summary in summaries.items():
        if variant == control:
            continue
        try:
            found[variant] = stats.guardrail(
                summaries[control],
                summary,
                direction=guard["direction"],
                bound=guard["bound"],
                level=level,
            )
        except stats.InsufficientData:
            continue
    return found


def _comments(
    ctx: Ctx, experiment: FlagExperiment, flag_key: str, per_variant: int = 5
) -> dict[str, list[str]]:
    rows = ctx.session.execute(
        select(FlagExposure.variant, FlagFeedback.comment)
        .join(
            FlagFeedback,
            and_(
                FlagFeedback.environment_id == FlagExposure.environment_id,
                FlagFeedback.targeting_key == FlagExposure.targeting_key,
                FlagFeedback.at >= FlagExposure.first_seen_at,
            ),
        )
        .where(_exposure_filter(experiment, flag_key), FlagFeedback.comment.is_not(None))
        .order_by(FlagFeedback.id.desc())
        .limit(200)
    ).all()
    found: dict[str, list[str]] = {}
    for variant, comment in rows:
        bucket = found.setdefault(variant, [])
        if len(bucket) < per_variant:
            bucket.append(comment)
    return found


def crossed_guardrails(ctx: Ctx, flag: Flag, env: FlagEnvironment) -> list[str]:
    """Guardrails of the running experiment that a treatment crossed: the rollout worker
    rolls back when this is not empty. Always-valid intervals make re-checking safe."""
    experiment = _running(ctx, flag, env)
    if experiment is None:
        return []
    found = results(ctx, experiment.id)
    return [
        f"{m.metric['name']} ({variant}): {g.reason}"
        for m in found.metrics
        for variant, g in m.guardrails.items()
        if g.crossed
    ]


# --- deciding -----------------------------------------------------------------------


def _serving_only(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """The configuration with every split replaced by one variant: the decision applied."""

    def settle(serve: dict[str, Any]) -> dict[str, Any]:
        return {"variant": variant} if serve.get("split") is not None else serve

    return {
        **config,
        "rules": [{**rule, "serve": settle(rule["serve"])} for rule in config.get("rules", [])],
        "fallthrough": settle(config["fallthrough"]),
    }


def decide(
    ctx: Ctx,
    experiment_id: int,
    decision: str,
    reason: str,
    *,
    variant: str | None = None,
    strategy: str = "Linear20PercentEvery6Minutes",
) -> service.ConfigChange:
    """Ship a variant (a gradual rollout to everyone) or roll back to the control (at once)."""
    experiment = get(ctx, experiment_id)
    flag = ctx.session.get(Flag, experiment.flag_id)
    env = ctx.session.get(FlagEnvironment, experiment.environment_id)
    app = ctx.session.get(FlagApp, flag.app_id)
    service.require_owner(ctx, flag.owner_team_id)
    if experiment.state != "running":
        raise Conflict(f"experiment {experiment_id} was already decided ({experiment.state})")
    if not reason.strip():
        raise _invalid("reason", "say why")
    if decision == "ship":
        chosen = variant or ""
        if chosen not in experiment.weights:
            raise _invalid("variant", f"ship one of {', '.join(experiment.weights)}")
    elif decision == "rollback":
        chosen, strategy = experiment.control_variant, "AllAtOnce"
    else:
        raise _invalid("decision", "decision is ship or rollback")
    running = service.running_deployment(ctx.session, flag, env)
    if running is not None:
        deployments.finish_now(ctx, running, f"completed early: experiment {experiment.id} decided")
    config = _serving_only(service.served_configs(ctx.session, flag, env)[0], chosen)
    change = service.set_config(
        ctx,
        app.key,
        flag.key,
        env.key,
        config,
        comment=f"experiment {experiment.id}: {decision} {chosen}",
        strategy=strategy,
    )
    experiment.state = "shipped" if decision == "ship" else "rolled_back"
    experiment.ended_at, experiment.decision, experiment.decision_variant = (
        ctx.now,
        decision,
        chosen,
    )
    experiment.reason, experiment.decided_by = reason.strip(), ctx.principal.actor
    audit.record(
        ctx,
        "flags.experiment_decided",
        "flag_experiment",
        experiment.id,
        after={"decision": decision, "variant": chosen, "reason": experiment.reason},
    )
    events.emit(
        ctx,
        "flags.experiment_decided",
        "flag",
        f"{app.key}/{flag.key}",
        {
            "experiment": experiment.id,
            "decision": decision,
            "variant": chosen,
            "environment": env.key,
        },
    )
    return change
