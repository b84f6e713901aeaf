"""Ops pages for alarms and metrics: the alarms list, an alarm's page (its graph with the
threshold or band and the state bands, its transitions, its definition in words, a
composite's children) and the metrics explorer.

Query parameters come from links and forms people edit by hand: a value the page does
not know is answered with a 4xx page that names it, never a 500.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, MechanismsError
from mechanisms.ops import alarm_rules, alarm_view, alarms, metric_catalog, metrics, silences
from mechanisms.ops.pages import STATES, render
from mechanisms.web.http import UnitOfWorkRoute
from mechanisms.web.pages import PageCtx

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
HISTORY_LIMIT = 1000
STATISTICS = ("avg", "sum", "min", "max", "count", "p50", "p90", "p95", "p99", "p99.9")


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def ago(at: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit: "5 min", "3 h", "2 days"."""
    if at is None:
        return "—"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}" + ("s" if unit == "day" and count > 1 else "")
    return f"{seconds} s"


def _range(value: str | None) -> tuple[str, timedelta]:
    key = value or alarm_view.DEFAULT_RANGE
    if key not in alarm_view.RANGES:
        raise _invalid("range", f"{key!r} is not one of {', '.join(alarm_view.RANGES)}")
    return key, alarm_view.RANGES[key]


def parse_match(text: str | None) -> dict[str, str]:
    """``service=checkout, region=eu`` → {"service": "checkout", "region": "eu"}."""
    labels: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip().strip('"')
        if not sep or not metrics.LABEL_RE.match(key):
            raise _invalid("match", f"{part.strip()!r} is not label=value")
        labels[key] = value
    return labels


# --- the alarms list ----------------------------------------------------------------


@router.get("/ops/alarms")
def alarms_page(
    request: Request,
    ctx: PageCtx,
    state: Annotated[str | None, Query(max_length=32)] = None,
    service: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    if state and state not in STATES:
        raise _invalid("state", f"{state!r} is not one of {', '.join(STATES)}")
    services = {s.id: s for s in alarms.list_services(ctx)}
    chosen = next((s for s in services.values() if s.key == service), None)
    if service and chosen is None:
        raise _invalid("service", f"no service {service!r}")
    rows = [
        a
        for a in alarms.list_alarms(ctx, state or None)
        if chosen is None or a.service_id == chosen.id
    ]
    # The ones that need someone first: ALARM, then no data, then OK; the most severe and
    # the longest in their state first within each.
    rows.sort(key=lambda a: (STATES.index(a.state), a.severity, a.state_changed_at))
    return render(
        request,
        "alarms_list.html",
        tab="alarms",
        rows=rows,
        services=services,
        state=state or "",
        service=service or "",
        describe=alarm_view.describe,
        ago=lambda at: ago(at, ctx.now),
        silenced_until=silences.silenced_until(ctx),
    )


# --- an alarm's page ----------------------------------------------------------------


@router.get("/ops/alarms/{name:path}")
def alarm_page(
    request: Request,
    name: str,
    ctx: PageCtx,
    range: Annotated[str | None, Query(max_length=8)] = None,  # noqa: A002 (the URL's word)
) -> Response:
    range_key, span = _range(range)
    alarm = alarms.get_alarm(ctx, name)
    service = next((s for s in alarms.list_services(ctx) if s.id == alarm.service_id), None)
    transitions = alarms.history(ctx, name, HISTORY_LIMIT)
    changes = alarm_view.state_changes(
        [alarm_view.Change(t.at, t.from_state, t.to_state) for t in transitions],
        alarm.created_at,
        complete=len(transitions) < HISTORY_LIMIT,
    )
    end, start = ctx.now, ctx.now - span
    values: dict[str, Any] = {}
    if alarm.kind == "composite":
        values = _composite(ctx, alarm, changes, start, end)
    else:
        values = _metric(ctx, alarm, changes, start, end)
    return render(
        request,
        "alarms_alarm.html",
        tab="alarms",
        alarm=alarm,
        service=service,
        words=alarm_view.describe(alarm.kind, alarm.metric, alarm.match, alarm.definition),
        transitions=[(t, alarm_view.deciding_points(t.datapoints)) for t in transitions[:100]],
        ranges=list(alarm_view.RANGES),
        range_key=range_key,
        ago=lambda at: ago(at, ctx.now),
        silenced_until=silences.silenced_until(ctx)(alarm.name),
        **values,
    )


def _composite(
    ctx: Ctx, alarm: Any, changes: list[tuple[datetime, str]], start: datetime, end: datetime
) -> dict[str, Any]:
    rule = alarm.definition.get("rule", "")
    try:
        names = sorted(alarm_rules.parse_rule(rule).alarms)
    except alarm_rules.RuleSyntaxError:
        names = []
    states = {a.name: a for a in alarms.list_alarms(ctx)}
    return {
        "chart": alarm_view.state_chart(changes, start, end, f"States of {alarm.name}"),
        "children": [(n, states.get(n)) for n in names],
        "rule": rule,
    }


def _metric(
    ctx: Ctx, alarm: Any, changes: list[tuple[datetime, str]], start: datetime, end: datetime
) -> dict[str, Any]:
    definition = alarm_view.parse(alarm.definition)
    if definition is None:
        return {"chart": alarm_view.state_chart(changes, start, end, f"States of {alarm.name}")}
    period = alarm_view.display_period(definition.period_seconds, end - start)
    points = alarms.query(ctx, alarm.metric, alarm.match, definition.statistic, start, end, period)
    baseline = None
    if definition.is_anomaly:
        history = alarms.query(
            ctx,
            alarm.metric,
            alarm.match,
            definition.statistic,
            end - alarm_view.BASELINE_HISTORY,
            end,
            max(definition.period_seconds, 300),
        )
        baseline = alarm_view.fit_band(definition, history)
    chart = alarm_view.metric_chart(
        definition,
        points,
        changes,
        start,
        end,
        series=alarm_view.series_words(alarm.metric, alarm.match),
        baseline=baseline,
    )
    return {
        "chart": chart,
        "definition": definition,
        "point_period": alarm_view.duration_words(period),
        "merged": period != definition.period_seconds,
        "no_data": all(v is None for _, v in points),
    }


# --- the metrics explorer -----------------------------------------------------------


@router.get("/ops/metrics")
def metrics_page(
    request: Request,
    ctx: PageCtx,
    metric: Annotated[str | None, Query(max_length=200)] = None,
    match: Annotated[str | None, Query(max_length=2000)] = None,
    statistic: Annotated[str | None, Query(max_length=10)] = None,
    range: Annotated[str | None, Query(max_length=8)] = None,  # noqa: A002 (the URL's word)
) -> Response:
    names = metric_catalog.metric_names(ctx)
    form = {
        "metric": metric or "",
        "match": match or "",
        "statistic": statistic or "avg",
        "range": range or "1h",
    }
    values: dict[str, Any] = {}
    error = None
    if metric:
        try:
            values = _explore(ctx, metric, match, form["statistic"], form["range"])
        except MechanismsError as exc:
            error = exc.message
    return render(
        request,
        "metrics_explorer.html",
        status_code=422 if error else 200,
        tab="metrics",
        names=names,
        form=form,
        error=error,
        ranges=list(alarm_view.RANGES),
        statistics=STATISTICS,
        **values,
    )


def _explore(
    ctx: Ctx, metric: str, match: str | None, statistic: str, range_key: str
) -> dict[str, Any]:
    _key, span = _range(range_key)
    if not metrics.NAME_RE.match(metric):
        raise _invalid("metric", f"{metric!r} is not a Prometheus metric name")
    metrics.check_statistic(statistic)
    labels = parse_match(match)
    end, start = ctx.now, ctx.now - span
    period = alarm_view.display_period(60, span)
    points = alarms.query(ctx, metric, labels, statistic, start, end, period)
    series = alarm_view.series_words(metric, labels)
    chart = alarm_view.value_chart(
        points, start, end, label=f"{statistic} of {series}", testid="metric-chart"
    )
    return {
        "chart": chart,
        "labels": metric_catalog.label_values(ctx, metric),
        "point_period": alarm_view.duration_words(period),
        "no_data": all(v is None for _, v in points),
        "series": series,
    }
