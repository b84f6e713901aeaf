"""The flags web UI: applications, the flags list, a flag's page and editor, rollout
charts, experiment results, history and segments.

Server-rendered with Jinja2 and htmx; pictures are inline SVG drawn here. Pages call the
flags service, deployments and experiments modules only, so authorisation stays there;
the editor's form ⇄ configuration translation is ``flags.editor``. The templates live in
``flags/templates`` and are found as ``flags/<name>.html``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, MechanismsError, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import team_role
from mechanisms.flags import deployments, editor, experiments, rollout, service, stats
from mechanisms.flags.domain import Op
from mechanisms.ops import alarms as ops_alarms
from mechanisms.web import attention
from mechanisms.web import pages as web
from mechanisms.web.http import RowId, UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx, done, is_htmx
from mechanisms.web.scales import nice_ceil

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)


web.register_templates("flags", TEMPLATES_DIR)


# --- formatting helpers the templates use -------------------------------------------

OPS: list[str] = list(get_args(Op))
OP_LABELS = {
    "equals": "is",
    "in": "is one of",
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "matches": "matches",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
    "semver_eq": "version =",
    "semver_lt": "version <",
    "semver_lte": "version ≤",
    "semver_gt": "version >",
    "semver_gte": "version ≥",
    "before": "is before",
    "after": "is after",
    "segment_match": "is in segment",
}
PALETTE = ["#2563eb", "#f59e0b", "#0d9488", "#db2777", "#7c3aed", "#65a30d", "#0891b2", "#dc2626"]
KINDS = list(service.FLAG_KINDS)
TYPES = list(service.FLAG_TYPES)


def _when(value: datetime | None, seconds: bool = False) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}".rstrip("0").rstrip(".") + " %"


def _value(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _variant_colors(config: dict[str, Any]) -> dict[str, str]:
    names = list(config.get("variants") or {}) if isinstance(config, dict) else []
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")


def _split_sum(parts: list[dict[str, Any]]) -> float:
    total = 0.0
    for part in parts:
        try:
            total += float(part.get("percent", 0))
        except (TypeError, ValueError):
            continue
    return round(total, 3)


def _strategy_summary(strategy: rollout.Strategy) -> str:
    steps = rollout.plan(strategy)
    shares = ", ".join(_pct(p) for _, p in steps[:6]) + (" …" if len(steps) > 6 else "")
    total = sum(wait for wait, _ in steps)
    text = f"{shares}" + (f" over {_duration(total)}" if total else " at once")
    if strategy.bake_seconds:
        text += f", then bake {_duration(strategy.bake_seconds)}"
    return text


H = SimpleNamespace(
    when=_when,
    pct=_pct,
    value=_value,
    duration=_duration,
    op_label=lambda op: OP_LABELS.get(op, op),
    colors=_variant_colors,
    palette=PALETTE,
    split_sum=_split_sum,
)


def _render(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    return web.render(
        request, f"flags/{template}", status_code=status_code, section="flags", h=H, **values
    )


def _back(target: str | None, default: str) -> str:
    # Only our own pages: a crafted link must not send people elsewhere after an action.
    if target and target.startswith("/flags") and "//" not in target and "\\" not in target:
        return target
    return default


def _teams(ctx: Ctx) -> dict[int, Any]:
    return {t.id: t for t in accounts.list_teams(ctx)}


def _can_change(ctx: Ctx, team_id: int) -> bool:
    """Only decides which buttons to show; the service decides what is allowed."""
    role = team_role(ctx, team_id)
    return role is not None and role >= Role.ENGINEER


async def _form(request: Request) -> FormData:
    return await request.form()


FormFields = Annotated[FormData, Depends(_form)]


# --- the home page: change requests waiting for this person ---------------------------


@attention.provide("flags.change_requests")
def _changes_to_approve(ctx: Ctx) -> list[attention.Item]:
    """Open change requests of flags the person may change, written by someone else."""
    if not ctx.principal.is_human:
        return []
    items = []
    for app in service.list_apps(ctx):
        requests = service.change_requests(ctx, app.key, "open")
        if not requests:
            continue
        flags = {f.id: f for f in service.list_flags(ctx, app.key, include_archived=True)}
        for r in requests:
            flag = flags.get(r.flag_id)
            if (
                flag is None
                or r.requested_by_user_id == ctx.principal.user_id
                or not _can_change(ctx, flag.owner_team_id)
            ):
                continue
            items.append(
                attention.Item(
                    title=f"Approve or reject a change to {app.key}/{flag.key}",
                    detail=f"{r.requested_by} asks"
                    + (f": “{r.comment}”" if r.comment else " for a second person's approval"),
                    link=f"/flags/{app.key}/{flag.key}#cr-{r.id}",
                    urgency=2,
                    mechanism="flags",
                )
            )
    return items


# --- applications -------------------------------------------------------------------


@router.get("/flags")
def apps_page(request: Request, ctx: PageCtx) -> Response:
    apps = service.list_apps(ctx)
    teams = _teams(ctx)
    rows = []
    for app in apps:
        flags = service.list_flags(ctx, app.key)
        rows.append(
            {
                "app": app,
                "team": teams.get(app.owner_team_id),
                "environments": service.environments(ctx.session, app),
                "flags": len(flags),
                "kinds": sorted({f.kind for f in flags}),
            }
        )
    return _render(request, "apps.html", rows=rows, teams=list(teams.values()))


@router.post("/flags")
def create_app_form(
    request: Request,
    ctx: FormCtx,
    key: Annotated[str, Form(max_length=128)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    owner_team: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    app = service.create_app(ctx, key.strip(), name, owner_team)
    return done(request, f"/flags/{app.key}")


# --- experiments --------------------------------------------------------------------


def _flag_by_id(ctx: Ctx, flag_id: int) -> tuple[Any, Any]:
    """(application, flag) of a flag id, found through the service's listings."""
    for app in service.list_apps(ctx):
        for flag in service.list_flags(ctx, app.key, include_archived=True):
            if flag.id == flag_id:
                return app, flag
    raise NotFound("the experiment's flag is gone")


def _fmt_number(value: float | None, kind: str, *, difference: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—" if value is None else ("+∞" if value > 0 else "−∞")
    if kind == "conversion":
        text = f"{value * 100:+.2f} pp" if difference else f"{value * 100:.2f} %"
    else:
        text = f"{value:+.4g}" if difference else f"{value:.4g}"
    return text.replace("-", "−")


def _fmt_interval(low: float, high: float, kind: str) -> str:
    return (
        f"[{_fmt_number(low, kind, difference=True)}, {_fmt_number(high, kind, difference=True)}]"
    )


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.0001" if p < 0.0001 else f"{p:.4f}"


@dataclass
class IntervalRow:
    variant: str
    color: str
    estimate: float
    ci: tuple[float, float]
    av: tuple[float, float]
    verdict: str  # better | worse | unclear


@dataclass
class IntervalPlot:
    rows: list[IntervalRow]
    span: float
    ticks: list[tuple[float, str]] = field(default_factory=list)

    def x(self, value: float) -> float:
        """Position in the plot's 0..1000 viewBox; values beyond the span sit at the edge."""
        if not math.isfinite(value):
            return 1000.0 if value > 0 else 0.0
        return max(0.0, min(1000.0, 500 + value / self.span * 500))


def _interval_plot(
    metric: dict[str, Any], analysis: stats.ExperimentAnalysis, colors: dict[str, str]
) -> IntervalPlot | None:
    rows = []
    higher = metric.get("higher_is_better", True)
    for name, result in analysis.treatments.items():
        if result.comparison is None or result.sequential is None:
            continue
        c, s = result.comparison, result.sequential
        if c.ci_low > 0:
            verdict = "better" if higher else "worse"
        elif c.ci_high < 0:
            verdict = "worse" if higher else "better"
        else:
            verdict = "unclear"
        rows.append(
            IntervalRow(
                name,
                colors.get(name, PALETTE[0]),
                c.difference,
                (c.ci_low, c.ci_high),
                (s.ci_low, s.ci_high),
                verdict,
            )
        )
    if not rows:
        return None
    finite = [abs(v) for r in rows for v in (*r.ci, *r.av, r.estimate) if math.isfinite(v)]
    span = nice_ceil((max(finite) if finite else 0.0) * 1.05)
    plot = IntervalPlot(rows, span)

    def tick(v: float) -> str:
        if not v:
            return "0"
        text = f"{v * 100:+.4g} pp" if metric["kind"] == "conversion" else f"{v:+.4g}"
        return text.replace("-", "−")

    plot.ticks = [(plot.x(v), tick(v)) for v in (-span, -span / 2, 0.0, span / 2, span)]
    return plot


def _metric_view(m: experiments.MetricResult, colors: dict[str, str]) -> dict[str, Any]:
    metric, kind = m.metric, m.metric["kind"]
    higher = metric.get("higher_is_better", True)
    view: dict[str, Any] = {
        "metric": metric,
        "problem": m.not_enough_data,
        "rows": [],
        "plot": None,
    }
    analysis = m.analysis
    if analysis is None:
        return view
    for name, described in analysis.variants.items():
        row: dict[str, Any] = {
            "variant": name,
            "color": colors.get(name, PALETTE[0]),
            "control": name == analysis.control,
            "n": described.n,
            "mean": _fmt_number(described.mean, kind),
        }
        treated = analysis.treatments.get(name)
        if treated is not None and treated.comparison is not None:
            c, b, s = treated.comparison, treated.bayesian, treated.sequential
            chance = b.chance_to_beat_control if b else None
            if chance is not None and not higher:
                chance = 1 - chance
            row.update(
                difference=_fmt_number(c.difference, kind, difference=True),
                relative=(
                    f"{c.relative_difference:+.1%}".replace("-", "−")
                    if c.relative_difference is not None
                    else ""
                ),
                ci=_fmt_interval(c.ci_low, c.ci_high, kind),
                p=_fmt_p(c.p_value),
                significant=c.p_value < 1 - analysis.level,
                chance=f"{chance:.1%}" if chance is not None else "—",
                av=_fmt_interval(s.ci_low, s.ci_high, kind) if s else "—",
                av_p=_fmt_p(s.p_value) if s else "—",
            )
        elif treated is not None:
            row["problem"] = treated.not_enough_data
        view["rows"].append(row)
    view["plot"] = _interval_plot(metric, analysis, colors)
    view["level"] = f"{analysis.level:.0%}"
    return view


@router.get("/flags/experiments/{experiment_id}")
def experiment_page(request: Request, experiment_id: RowId, ctx: PageCtx) -> Response:
    found = experiments.results(ctx, experiment_id)
    e = found.experiment
    app, flag = _flag_by_id(ctx, e.flag_id)
    variants = list(found.exposures)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(variants)}
    total = sum(found.exposures.values())
    weight_total = sum(e.weights.values()) or 1
    exposures = [
        {
            "variant": name,
            "color": colors[name],
            "n": n,
            "observed": n / total if total else 0.0,
            "expected": e.weights.get(name, 0.0) / weight_total,
        }
        for name, n in found.exposures.items()
    ]
    guardrails = [
        {"metric": m.metric, "variant": variant, "result": g}
        for m in found.metrics
        for variant, g in m.guardrails.items()
    ]
    return _render(
        request,
        "experiment.html",
        experiment=e,
        app=app,
        flag=flag,
        results=found,
        exposures=exposures,
        total=total,
        metrics=[_metric_view(m, colors) for m in found.metrics],
        guardrails=guardrails,
        colors=colors,
        treatments=[v for v in e.weights if v != e.control_variant],
        strategies=deployments.list_strategies(ctx),
        can_change=_can_change(ctx, flag.owner_team_id),
        fmt_p=_fmt_p,
    )


@router.post("/flags/experiments/{experiment_id}/decide")
def decide_form(
    request: Request,
    experiment_id: RowId,
    ctx: FormCtx,
    decision: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    strategy: Annotated[str, Form(max_length=128)] = "Linear20PercentEvery6Minutes",
) -> Response:
    kind, _, variant = decision.partition(":")
    experiments.decide(ctx, experiment_id, kind, reason, variant=variant or None, strategy=strategy)
    return done(request, f"/flags/experiments/{experiment_id}")


# --- change requests ----------------------------------------------------------------


@router.post("/flags/change-requests/{request_id}/{verdict}")
def decide_change_form(
    request: Request,
    request_id: RowId,
    verdict: str,
    ctx: FormCtx,
    note: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if verdict == "approve":
        service.approve_change(ctx, request_id, note)
    elif verdict == "reject":
        service.reject_change(ctx, request_id, note)
    else:
        raise InvalidInput("approve or reject", details={"field": "verdict"})
    target = _back(next, "/flags")
    verdict_done = "approved" if verdict == "approve" else "rejected"
    return done(request, f"{target}{'&' if '?' in target else '?'}done={verdict_done}")


# --- one application's flags ---------------------------------------------------------


@dataclass
class FlagRow:
    flag: Any
    team: Any
    states: dict[str, service.FlagStatus]

    @property
    def stale(self) -> bool:
        return any(s.stale for s in self.states.values())


def _flag_rows(ctx: Ctx, app_key: str, kind: str, stale: bool, q: str) -> list[FlagRow]:
    teams = _teams(ctx)
    rows: dict[int, FlagRow] = {}
    for status in service.statuses(ctx, app_key):
        flag = status.flag
        row = rows.setdefault(flag.id, FlagRow(flag, teams.get(flag.owner_team_id), {}))
        row.states[status.environment] = status
    needle = q.strip().lower()
    return [
        r
        for r in rows.values()
        if (not kind or r.flag.kind == kind)
        and (not stale or r.stale)
        and (not needle or needle in r.flag.key.lower())
    ]


@router.get("/flags/{app_key}")
def app_page(
    request: Request,
    app_key: str,
    ctx: PageCtx,
    kind: Annotated[str, Query(max_length=32)] = "",
    stale: Annotated[str, Query(max_length=8)] = "",
    q: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    app = service.get_app(ctx, app_key)
    envs = service.environments(ctx.session, app)
    rows = _flag_rows(ctx, app_key, kind, bool(stale), q)
    values = {
        "app": app,
        "environments": envs,
        "rows": rows,
        "filters": {"kind": kind, "stale": bool(stale), "q": q},
    }
    if is_htmx(request) and request.headers.get("hx-target") == "flag-rows":
        return _render(request, "flag_rows.html", **values)
    teams = _teams(ctx)
    return _render(
        request,
        "app.html",
        kinds=KINDS,
        types=TYPES,
        teams=list(teams.values()),
        team=teams.get(app.owner_team_id),
        experiments=experiments.list_for(ctx, app_key)[:20],
        env_names={e.id: e.key for e in envs},
        flag_keys={f.id: f.key for f in service.list_flags(ctx, app_key, include_archived=True)},
        can_change=_can_change(ctx, app.owner_team_id),
        **values,
    )


@router.post("/flags/{app_key}/flags")
def create_flag_form(
    request: Request,
    app_key: str,
    ctx: FormCtx,
    key: Annotated[str, Form(max_length=128)] = "",
    kind: Annotated[str, Form(max_length=32)] = "release",
    flag_type: Annotated[str, Form(max_length=16)] = "boolean",
    description: Annotated[str, Form(max_length=2000)] = "",
    variants: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    parsed = editor.json_field(variants, "variants") if variants.strip() else None
    flag = service.create_flag(
        ctx,
        app_key,
        key.strip(),
        flag_type=flag_type,
        kind=kind,
        description=description,
        variants=parsed,
    )
    return done(request, f"/flags/{app_key}/{flag.key}")


# --- segments -----------------------------------------------------------------------


def _segments_page(
    request: Request,
    ctx: Ctx,
    app_key: str,
    status_code: int = 200,
    error: dict[str, Any] | None = None,
) -> Response:
    app = service.get_app(ctx, app_key)
    segments = service.list_segments(ctx, app_key)
    return _render(
        request,
        "segments.html",
        usage=_segment_usage(ctx, app),
        status_code=status_code,
        app=app,
        segments=segments,
        pretty={s.key: json.dumps(s.definition, indent=2, ensure_ascii=False) for s in segments},
        error=error,
        can_change=_can_change(ctx, app.owner_team_id),
        example=json.dumps(
            {
                "included": ["user-1"],
                "excluded": [],
                "rules": [[{"attribute": "email", "op": "ends_with", "values": ["@acme.test"]}]],
            },
            indent=2,
        ),
    )


def _segment_usage(ctx: Ctx, app: Any) -> dict[str, list[tuple[str, str]]]:
    """Which flags use each segment in their live configuration: (flag, environment)."""
    used: dict[str, list[tuple[str, str]]] = {}
    for status in service.statuses(ctx, app.key):
        flag = status.flag
        live = next(
            (
                v
                for v in service.versions(ctx, app.key, flag.key, status.environment)
                if v.number == status.live_number
            ),
            None,
        )
        for rule in live.config.get("rules", []) if live else []:
            for clause in rule.get("clauses", []):
                if clause.get("op") == "segment_match":
                    for key in clause.get("values", []):
                        pair = (flag.key, status.environment)
                        if pair not in used.setdefault(key, []):
                            used[key].append(pair)
    return used


@router.get("/flags/{app_key}/-/segments")
def segments_page(request: Request, app_key: str, ctx: PageCtx) -> Response:
    return _segments_page(request, ctx, app_key)


@router.post("/flags/{app_key}/-/segments")
def set_segment_form(
    request: Request,
    app_key: str,
    ctx: FormCtx,
    key: Annotated[str, Form(max_length=128)] = "",
    description: Annotated[str, Form(max_length=2000)] = "",
    definition: Annotated[str, Form(max_length=900_000)] = "",
    action: Annotated[str, Form(max_length=16)] = "save",
) -> Response:
    try:
        if action == "delete":
            service.delete_segment(ctx, app_key, key)
        else:
            service.set_segment(
                ctx, app_key, key.strip(), editor.json_field(definition, "definition"), description
            )
    except MechanismsError as exc:
        # Show the form again as typed, with the reason, and write nothing.
        ctx.session.rollback()
        error = {
            "key": key,
            "description": description,
            "definition": definition,
            "message": exc.message,
            "field": (exc.details or {}).get("field") if isinstance(exc.details, dict) else None,
            "new": key not in {s.key for s in service.list_segments(ctx, app_key)},
        }
        return _segments_page(request, ctx, app_key, exc.status, error)
    return done(request, f"/flags/{app_key}/-/segments#segment-{key}")


# --- one flag -----------------------------------------------------------------------


@dataclass
class EnvView:
    env: Any
    status: service.FlagStatus
    versions: list[Any]
    live: Any
    deploying: Any | None
    deployment: Any | None
    change_requests: list[Any]

    @property
    def latest(self) -> int:
        return self.versions[0].number

    @property
    def deploying_diff(self) -> list[tuple[str, str]]:
        return _diff(self.live.config, self.deploying.config) if self.deploying else []


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, line) of a unified diff between two configurations, pretty-printed."""

    def lines(config: dict[str, Any] | None) -> list[str]:
        if config is None:
            return []
        return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    out = []
    for line in difflib.unified_diff(lines(before), lines(after), lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "ctx")
        out.append((kind, line))
    return out


def _env_views(ctx: Ctx, app: Any, flag: Any) -> list[EnvView]:
    statuses = {s.environment: s for s in service.statuses(ctx, app.key) if s.flag.id == flag.id}
    requests = [r for r in service.change_requests(ctx, app.key, "open") if r.flag_id == flag.id]
    views = []
    for env in service.environments(ctx.session, app):
        status = statuses.get(env.key)
        if status is None:
            continue
        versions = service.versions(ctx, app.key, flag.key, env.key)
        by_number = {v.number: v for v in versions}
        dep = status.deployment
        views.append(
            EnvView(
                env=env,
                status=status,
                versions=versions,
                live=by_number[status.live_number],
                deploying=by_number.get(dep.to_number) if dep else None,
                deployment=dep,
                change_requests=[r for r in requests if r.environment_id == env.id],
            )
        )
    return views


NOTICES = {
    "saved": "Saved version {v} in {env}.",
    "requested": "Change request {cr} opened for {env}: another person approves it.",
    "killed": "Killed: every environment serves the off variant now.",
    "rolled_back": "Rolled back: {env} serves version {v} again.",
    "restored": "Version {v} was restored in {env}.",
    "approved": "Approved: the change is deploying.",
    "rejected": "Rejected the change request.",
}


def _notice(request: Request) -> str | None:
    template = NOTICES.get(request.query_params.get("done", ""))
    if template is None:
        return None
    env = request.query_params.get("env", "")
    numbers = {k: request.query_params.get(k, "") for k in ("v", "cr")}
    if not re.fullmatch(r"[A-Za-z0-9._-]{0,64}", env) or not all(
        n.isdigit() or not n for n in numbers.values()
    ):
        return None
    return template.format(env=env, **numbers)


@router.get("/flags/{app_key}/{flag_key}")
def flag_page(request: Request, app_key: str, flag_key: str, ctx: PageCtx) -> Response:
    app = service.get_app(ctx, app_key)
    flag = service.get_flag(ctx, app, flag_key)
    views = _env_views(ctx, app, flag)
    requests = [
        {
            "request": r,
            "env": v.env,
            "diff": _diff(
                next((x.config for x in v.versions if x.number == r.base_number), None), r.config
            ),
            "mine": r.requested_by == ctx.principal.actor,
        }
        for v in views
        for r in v.change_requests
    ]
    return _render(
        request,
        "flag.html",
        app=app,
        flag=flag,
        team=_teams(ctx).get(flag.owner_team_id),
        views=views,
        requests=requests,
        experiments=experiments.list_for(ctx, app.key, flag.key),
        env_names={v.env.id: v.env.key for v in views},
        charts={v.deployment.id: _chart_for(ctx, v.deployment) for v in views if v.deployment},
        can_change=_can_change(ctx, flag.owner_team_id),
        notice=_notice(request),
    )


@router.post("/flags/{app_key}/{flag_key}/kill")
def kill_form(
    request: Request,
    app_key: str,
    flag_key: str,
    ctx: FormCtx,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    deployments.kill(ctx, app_key, flag_key, reason)
    return done(request, f"/flags/{app_key}/{flag_key}?done=killed")


@router.post("/flags/{app_key}/{flag_key}/{env_key}/restore")
def restore_form(
    request: Request,
    app_key: str,
    flag_key: str,
    env_key: str,
    ctx: FormCtx,
    number: Annotated[int, Form(ge=1, le=2**31 - 1)],
    strategy: Annotated[str, Form(max_length=128)] = "AllAtOnce",
) -> Response:
    change = service.restore(ctx, app_key, flag_key, env_key, number, strategy)
    base = f"/flags/{app_key}/{flag_key}"
    if change.change_request is not None:
        return done(request, f"{base}?done=requested&env={env_key}&cr={change.change_request.id}")
    return done(request, f"{base}?done=restored&env={env_key}&v={number}")


@router.get("/flags/{app_key}/{flag_key}/history")
def history_page(
    request: Request,
    app_key: str,
    flag_key: str,
    ctx: PageCtx,
    env: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    app = service.get_app(ctx, app_key)
    flag = service.get_flag(ctx, app, flag_key)
    envs = service.environments(ctx.session, app)
    current = service.get_environment(ctx, app, env) if env else envs[0]
    versions = service.versions(ctx, app.key, flag.key, current.key)
    live = next(
        (
            s.live_number
            for s in service.statuses(ctx, app.key)
            if s.flag.id == flag.id and s.environment == current.key
        ),
        None,
    )
    entries = [
        {
            "version": v,
            "diff": _diff(versions[i + 1].config if i + 1 < len(versions) else None, v.config),
        }
        for i, v in enumerate(versions)
    ]
    return _render(
        request,
        "history.html",
        app=app,
        flag=flag,
        environments=envs,
        current=current,
        entries=entries,
        live=live,
        deployments=deployments.deployments(ctx, app.key, flag.key, current.key),
        can_change=_can_change(ctx, flag.owner_team_id),
    )


# --- deployments and the rollout chart ----------------------------------------------


@dataclass
class Chart:
    deployment: Any
    actual: str
    area: str
    planned: str
    points: list[tuple[float, float, str]]
    now_x: float | None
    x_ticks: list[tuple[float, str, str]]
    caption: str
    steps_total: int


def _nice_interval(total_seconds: float) -> int:
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if total_seconds / step <= 5:
            return step
    return 86400 * max(1, math.ceil(total_seconds / 86400 / 5))


def _rollout_chart(dep: Any, steps: list[Any], now: datetime) -> Chart:
    """The deployment's share over time as a step line in a 1000×100 viewBox (x: time,
    y: 100 − percent), its planned future steps dashed."""
    strategy = rollout.Strategy.model_validate(dep.strategy)
    plan = rollout.plan(strategy)
    running = dep.state in service.RUNNING
    start = dep.started_at
    end_actual = now if running else (dep.finished_at or (steps[-1].at if steps else start))
    planned: list[tuple[datetime, float]] = []
    planned_end = end_actual
    if running and dep.next_step_at is not None:
        # A worker that fell behind moves the whole plan later, not into the past.
        shift = max(timedelta(0), now - dep.next_step_at)
        at = dep.next_step_at + shift
        if dep.state == "rolling":
            for k in range(dep.step + 1, len(plan)):
                if k > dep.step + 1:
                    at += timedelta(seconds=plan[k][0])
                planned.append((at, plan[k][1]))
            planned_end = at + timedelta(seconds=strategy.bake_seconds)
        else:
            planned_end = at
    end = max(end_actual, planned_end)
    total = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(max(0.0, min(1.0, (at - start).total_seconds() / total)) * 1000, 2)

    def y(percent: float) -> float:
        return round(100 - percent, 2)

    actual = f"M0 {y(0)}"
    points = []
    for step in steps:
        actual += f" H{x(step.at)} V{y(step.percent)}"
        label = f"{step.at.strftime('%H:%M:%S')} UTC · {_pct(step.percent)} · {step.note}"
        points.append((x(step.at), y(step.percent), label))
    actual += f" H{x(end_actual)}"
    planned_path = ""
    if running:
        planned_path = f"M{x(end_actual)} {y(dep.percent)}"
        for at, percent in planned:
            planned_path += f" H{x(at)} V{y(percent)}"
        planned_path += f" H{x(planned_end)}"
    interval = _nice_interval(total)
    fmt = "%H:%M:%S" if interval < 60 else "%H:%M"
    ticks = []
    offset = 0
    while offset <= total + 1e-6:
        at = start + timedelta(seconds=offset)
        align = "start" if offset == 0 else ("end" if x(at) > 940 else "middle")
        ticks.append((x(at) / 10, at.strftime(fmt), align))
        offset += interval
    if dep.state == "rolling":
        when = dep.next_step_at.strftime("%H:%M:%S") if dep.next_step_at else "—"
        caption = (
            f"Step {dep.step + 1} of {len(plan)}: {_pct(dep.percent)} of keys get version "
            f"{dep.to_number}; next step at {when} UTC."
        )
    elif dep.state == "baking":
        when = dep.next_step_at.strftime("%H:%M:%S") if dep.next_step_at else "—"
        caption = f"Everyone gets version {dep.to_number}; baking until {when} UTC."
    elif dep.state == "complete":
        caption = f"Complete: version {dep.to_number} is live for everyone."
    else:
        caption = f"Rolled back to version {dep.from_number}: {dep.reason or 'no reason given'}"
    return Chart(
        dep,
        actual,
        actual + " V100 Z",
        planned_path,
        points,
        x(now) if running else None,
        ticks,
        caption,
        len(plan),
    )


def _chart_for(ctx: Ctx, dep: Any) -> Chart:
    return _rollout_chart(dep, deployments.deployment_steps(ctx, dep.id), ctx.now)


def _deployment(ctx: Ctx, app_key: str, flag_key: str, deployment_id: int) -> Any:
    for dep in deployments.deployments(ctx, app_key, flag_key):
        if dep.id == deployment_id:
            return dep
    raise NotFound(f"deployment {deployment_id} of {flag_key} not found")


@router.get("/flags/{app_key}/{flag_key}/deployments/{deployment_id}")
def deployment_page(
    request: Request, app_key: str, flag_key: str, deployment_id: RowId, ctx: PageCtx
) -> Response:
    app = service.get_app(ctx, app_key)
    flag = service.get_flag(ctx, app, flag_key)
    dep = _deployment(ctx, app_key, flag_key, deployment_id)
    env = next(e for e in service.environments(ctx.session, app) if e.id == dep.environment_id)
    steps = deployments.deployment_steps(ctx, dep.id)
    return _render(
        request,
        "deployment.html",
        app=app,
        flag=flag,
        env=env,
        dep=dep,
        steps=steps,
        chart=_rollout_chart(dep, steps, ctx.now),
        can_change=_can_change(ctx, flag.owner_team_id),
    )


@router.get("/flags/{app_key}/{flag_key}/deployments/{deployment_id}/chart")
def deployment_chart(
    request: Request, app_key: str, flag_key: str, deployment_id: RowId, ctx: PageCtx
) -> Response:
    dep = _deployment(ctx, app_key, flag_key, deployment_id)
    return _render(
        request,
        "chart.html",
        app_key=app_key,
        flag_key=flag_key,
        chart=_chart_for(ctx, dep),
    )


@router.post("/flags/{app_key}/{flag_key}/deployments/{deployment_id}/rollback")
def rollback_form(
    request: Request,
    app_key: str,
    flag_key: str,
    deployment_id: RowId,
    ctx: FormCtx,
    reason: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    _deployment(ctx, app_key, flag_key, deployment_id)
    deployments.rollback(ctx, deployment_id, reason)
    return done(request, _back(next, f"/flags/{app_key}/{flag_key}/deployments/{deployment_id}"))


# --- the editor (its form ⇄ configuration translation is ``flags.editor``) ----------


@dataclass
class EditorState:
    model: dict[str, Any]
    base_number: int
    based_on: int
    comment: str = ""
    strategy: str = "AllAtOnce"
    alarms: str = ""
    guardrails: bool = False
    error: dict[str, Any] | None = None
    focus: str | None = None


def _editor(
    request: Request,
    ctx: Ctx,
    app_key: str,
    flag_key: str,
    env_key: str,
    state: EditorState,
    status_code: int = 200,
) -> Response:
    app = service.get_app(ctx, app_key)
    flag = service.get_flag(ctx, app, flag_key)
    env = service.get_environment(ctx, app, env_key)
    fallback = list(_served_config(ctx, app, flag, env)[1].get("variants", {}))
    names = editor.variant_names(state.model, fallback)
    strategies = deployments.list_strategies(ctx)
    return _render(
        request,
        "editor.html",
        status_code=status_code,
        app=app,
        flag=flag,
        env=env,
        s=state,
        m=state.model,
        names=names,
        colors={n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)},
        ops=[(op, OP_LABELS[op]) for op in OPS],
        strategies=[(n, d or _strategy_summary(st), p) for n, d, st, p in strategies],
        segments=service.list_segments(ctx, app_key),
        alarms=ops_alarms.list_alarms(ctx),
        flag_keys=[f.key for f in service.list_flags(ctx, app_key) if f.key != flag.key],
        error_at=state.error["anchor"] if state.error else None,
        edit_url=f"/flags/{app.key}/{flag.key}/{env.key}/edit",
    )


def _served_config(ctx: Ctx, app: Any, flag: Any, env: Any) -> tuple[int, dict[str, Any]]:
    """The version an edit starts from: the one being deployed, else the live one (an
    archived flag has no live state: its latest version)."""
    versions = service.versions(ctx, app.key, flag.key, env.key)
    status = next(
        (
            s
            for s in service.statuses(ctx, app.key)
            if s.flag.id == flag.id and s.environment == env.key
        ),
        None,
    )
    number = versions[0].number
    if status is not None:
        number = status.deployment.to_number if status.deployment else status.live_number
    version = next((v for v in versions if v.number == number), versions[0])
    return version.number, version.config


@router.get("/flags/{app_key}/{flag_key}/{env_key}/edit")
def editor_page(
    request: Request, app_key: str, flag_key: str, env_key: str, ctx: PageCtx
) -> Response:
    app = service.get_app(ctx, app_key)
    flag = service.get_flag(ctx, app, flag_key)
    env = service.get_environment(ctx, app, env_key)
    number, config = _served_config(ctx, app, flag, env)
    latest = service.versions(ctx, app_key, flag_key, env_key)[0].number
    state = EditorState(editor.model_from_config(config), base_number=latest, based_on=number)
    return _editor(request, ctx, app_key, flag_key, env_key, state)


@router.post("/flags/{app_key}/{flag_key}/{env_key}/edit")
def editor_submit(
    request: Request,
    app_key: str,
    flag_key: str,
    env_key: str,
    ctx: FormCtx,
    form: FormFields,
) -> Response:
    model = editor.model_from_form(form)

    def number(name: str) -> int:
        text = editor.form_text(form, name)
        return int(text) if text.isdigit() and len(text) < 10 else 0

    state = EditorState(
        model,
        base_number=number("base_number"),
        based_on=number("based_on"),
        comment=editor.form_text(form, "comment"),
        strategy=editor.form_text(form, "strategy", "AllAtOnce"),
        alarms=editor.form_text(form, "alarms"),
        guardrails=editor.form_text(form, "guardrails") == "on",
    )
    op = editor.form_text(form, "op", "save")
    if op != "save":
        app = service.get_app(ctx, app_key)
        flag = service.get_flag(ctx, app, flag_key)
        env = service.get_environment(ctx, app, env_key)
        fallback = list(_served_config(ctx, app, flag, env)[1].get("variants", {}))
        state.focus = editor.apply(model, op, editor.variant_names(model, fallback))
        return _editor(request, ctx, app_key, flag_key, env_key, state)
    try:
        change = service.set_config(
            ctx,
            app_key,
            flag_key,
            env_key,
            editor.config_from_model(model),
            comment=state.comment,
            base_number=state.base_number or None,
            strategy=state.strategy,
            monitors={
                "alarms": [a for a in re.split(r"[\s,]+", state.alarms) if a],
                "guardrails": state.guardrails,
            },
        )
    except MechanismsError as exc:
        # Nothing of a refused change stays: undo it before showing the form again.
        ctx.session.rollback()
        state.error = editor.place_error(exc, model)
        return _editor(request, ctx, app_key, flag_key, env_key, state, exc.status)
    base_url = f"/flags/{app_key}/{flag_key}"
    if change.change_request is not None:
        url = f"{base_url}?done=requested&env={env_key}&cr={change.change_request.id}"
    else:
        url = f"{base_url}?done=saved&env={env_key}&v={change.version.number}"
    return done(request, url)
