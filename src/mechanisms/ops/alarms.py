"""Ops service: services, alarms on the built-in metrics, their evaluation by the worker,
and the events other mechanisms act on (``alarms.state_changed``: flag rollouts roll
back, deploys stop, tickets are cut).

The worker evaluates every due alarm in one pass: it loads the rollups of the metrics
involved once, computes each alarm's datapoints in memory, and writes only the alarms
whose state changed. A percentile is merged from the rollups' sketches, never averaged.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, bindparam, delete, insert, select, text, type_coerce, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mechanisms.core import accounts, audit, events, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.db import bulk_insert, canonical_json
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    require_site_role,
    require_team_role,
    require_visible_team,
    team_role,
    tenancy,
    visible_teams_filter,
)
from mechanisms.ops import alarm_rules, baselines, metrics, silences
from mechanisms.ops.alarm_rules import AlarmDefinition, AlarmState
from mechanisms.ops.tables import (
    Alarm,
    AlarmTransition,
    HeldAlarm,
    MetricRollup,
    MetricSeries,
    OpsService,
)

EVALUATION_INTERVAL = timedelta(seconds=60)
# The label that says which service a sample is for (the SDK's and the demo's convention).
SERVICE_LABEL = "service"
SEVERITIES = range(1, 6)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


# --- services -----------------------------------------------------------------------


def create_service(ctx: Ctx, key: str, name: str, owner_team: str) -> OpsService:
    require_site_role(ctx, Role.ENGINEER)
    team = accounts.get_team(ctx, owner_team)
    require_team_role(ctx, team.id, Role.ENGINEER)
    if (
        not key
        or len(key) > 128
        or not key.replace("-", "").replace("_", "").replace(".", "").isalnum()
    ):
        raise _invalid("key", "1-128 letters, digits, '.', '_' or '-'")
    if ctx.session.execute(select(OpsService.id).where(OpsService.key == key)).first():
        raise Conflict(f"service {key!r} already exists", details={"field": "key"})
    service = OpsService(
        key=key, name=name.strip() or key, owner_team_id=team.id, created_at=ctx.now
    )
    ctx.session.add(service)
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.service_created",
        "ops_service",
        key,
        after={"key": key, "name": service.name, "team": team.slug},
    )
    return service


def get_service(ctx: Ctx, key: str) -> OpsService:
    found = ctx.session.execute(
        select(OpsService).where(OpsService.key == key)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"service {key!r} not found", details={"field": "service"})
    require_visible_team(ctx, found.owner_team_id, f"service {key!r}")
    return found


def list_services(ctx: Ctx) -> list[OpsService]:
    require_site_role(ctx, Role.VIEWER)
    query = select(OpsService).where(visible_teams_filter(ctx, OpsService.owner_team_id))
    return list(ctx.session.execute(query.order_by(OpsService.key)).scalars())


def hidden_service_keys(ctx: Ctx) -> frozenset[str]:
    """The services of organisations the caller does not belong to: their samples (labelled
    with the service) are not the caller's to read."""
    if tenancy(ctx).team_ids is None:
        return frozenset()
    query = select(OpsService.key).where(~visible_teams_filter(ctx, OpsService.owner_team_id))
    return frozenset(ctx.session.execute(query).scalars())


# --- alarms -------------------------------------------------------------------------


def alarm_snapshot(alarm: Alarm) -> dict[str, Any]:
    return {
        "name": alarm.name,
        "kind": alarm.kind,
        "metric": alarm.metric,
        "match": alarm.match,
        "definition": alarm.definition,
        "severity": alarm.severity,
        "state": alarm.state,
    }


def _check_match(match: Any) -> dict[str, str]:
    if not isinstance(match, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in match.items()
    ):
        raise _invalid("match", "an object of label names to values")
    try:
        return inputs.json_text(match)
    except inputs.JsonInputError as exc:
        raise _invalid(f"match.{exc.field}", str(exc)) from None


def create_alarm(
    ctx: Ctx,
    name: str,
    service_key: str,
    *,
    metric: str | None = None,
    match: dict[str, str] | None = None,
    definition: dict[str, Any] | None = None,
    rule: str | None = None,
    severity: int = 3,
    description: str = "",
) -> Alarm:
    """A metric alarm (metric + definition) or a composite alarm (rule over other alarms)."""
    service = check_new_alarm(ctx, service_key, name, severity)
    if (rule is None) == (metric is None):
        raise _invalid("metric", "give a metric and its definition, or a composite rule")
    if rule is not None:
        return add_alarm(
            ctx,
            service,
            name,
            "composite",
            {"rule": _check_rule(ctx, name, rule)},
            severity,
            description,
        )
    if not metrics.NAME_RE.match(metric or ""):
        raise _invalid("metric", "a Prometheus metric name")
    return add_alarm(
        ctx,
        service,
        name,
        "metric",
        baselines.validated(definition or {}),
        severity,
        description,
        metric=metric,
        match=own_samples(service, _check_match(match or {})),
    )


def own_samples(
    service: OpsService, match: dict[str, str], reader: str = "an alarm"
) -> dict[str, str]:
    """An alarm (or a scaling policy) reads its own service's samples only: those are the
    samples only the service's team (or its ingest key) may write, so nobody else can move
    the alarm or scale the service, and it reads no other organisation's numbers."""
    named = match.get(SERVICE_LABEL, service.key)
    if named != service.key:
        raise _invalid(
            f"match.{SERVICE_LABEL}",
            f"{reader} of {service.key} reads {service.key}'s samples; leave "
            f"{SERVICE_LABEL} out or give {service.key}",
        )
    return {**match, SERVICE_LABEL: service.key}


def check_new_alarm(ctx: Ctx, service_key: str, name: str, severity: int) -> OpsService:
    """The checks every new alarm passes, whatever its kind; returns its service."""
    require_site_role(ctx, Role.ENGINEER)
    service = get_service(ctx, service_key)
    require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    # The name is the alarm's address (/alarms/{name}): it must be one a URL can carry.
    inputs.checked_key(name, "name", 200)
    if ctx.session.execute(select(Alarm.id).where(Alarm.name == name)).first():
        raise Conflict(f"alarm {name!r} already exists", details={"field": "name"})
    if severity not in SEVERITIES:
        raise _invalid("severity", "1 (SEV1, the most severe) to 5")
    return service


def parse_definition(definition: dict[str, Any] | None) -> AlarmDefinition:
    try:
        return AlarmDefinition.model_validate(definition or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "definition." + ".".join(str(p) for p in first["loc"])
        raise _invalid(field.rstrip("."), first["msg"].removeprefix("Value error, ")) from None


def add_alarm(
    ctx: Ctx,
    service: OpsService,
    name: str,
    kind: str,
    definition: dict[str, Any],
    severity: int,
    description: str = "",
    *,
    metric: str | None = None,
    match: dict[str, str] | None = None,
    audit_details: dict[str, Any] | None = None,
) -> Alarm:
    """A checked alarm's row, INSUFFICIENT_DATA until its first evaluation, audited."""
    alarm = Alarm(
        name=name,
        service_id=service.id,
        description=description.strip(),
        kind=kind,
        metric=metric,
        match=match or {},
        definition=definition,
        severity=severity,
        state=AlarmState.INSUFFICIENT_DATA.value,
        state_reason="Unchecked: initial alarm creation",
        state_changed_at=ctx.now,
        next_evaluation_at=ctx.now,
        version=0,
        created_at=ctx.now,
    )
    ctx.session.add(alarm)
    ctx.session.flush()
    audit.record(
        ctx,
        "ops.alarm_created",
        "alarm",
        name,
        after={**alarm_snapshot(alarm), **(audit_details or {})},
    )
    return alarm


def _check_rule(ctx: Ctx, name: str, rule: str) -> str:
    try:
        parsed = alarm_rules.parse_rule(rule)
    except alarm_rules.RuleSyntaxError as exc:
        raise _invalid("rule", str(exc)) from None
    known = set(
        ctx.session.execute(select(Alarm.name).where(Alarm.name.in_(parsed.alarms))).scalars()
    )
    unknown = sorted(set(parsed.alarms) - known - {name})
    if unknown:
        raise _invalid("rule", f"unknown alarm {unknown[0]!r}")
    composites = {
        a.name: a.definition["rule"]
        for a in ctx.session.execute(select(Alarm).where(Alarm.kind == "composite")).scalars()
    }
    try:
        alarm_rules.check_composite_cycles({**composites, name: rule})
    except ValueError as exc:
        raise _invalid("rule", str(exc)) from None
    return str(parsed)


def get_alarm(ctx: Ctx, name: str) -> Alarm:
    require_site_role(ctx, Role.VIEWER)
    found = ctx.session.execute(select(Alarm).where(Alarm.name == name)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"alarm {name!r} not found", details={"field": "alarm"})
    owner = ctx.session.get(OpsService, found.service_id)
    require_visible_team(ctx, owner.owner_team_id, f"alarm {name!r}")
    return found


def list_alarms(ctx: Ctx, state: str | None = None) -> list[Alarm]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(Alarm)
        .join(OpsService, OpsService.id == Alarm.service_id)
        .where(visible_teams_filter(ctx, OpsService.owner_team_id))
        .order_by(Alarm.name)
    )
    if state:
        query = query.where(Alarm.state == state)
    return list(ctx.session.execute(query).scalars())


def history(ctx: Ctx, name: str, limit: int = 100) -> list[AlarmTransition]:
    alarm = get_alarm(ctx, name)
    return list(
        ctx.session.execute(
            select(AlarmTransition)
            .where(AlarmTransition.alarm_id == alarm.id)
            .order_by(AlarmTransition.id.desc())
            .limit(max(1, min(limit, 1000)))
        ).scalars()
    )


def firing(session: Session, names: list[str]) -> list[str]:
    """Which of these alarms are in ALARM now (for rollouts and deploy gates)."""
    if not names:
        return []
    return list(
        session.execute(
            select(Alarm.name).where(Alarm.name.in_(names), Alarm.state == "ALARM")
        ).scalars()
    )


@dataclass(frozen=True)
class _Move:
    """One alarm's change of state, as the evaluation decided it."""

    alarm_id: int
    name: str
    severity: int
    previous: str
    state: str
    reason: str
    datapoints: list[dict[str, Any]]


def _record_transitions(ctx: Ctx, moves: list[_Move]) -> None:
    """Write each move: the alarm's new state, its transition row, its audit record and its
    ``alarms.state_changed`` event, all in bulk (a first tick can move every alarm). An
    alarm inside a scheduled silence moves all the same; its event says ``silenced`` so
    that what notifies people holds back (decision 0011)."""
    if not moves:
        return
    silenced = silences.silencer(ctx)
    _set_states(ctx, moves)
    bulk_insert(
        ctx.session,
        AlarmTransition.__table__,
        [
            {
                "alarm_id": m.alarm_id,
                "at": ctx.now,
                "from_state": m.previous,
                "to_state": m.state,
                "reason": m.reason,
                "datapoints": m.datapoints,
            }
            for m in moves
        ],
    )
    audit.record_many(
        ctx,
        [
            audit.Entry(
                "alarms.state_changed",
                "alarm",
                m.name,
                before={"state": m.previous},
                after={"state": m.state},
                details={"reason": m.reason},
            )
            for m in moves
        ],
    )
    _hold(ctx, moves, silenced)
    announced = []
    for m in moves:
        payload = {
            "name": m.name,
            "state": m.state,
            "previous": m.previous,
            "reason": m.reason,
            "severity": m.severity,
        }
        silence = silenced(m.name)
        if silence is not None:
            payload |= {"silenced": True, "silence": silence}
        announced.append(events.Emitted("alarms.state_changed", "alarm", m.name, payload))
    events.emit_many(ctx, announced)


def _set_states(ctx: Ctx, moves: list[_Move]) -> None:
    """The moved alarms' new state and reason, in one statement on PostgreSQL (from arrays)
    and one executemany elsewhere; Core, as the ORM's bulk path costs more than the SQL."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        ctx.session.execute(
            text(
                "UPDATE ops_alarms SET state = moved.state, state_reason = moved.reason, "
                "state_changed_at = :at FROM unnest(CAST(:ids AS integer[]), "
                "CAST(:states AS text[]), CAST(:reasons AS text[])) AS moved(id, state, reason) "
                "WHERE ops_alarms.id = moved.id"
            ),
            {
                "at": ctx.now,
                "ids": [m.alarm_id for m in moves],
                "states": [m.state for m in moves],
                "reasons": [m.reason for m in moves],
            },
        )
        return
    alarms = Alarm.__table__
    ctx.session.execute(
        update(alarms)
        .where(alarms.c.id == bindparam("moved_id"))
        .values(
            state=bindparam("new_state"),
            state_reason=bindparam("new_reason"),
            state_changed_at=ctx.now,
        ),
        [{"moved_id": m.alarm_id, "new_state": m.state, "new_reason": m.reason} for m in moves],
    )


def _hold(ctx: Ctx, moves: list[_Move], silenced: Callable[[str], str | None]) -> None:
    """Remember the alarms a silence caught going into ALARM; forget those that left it."""
    leaving = [m.alarm_id for m in moves]
    if not ctx.session.execute(select(HeldAlarm.alarm_id).limit(1)).first():
        leaving = []  # nothing held (the usual case): no statement with every id in it
    for first in range(0, len(leaving), _IDS_PER_STATEMENT):
        ctx.session.execute(
            delete(HeldAlarm).where(
                HeldAlarm.alarm_id.in_(leaving[first : first + _IDS_PER_STATEMENT])
            )
        )
    held = [
        {"alarm_id": m.alarm_id, "silence": silence, "since": ctx.now}
        for m in moves
        if m.state == "ALARM" and (silence := silenced(m.name)) is not None
    ]
    if held:
        ctx.session.execute(insert(HeldAlarm.__table__), held)


def _release_held(ctx: Ctx) -> int:
    """Alarms still in ALARM whose silence is over are announced again, unsilenced, so that
    what the silence held back (the ticket, the page) happens now. Returns how many."""
    held = list(
        ctx.session.execute(
            select(HeldAlarm.alarm_id, HeldAlarm.silence, Alarm.name, Alarm.severity)
            .join(Alarm, Alarm.id == HeldAlarm.alarm_id)
            .order_by(HeldAlarm.alarm_id)
        )
    )
    if not held:
        return 0
    silenced = silences.silencer(ctx)
    released = [h for h in held if silenced(h.name) is None]
    if not released:
        return 0
    ctx.session.execute(
        delete(HeldAlarm).where(HeldAlarm.alarm_id.in_([h.alarm_id for h in released]))
    )
    states = dict(
        ctx.session.execute(
            select(Alarm.id, Alarm.state_reason).where(Alarm.id.in_([h.alarm_id for h in released]))
        ).all()
    )
    audit.record_many(
        ctx,
        [
            audit.Entry("alarms.silence_ended", "alarm", h.name, details={"silence": h.silence})
            for h in released
        ],
    )
    events.emit_many(
        ctx,
        [
            events.Emitted(
                "alarms.state_changed",
                "alarm",
                h.name,
                {
                    "name": h.name,
                    "state": "ALARM",
                    "previous": "ALARM",
                    "reason": f"Still in ALARM after silence {h.silence} ended: "
                    + states[h.alarm_id],
                    "severity": h.severity,
                    "released": True,
                },
            )
            for h in released
        ],
    )
    return len(released)


def _transition(
    ctx: Ctx, alarm: Alarm, new_state: str, reason: str, datapoints: list[dict[str, Any]]
) -> None:
    move = _Move(alarm.id, alarm.name, alarm.severity, alarm.state, new_state, reason, datapoints)
    ctx.session.flush()
    _record_transitions(ctx, [move])
    # The bulk UPDATE went past the ORM: bring the object in line with the row.
    set_committed_value(alarm, "state", new_state)
    set_committed_value(alarm, "state_reason", reason)
    set_committed_value(alarm, "state_changed_at", ctx.now)


def editable_alarm(ctx: Ctx, name: str) -> Alarm:
    """The alarm, for an engineer of the team that owns its service."""
    require_site_role(ctx, Role.ENGINEER)
    alarm = get_alarm(ctx, name)
    service = ctx.session.get(OpsService, alarm.service_id)
    require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    return alarm


def set_state(ctx: Ctx, name: str, state: str, reason: str) -> Alarm:
    """Set an alarm's state by hand (to test what acts on it); the next evaluation decides
    again, as CloudWatch's SetAlarmState does."""
    alarm = editable_alarm(ctx, name)
    if state not in AlarmState.__members__:
        raise _invalid("state", "OK, ALARM or INSUFFICIENT_DATA")
    if not reason.strip():
        raise _invalid("reason", "say why")
    if alarm.state != state:
        _transition(ctx, alarm, state, f"Set by {ctx.principal.actor}: {reason.strip()}", [])
    ctx.session.flush()
    return alarm


# --- evaluation ---------------------------------------------------------------------

# Ids bound in one IN list. SQLite (3.32 on) takes 32,766 variables and PostgreSQL 65,535;
# fewer statements also means fewer passes of the ORM over the session's objects after
# each bulk UPDATE (synchronize_session), which with 10,000 alarms changing was seconds.
_IDS_PER_STATEMENT = 10_000


@dataclass
class _SeriesRows:
    labels: dict[str, str]
    # (id, series_id, resolution, bucket_start, count, sum, min, max[, sketch]) rows
    rows: list[Any]


@dataclass
class _MetricRows:
    """One metric's rollups in the tick's window, by series (in the database's order),
    and which series carry each label pair, so an alarm's series are found without
    looking at every series of the metric."""

    series: list[_SeriesRows] = field(default_factory=list)
    by_label: dict[tuple[str, Any], list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, series: _SeriesRows) -> None:
        position = len(self.series)
        self.series.append(series)
        for pair in series.labels.items():
            with contextlib.suppress(TypeError):  # a value that is not a string matches none
                self.by_label[pair].append(position)

    def matching(self, match: dict[str, str]) -> list[_SeriesRows]:
        """The series whose labels include ``match``, in order."""
        candidates = self.series
        for pair in match.items():
            if isinstance(pair[1], str):
                candidates = [self.series[p] for p in self.by_label.get(pair, ())]
                break
        return [s for s in candidates if not any(s.labels.get(k) != v for k, v in match.items())]


def _rows_by_metric(
    session: Session, names: set[str], start: datetime, end: datetime, sketches: set[str]
) -> dict[str, _MetricRows]:
    """Every rollup of these metrics in [start, end), grouped by series, in one pass; the
    sketches only of the metrics in ``sketches`` (those a percentile is asked of)."""
    series = {
        s.id: s
        for s in session.execute(
            select(MetricSeries.id, MetricSeries.name, MetricSeries.labels).where(
                MetricSeries.name.in_(names)
            )
        )
    }
    grouped: dict[int, _SeriesRows] = {sid: _SeriesRows(s.labels, []) for sid, s in series.items()}
    columns = [
        MetricRollup.id,
        MetricRollup.series_id,
        MetricRollup.resolution,
        MetricRollup.bucket_start,
        MetricRollup.count,
        MetricRollup.sum,
        MetricRollup.min,
        MetricRollup.max,
    ]
    for with_sketch in (False, True):
        ids = [sid for sid, s in series.items() if (s.name in sketches) == with_sketch]
        for first in range(0, len(ids), _IDS_PER_STATEMENT):
            for row in session.execute(
                select(*columns, *([MetricRollup.sketch] if with_sketch else [])).where(
                    MetricRollup.series_id.in_(ids[first : first + _IDS_PER_STATEMENT]),
                    MetricRollup.bucket_start >= start,
                    MetricRollup.bucket_start < end,
                )
            ):
                grouped[row.series_id].rows.append(row)
    by_metric: dict[str, _MetricRows] = defaultdict(_MetricRows)
    for sid, s in series.items():
        by_metric[s.name].add(grouped[sid])
    return by_metric


class _Period:
    """The rollups of one period merged over an alarm's series; each statistic's value is
    computed once, however many alarms ask for it."""

    __slots__ = ("bucket", "rows", "values")

    def __init__(self, row: Any) -> None:
        self.bucket = metrics.Bucket(row.count, row.sum, row.min, row.max, None)
        self.rows = [row]
        self.values: dict[str, float | None] = {}


class _Datapoints:
    """The datapoints of every alarm of one tick. Alarms that watch the same series over
    the same period share that series' periods, merged once; each rollup's sketch is
    decoded at most once, and only when a percentile is asked for."""

    def __init__(
        self,
        rows: dict[str, _MetricRows],
        now: datetime,
        remembered: dict[Any, float | None] | None = None,
    ) -> None:
        self.rows = rows
        self.now = now
        # Percentiles of the previous tick by their rollups, and those of this one.
        self.remembered = remembered or {}
        self.kept: dict[Any, float | None] = {}
        self.merged: dict[Any, dict[datetime, _Period]] = {}
        self.sketches: dict[int, metrics.SketchBins] = {}  # by rollup id

    def __call__(
        self,
        metric: str,
        definition: AlarmDefinition,
        match: dict[str, str],
        start: datetime,
        end: datetime,
    ) -> dict[datetime, float | None]:
        period = definition.period_seconds
        try:
            key: Any = (metric, period, *sorted(match.items()))
            periods = self.merged.get(key)
        except TypeError:  # a match value that is not a string: nothing to share it with
            key, periods = None, None
        if periods is None:
            periods = self._merge(self.rows.get(metric), match, period)
            if key is not None:
                self.merged[key] = periods
        statistic = definition.statistic
        points: dict[datetime, float | None] = {}
        step = timedelta(seconds=period)
        cursor = start
        while cursor < end:
            found = periods.get(cursor)
            if found is None:
                points[cursor] = None
            else:
                value = found.values.get(statistic, found)
                if value is found:
                    value = found.values[statistic] = self._value(found, statistic)
                points[cursor] = value
            cursor += step
        return points

    def _merge(
        self, rows: _MetricRows | None, match: dict[str, str], period: int
    ) -> dict[datetime, _Period]:
        """Per period start: the rollups of the matching series, added in the order the
        alarm-by-alarm evaluation adds them (series by series), so sums are the same."""
        periods: dict[datetime, _Period] = {}
        if rows is None:
            return periods
        end = alarm_rules.period_start(self.now, period)
        starts: dict[datetime, datetime] = {}
        for s in rows.matching(match):
            for row in s.rows:
                if period % row.resolution:
                    # An hourly rollup cannot say what happened in one minute of its hour:
                    # such a period stays missing rather than take the hour's value.
                    continue
                at = starts.get(row.bucket_start)
                if at is None:
                    at = starts[row.bucket_start] = alarm_rules.period_start(
                        row.bucket_start, period
                    )
                if at >= end:
                    continue
                found = periods.get(at)
                if found is None:
                    periods[at] = _Period(row)
                else:
                    found.bucket.add(row.count, row.sum, row.min, row.max, None)
                    found.rows.append(row)
        return periods

    def _value(self, found: _Period, statistic: str) -> float | None:
        if not statistic.startswith("p"):
            return found.bucket.value(statistic)
        # A period's percentile is the same as last tick's while the same rollups, unchanged,
        # make it: a window slides by one period a tick, so most are (a late sample changes
        # its rollup's count and sum, and so the key).
        key = (statistic, *((r.id, r.count, r.sum) for r in found.rows))
        value = self.remembered.get(key, found)
        if value is found:
            value = self._percentile(found, statistic)
        self.kept[key] = value
        return value

    def _percentile(self, found: _Period, statistic: str) -> float | None:
        """What ``Bucket.value`` gives with the merged sketch, read from the bins."""
        bucket = found.bucket
        if bucket.count <= 0:
            return None
        decoded = []
        for row in found.rows:
            sketch = self.sketches.get(row.id)
            if sketch is None:
                sketch = self.sketches[row.id] = metrics.SketchBins.of(row.sketch)
            decoded.append(sketch)
        value = metrics.merged_quantile(decoded, float(statistic[1:]) / 100)
        return None if value is None else min(max(value, bucket.min), bucket.max)


_BASELINES = baselines.Cache()
# Stands in when an anomaly alarm's history is empty: with no datapoint either, the band
# is never asked for and the missing-data treatment decides.
_NO_HISTORY = alarm_rules.fit_baseline([(alarm_rules.EPOCH, 0.0)], "none")


def _baselines(
    session: Session,
    anomalous: list[tuple[Any, AlarmDefinition, baselines.BaselineSettings]],
    now: datetime,
) -> dict[int, alarm_rules.AnomalyBaseline | None]:
    """The fitted baseline of every anomaly alarm due, by alarm id. Fits are kept for the
    hour; those not kept are fitted from one read of the rollups for all of them, and
    alarms that watch the same series the same way share one fit."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    database = str(session.get_bind().url)
    found: dict[int, alarm_rules.AnomalyBaseline | None] = {}
    unfitted = []
    for alarm, definition, setting in anomalous:
        try:
            key: Any = (
                database,
                alarm.metric,
                definition.statistic,
                definition.period_seconds,
                tuple(sorted(alarm.match.items())),
                setting,
            )
            hash(key)
        except TypeError:  # a match value that is not a string: fitted alone, not kept
            key = None
        hit, baseline = _BASELINES.get(key, hour) if key is not None else (False, None)
        if hit:
            found[alarm.id] = baseline
        else:
            unfitted.append((alarm, definition, setting, key))
    if not unfitted:
        return found
    earliest = min(baselines.history_window(s, now)[0] for _, _, s, _ in unfitted)
    percentiles = {a.metric for a, d, _, _ in unfitted if d.statistic.startswith("p")}
    history = _Datapoints(
        _rows_by_metric(
            session, {a.metric for a, _, _, _ in unfitted}, earliest, hour, percentiles
        ),
        hour,
    )
    fitted: dict[Any, alarm_rules.AnomalyBaseline | None] = {}
    for alarm, definition, setting, key in unfitted:
        if key is None or key not in fitted:
            start, end = baselines.history_window(setting, now)
            start = alarm_rules.period_start(start, definition.period_seconds)
            points = history(alarm.metric, definition, alarm.match, start, end)
            baseline = baselines.fit(
                [(at, v) for at, v in points.items() if v is not None], setting
            )
            if key is not None:
                fitted[key] = baseline
                _BASELINES.put(key, hour, baseline)
        else:
            baseline = fitted[key]
        found[alarm.id] = baseline
    return found


# By database: the percentiles the last tick computed (what the next one may reuse).
_PERCENTILES: dict[str, dict[Any, float | None]] = {}
_DEFINITIONS: dict[str, tuple[AlarmDefinition, baselines.BaselineSettings | None]] = {}


def _parsed_definition(
    stored: str | dict[str, Any],
) -> tuple[AlarmDefinition, baselines.BaselineSettings | None]:
    """A stored definition, parsed once per distinct text for the life of the process:
    ten thousand alarms share a few dozen definitions, and validating each every minute
    was a tenth of a tick."""
    key = stored if isinstance(stored, str) else canonical_json(stored)
    found = _DEFINITIONS.get(key)
    if found is None:
        if len(_DEFINITIONS) >= 100_000:
            _DEFINITIONS.clear()
        raw = json.loads(stored) if isinstance(stored, str) else stored
        found = _DEFINITIONS[key] = baselines.split(raw)
    return found


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A tick builds many small objects (rows, datapoints, transitions) that all live until
    it ends; the cyclic garbage collector would walk them again and again for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def evaluate_due(ctx: Ctx, limit: int = 20_000) -> int:
    """Evaluate every metric alarm that is due, then every composite; returns how many
    changed state. Runs in one transaction (the worker's job)."""
    with _collector_paused():
        return _evaluate_due(ctx, limit)


def _evaluate_due(ctx: Ctx, limit: int) -> int:
    due = list(
        ctx.session.execute(
            select(
                Alarm.id,
                Alarm.name,
                Alarm.severity,
                Alarm.metric,
                Alarm.match,
                # As stored: parsed (and validated) once per distinct text, not per alarm.
                type_coerce(Alarm.definition, Text).label("definition"),
                Alarm.state,
            )
            .where(Alarm.kind == "metric", Alarm.next_evaluation_at <= ctx.now)
            .order_by(Alarm.next_evaluation_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    definitions, settings = {}, {}
    for a in due:
        definitions[a.id], settings[a.id] = _parsed_definition(a.definition)
    # A window depends on the period and the number of periods only: one per pair.
    spans: dict[tuple[int, int], tuple[datetime, datetime]] = {}
    windows = {}
    for a in due:
        definition = definitions[a.id]
        span = (definition.period_seconds, definition.range_periods)
        if span not in spans:
            spans[span] = alarm_rules.evaluation_window(definition, ctx.now)
        windows[a.id] = spans[span]
    decided: list[tuple[Any, alarm_rules.Evaluation]] = []
    if due:
        earliest = min(w[0] for w in windows.values())
        percentiles = {a.metric for a in due if definitions[a.id].statistic.startswith("p")}
        rows = _rows_by_metric(ctx.session, {a.metric for a in due}, earliest, ctx.now, percentiles)
        database = str(ctx.session.get_bind().url)
        datapoints = _Datapoints(rows, ctx.now, _PERCENTILES.get(database))
        bands = _baselines(
            ctx.session,
            [(a, definitions[a.id], settings[a.id]) for a in due if settings[a.id] is not None],
            ctx.now,
        )
        for alarm in due:
            definition, (start, end) = definitions[alarm.id], windows[alarm.id]
            points = datapoints(alarm.metric, definition, alarm.match, start, end)
            baseline = bands.get(alarm.id)
            if alarm.id in bands and baseline is None:
                points, baseline = {}, _NO_HISTORY  # nothing to fit a band to: no datapoint
            result = alarm_rules.evaluate(
                definition, points, ctx.now, AlarmState(alarm.state), baseline=baseline
            )
            if result.new_state.value != alarm.state:
                decided.append((alarm, result))
        _PERCENTILES[database] = datapoints.kept
    # The alarms were locked with the rest above; the moves are written in bulk.
    _record_transitions(
        ctx,
        [
            _Move(
                alarm.id,
                alarm.name,
                alarm.severity,
                alarm.state,
                result.new_state.value,
                result.reason,
                deciding_datapoints(result),
            )
            for alarm, result in decided
        ],
    )
    changed = len(decided) + _release_held(ctx)
    # Composites follow their inputs at once: every pass looks at all of them (cheap).
    composites = list(
        ctx.session.execute(
            select(Alarm).where(Alarm.kind == "composite").with_for_update(skip_locked=True)
        ).scalars()
    )
    changed += _evaluate_composites(ctx, composites)
    ids = [a.id for a in due] + [a.id for a in composites]
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        ctx.session.execute(
            update(Alarm)
            .where(Alarm.id.in_(ids[start : start + _IDS_PER_STATEMENT]))
            .values(
                evaluated_at=ctx.now,
                next_evaluation_at=ctx.now + EVALUATION_INTERVAL,
                version=Alarm.version + 1,
            )
        )
    ctx.session.flush()
    return changed


def deciding_datapoints(result: alarm_rules.Evaluation) -> list[dict[str, Any]]:
    """The datapoints an evaluation looked at, as a transition keeps them."""
    return [
        {
            "at": p.timestamp.isoformat(),
            "value": p.value,
            "breaching": p.breaching,
            "filled": p.filled,
            **({"band": list(p.band)} if p.band else {}),
        }
        for p in result.evaluated
    ]


def apply_evaluation(
    ctx: Ctx, alarm: Alarm, result: alarm_rules.Evaluation, reason: str | None = None
) -> None:
    """Move the alarm to the evaluation's state, recording the datapoints that decided it
    (alarms evaluated one at a time, such as those over Prometheus)."""
    _transition(
        ctx, alarm, result.new_state.value, reason or result.reason, deciding_datapoints(result)
    )


def _evaluate_composites(ctx: Ctx, composites: list[Alarm]) -> int:
    if not composites:
        return 0
    changed = 0
    states = dict(ctx.session.execute(select(Alarm.name, Alarm.state)).all())
    for alarm in composites:
        fired = alarm_rules.evaluate_rule(alarm.definition["rule"], states)
        new_state = "ALARM" if fired else "OK"
        if new_state != alarm.state:
            _transition(
                ctx,
                alarm,
                new_state,
                f"Composite rule {alarm.definition['rule']} is {str(fired).upper()}",
                [],
            )
            states[alarm.name] = new_state
            changed += 1
    return changed


def ingest_json(
    ctx: Ctx,
    raw: Any,
    limits: metrics.IngestLimits | None = None,
    *,
    key_service: OpsService | None = None,
) -> metrics.IngestResult:
    """``key_service``: the service of the ingest key the samples came with, if they came
    with one instead of a person's or a bot's credential."""
    if key_service is None:
        require_site_role(ctx, Role.ENGINEER)
    limits = limits or metrics.IngestLimits()
    batch = metrics.parse_json(raw, ctx.now, limits)
    require_metric_writers(ctx, batch, key_service)
    return metrics.ingest(ctx, batch, limits)


def ingest_prometheus(
    ctx: Ctx,
    text: str,
    limits: metrics.IngestLimits | None = None,
    *,
    key_service: OpsService | None = None,
) -> metrics.IngestResult:
    if key_service is None:
        require_site_role(ctx, Role.ENGINEER)
    limits = limits or metrics.IngestLimits()
    batch = metrics.parse_prometheus(text, ctx.now, limits)
    require_metric_writers(ctx, batch, key_service)
    return metrics.ingest(ctx, batch, limits)


def _services_named(batch: metrics.Samples) -> set[str | None]:
    """The values of the batch's ``service`` labels (None for samples without one)."""
    return {dict(labels).get(SERVICE_LABEL) for _, labels in batch.series.values()}


def require_metric_writers(
    ctx: Ctx, batch: metrics.Samples, key_service: OpsService | None = None
) -> None:
    """Samples move alarms, and alarms roll back, scale and page: a sample labelled with a
    registered service needs the engineer role in the service's owning team, or that
    service's ingest key (which writes for its service alone, so each of its samples must
    say so). A batch with any sample the credential may not write is refused whole, with
    every refused service named."""
    named = _services_named(batch)
    if key_service is not None:
        refused = sorted(
            "(no service label)" if s is None else s for s in named if s != key_service.key
        )
        who = f"the ingest key of {key_service.key}"
    else:
        found = ctx.session.execute(
            select(OpsService).where(OpsService.key.in_(named - {None})).order_by(OpsService.key)
        ).scalars()
        refused = [
            s.key
            for s in found
            if (held := team_role(ctx, s.owner_team_id)) is None or held < Role.ENGINEER
        ]
        who = ctx.principal.actor
    if refused:
        raise Forbidden(
            f"{who} may not write metrics for {', '.join(refused)}: that needs the engineer "
            "role in each service's owning team, or the service's ingest key; nothing was stored",
            code="metrics_forbidden",
            details={"services": refused, "needed_role": Role.ENGINEER.label},
        )


def query(
    ctx: Ctx,
    name: str,
    match: dict[str, str],
    statistic: str,
    start: datetime,
    end: datetime,
    period: int,
) -> list[tuple[datetime, float | None]]:
    require_site_role(ctx, Role.VIEWER)
    if end <= start or (end - start) / timedelta(seconds=max(period, 60)) > 10_000:
        raise _invalid(
            "start", "start must be before end, with at most 10,000 periods between them"
        )
    return metrics.query(
        ctx.session,
        name,
        _check_match(match),
        statistic,
        start,
        end,
        period,
        hidden_service_keys(ctx),
    )
