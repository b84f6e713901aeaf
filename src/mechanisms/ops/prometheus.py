"""Alarms over an existing Prometheus: a PromQL query read through Prometheus's HTTP API,
evaluated with the same M-of-N and missing-data rules as alarms over the built-in store.

Each evaluation asks ``/api/v1/query_range`` for the alarm's evaluation window with a step
of one period. Prometheus evaluates the query at instants; the value at the *end* of a
period is that period's datapoint, so a query that covers its period (for a five-minute
period, ``avg_over_time(latency_seconds[5m])`` or ``sum(rate(errors_total[5m]))``) reads
what the period saw. When the query returns several series, the alarm's statistic (avg,
sum, min, max or count) combines them at each instant.

A server that cannot be reached, an error answer, or values that are not numbers leave
the periods missing: the alarm goes to INSUFFICIENT_DATA or wherever its
treat_missing_data rule says, and its reason names the failure. Never a silent OK.

The worker reads what is due, asks Prometheus outside any transaction (a slow server
must not hold database locks), then evaluates and writes in one short transaction that
skips alarms another worker evaluated meanwhile (the version column).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from mechanisms.core import outbound
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, NotFound
from mechanisms.core.worker import WORKER, Worker
from mechanisms.ops import alarm_rules, alarms
from mechanisms.ops.alarm_rules import AlarmDefinition, AlarmState
from mechanisms.ops.tables import Alarm, PrometheusSource

KIND = "prometheus"
# Short: an evaluation must not wait long on one server. Connect fails fast.
FETCH_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
STATISTICS = ("avg", "sum", "min", "max", "count")
MAX_QUERY_LENGTH = 10_000
MAX_URL_LENGTH = 2000
# https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview
ERROR_TYPES = (
    "bad_data",
    "timeout",
    "canceled",
    "execution",
    "internal",
    "unavailable",
    "not_found",
)
RESULT_TYPES = ("matrix", "vector", "scalar", "string")


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


# --- reading Prometheus (pure, then one HTTP call) ------------------------------------


@dataclass(frozen=True)
class Fetched:
    """The datapoints by period start; ``problem`` says why data is missing when the
    source failed or sent something unusable."""

    points: dict[datetime, float | None] = field(default_factory=dict)
    problem: str | None = None


def query_instants(definition: AlarmDefinition, now: datetime) -> tuple[datetime, datetime, int]:
    """(first instant, last instant, step in seconds): the end of every period of the
    evaluation window."""
    start, end = alarm_rules.evaluation_window(definition, now)
    step = definition.period_seconds
    return start + timedelta(seconds=step), end, step


def _combine(values: list[float], statistic: str) -> float:
    if statistic == "sum":
        return math.fsum(values)
    if statistic == "min":
        return min(values)
    if statistic == "max":
        return max(values)
    if statistic == "count":
        return float(len(values))
    return math.fsum(values) / len(values)


def datapoints(body: Any, statistic: str, step: int) -> Fetched:
    """The periods' datapoints from a query_range answer (already decoded JSON)."""
    # Nothing the server sent is quoted (its reply would reach every reader of the
    # alarm's reason): only words from Prometheus's documented vocabularies.
    if not isinstance(body, dict) or body.get("status") != "success":
        kind = body.get("errorType") if isinstance(body, dict) else None
        named = kind if kind in ERROR_TYPES else "no Prometheus error type"
        return Fetched(problem=f"the query failed ({named})")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        kind = data.get("resultType") if isinstance(data, dict) else None
        named = repr(kind) if kind in RESULT_TYPES else "something else"
        return Fetched(problem=f"expected a range vector (matrix), got {named}")
    result = data.get("result")
    if not isinstance(result, list):
        return Fetched(problem="the answer has no result list")
    by_instant: dict[float, list[float]] = {}
    unusable = 0
    for series in result:
        values = series.get("values") if isinstance(series, dict) else None
        for pair in values if isinstance(values, list) else []:
            try:
                at, raw = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                unusable += 1
                continue
            if not math.isfinite(raw):
                unusable += 1
                continue
            by_instant.setdefault(at, []).append(raw)
    period = timedelta(seconds=step)
    points: dict[datetime, float | None] = {}
    for at, values in by_instant.items():
        instant = datetime.fromtimestamp(at, UTC)
        start = alarm_rules.period_start(instant - period, step)
        points[start] = _combine(values, statistic)
    problem = None
    if unusable:
        problem = (
            f"{unusable} value(s) were not finite numbers (NaN, Inf or text) and count as missing"
        )
    elif not result:
        problem = "the query returned no series"
    return Fetched(points, problem)


def fetch(
    client: httpx.Client, url: str, query: str, definition: AlarmDefinition, now: datetime
) -> Fetched:
    first, last, step = query_instants(definition, now)
    try:
        response = client.get(
            url.rstrip("/") + "/api/v1/query_range",
            params={
                "query": query,
                "start": first.timestamp(),
                "end": last.timestamp(),
                "step": step,
            },
            timeout=FETCH_TIMEOUT,
        )
    except outbound.RefusedDestination as exc:
        return Fetched(problem=f"Prometheus at {url} is refused: {exc}")
    except httpx.HTTPError as exc:
        # The exception's name only: a protocol error's text may quote what was received.
        return Fetched(problem=f"Prometheus at {url} is unreachable: {type(exc).__name__}")
    try:
        body = response.json()
    except ValueError:
        return Fetched(
            problem=f"Prometheus at {url} answered HTTP {response.status_code} without JSON"
        )
    fetched = datapoints(body, definition.statistic, step)
    if response.status_code != 200 and fetched.problem:
        return Fetched(problem=f"HTTP {response.status_code}: {fetched.problem}")
    return fetched


# --- alarms with a Prometheus source ------------------------------------------------


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise _invalid("url", "not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise _invalid("url", "an http:// or https:// URL of a Prometheus server")
    if parsed.query or parsed.fragment or len(url) > MAX_URL_LENGTH or "\x00" in url:
        raise _invalid("url", "the server's base URL, without a query or fragment")
    outbound.check_url(url)
    return url.rstrip("/")


def _check_definition(definition: dict[str, Any] | None) -> AlarmDefinition:
    parsed = alarms.parse_definition(definition)
    if parsed.statistic not in STATISTICS:
        raise _invalid(
            "definition.statistic",
            "avg, sum, min, max or count (combining the series the query returns); "
            "compute percentiles in PromQL, e.g. histogram_quantile",
        )
    if parsed.is_anomaly:
        raise _invalid("definition.comparison", "a Prometheus alarm compares with a threshold")
    return parsed


def create_alarm(
    ctx: Ctx,
    name: str,
    service_key: str,
    *,
    url: str,
    query: str,
    definition: dict[str, Any] | None,
    severity: int = 3,
    description: str = "",
) -> tuple[Alarm, PrometheusSource]:
    service = alarms.check_new_alarm(ctx, service_key, name, severity)
    if not query.strip() or len(query) > MAX_QUERY_LENGTH or "\x00" in query:
        raise _invalid("query", f"a PromQL expression of 1-{MAX_QUERY_LENGTH} characters")
    base_url = _check_url(url)
    parsed = _check_definition(definition)
    alarm = alarms.add_alarm(
        ctx,
        service,
        name,
        KIND,
        parsed.model_dump(mode="json"),
        severity,
        description,
        audit_details={"prometheus": base_url, "query": query.strip()},
    )
    source = PrometheusSource(alarm_id=alarm.id, url=base_url, query=query.strip())
    ctx.session.add(source)
    ctx.session.flush()
    return alarm, source


def get_source(ctx: Ctx, name: str) -> tuple[Alarm, PrometheusSource]:
    alarm = alarms.get_alarm(ctx, name)
    source = ctx.session.get(PrometheusSource, alarm.id)
    if source is None:
        raise NotFound(f"alarm {name!r} does not read from Prometheus", details={"field": "alarm"})
    return alarm, source


# --- evaluation ---------------------------------------------------------------------


@dataclass(frozen=True)
class DueAlarm:
    id: int
    version: int
    url: str
    query: str
    definition: AlarmDefinition

    @property
    def request(self) -> tuple[str, str, str, int, int]:
        """Alarms asking the same thing of the same server share one request."""
        d = self.definition
        return (self.url, self.query, d.statistic, d.period_seconds, d.range_periods)


def due_alarms(session: Session, now: datetime, limit: int) -> list[DueAlarm]:
    rows = session.execute(
        select(
            Alarm.id, Alarm.version, Alarm.definition, PrometheusSource.url, PrometheusSource.query
        )
        .join(PrometheusSource, PrometheusSource.alarm_id == Alarm.id)
        .where(Alarm.kind == KIND, Alarm.next_evaluation_at <= now)
        .order_by(Alarm.next_evaluation_at)
        .limit(limit)
    )
    return [
        DueAlarm(r.id, r.version, r.url, r.query, AlarmDefinition.model_validate(r.definition))
        for r in rows
    ]


def fetch_all(
    due: Iterable[DueAlarm],
    get: Callable[[DueAlarm], Fetched],
    mapper: Callable[..., Iterable[Fetched]] = map,
) -> dict[int, Fetched]:
    """One request per distinct question, run through ``mapper`` (a thread pool's map)."""
    firsts: dict[tuple[str, str, str, int, int], DueAlarm] = {}
    for alarm in due:
        firsts.setdefault(alarm.request, alarm)
    answers = dict(zip(firsts, mapper(get, list(firsts.values())), strict=True))
    return {alarm.id: answers[alarm.request] for alarm in due}


def record(ctx: Ctx, due: list[DueAlarm], fetched: dict[int, Fetched], asked_at: datetime) -> int:
    """Evaluate what was fetched at ``asked_at`` and write the transitions; returns how
    many alarms changed state. An alarm another worker evaluated since is left alone."""
    seen = {d.id: d.version for d in due}
    claimed = ctx.session.execute(
        select(Alarm)
        .where(Alarm.id.in_(list(seen)), Alarm.kind == KIND, Alarm.next_evaluation_at <= ctx.now)
        .with_for_update(skip_locked=True)
    ).scalars()
    changed = 0
    for alarm in claimed:
        if alarm.version != seen[alarm.id]:
            continue
        answer = fetched[alarm.id]
        definition = AlarmDefinition.model_validate(alarm.definition)
        result = alarm_rules.evaluate(definition, answer.points, asked_at, AlarmState(alarm.state))
        reason = result.reason
        if answer.problem:
            reason = f"{reason} Prometheus: {answer.problem}"[:4000]
        if result.new_state.value != alarm.state:
            alarms.apply_evaluation(ctx, alarm, result, reason)
            changed += 1
        elif answer.problem:
            # The state stays (its missing-data rule says so), but say why data is missing.
            alarm.state_reason = reason
        alarm.evaluated_at = ctx.now
        alarm.next_evaluation_at = ctx.now + alarms.EVALUATION_INTERVAL
        alarm.version += 1
    ctx.session.flush()
    return changed


class EvaluatePrometheusAlarms:
    """Worker job: the Prometheus alarms that are due, read first, written after."""

    name = "ops.prometheus-alarms"

    def run(self, worker: Worker) -> int:
        now = worker.clock.now()
        with worker.db.transaction(write=False) as session:
            due = due_alarms(session, now, worker.settings.worker_batch)
        if not due:
            return 0
        with outbound.client(FETCH_TIMEOUT, outbound.allowance(worker.settings)) as client:
            fetched = fetch_all(
                due,
                lambda a: fetch(client, a.url, a.query, a.definition, now),
                worker.pool.map,
            )
        with worker.db.transaction() as session:
            return record(Ctx(session, WORKER, worker.clock.now()), due, fetched, now)
