"""Synthetic metrics for demos and trials: per minute, for each configured service, request
latencies (lognormal, with a daily shape and now and then an incident) and a CPU
utilisation, written into the built-in store like any other samples.

The generator is off unless someone turns it on (the demo does): its switch is the newest
``ops.synthetic_configured`` record of the audit trail, so it needs no table of its own,
every change to it is audited, and every worker process sees it. A production
organisation never writes that record, so nothing synthetic ever reaches its metrics.

What a minute holds depends only on the seed, the service and the minute, never on when
it is generated: a minute caught up after downtime is the minute that would have been
written live, and tests can assert exact shapes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select, text

from mechanisms.core import audit
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, require_team_role
from mechanisms.core.worker import WORKER, Worker, register
from mechanisms.ops import alarms, metrics
from mechanisms.ops.tables import MetricRollup, MetricSeries

ACTION = "ops.synthetic_configured"
LATENCY_METRIC = "api_latency_ms"
CPU_METRIC = "cpu_utilization_percent"
SOURCE_LABEL = ("source", "synthetic")
MINUTE = timedelta(minutes=1)
# Latency rises by this factor at the busiest hour (14:00 UTC) and falls by it at 02:00.
DAILY_SWING = 0.35
PEAK_HOUR = 14
INCIDENT_LATENCY_FACTOR = 8.0
INCIDENT_CPU_POINTS = 25.0
# An advisory lock key of its own, so two workers on PostgreSQL never write one minute twice.
PG_LOCK_KEY = 0x6D656368_0005


class ServiceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1, max_length=128)
    # The median latency at average load, and the CPU utilisation at average load.
    latency_ms: float = Field(gt=0, le=60_000)
    cpu_percent: float = Field(gt=0, le=100)
    requests_per_minute: int = Field(default=20, ge=1, le=600)


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    start: AwareDatetime
    minutes: int = Field(ge=1, le=24 * 60)


class SyntheticConfig(BaseModel):
    """What the generator writes. ``backfill_minutes`` of history are written the first
    time (two days of minutes by default: enough for day-over-day shapes and anomaly
    bands, about 120,000 samples for two services, a few seconds on SQLite; two weeks
    would be seven times that for little more to see). After downtime, at most
    ``catch_up_minutes`` are written again; an older gap stays a gap, as it would for a
    real service whose collector was down."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    services: list[ServiceProfile] = Field(min_length=1, max_length=20)
    incidents: list[Incident] = Field(default_factory=list, max_length=100)
    # Besides the incidents listed: one of ``incident_minutes`` in every window of this
    # many hours per service, at a place the seed decides (0: none).
    incident_every_hours: int = Field(default=8, ge=0, le=24 * 7)
    incident_minutes: int = Field(default=15, ge=1, le=120)
    backfill_minutes: int = Field(default=2 * 24 * 60, ge=1, le=7 * 24 * 60)
    catch_up_minutes: int = Field(default=6 * 60, ge=1, le=7 * 24 * 60)


# --- the shapes (pure) --------------------------------------------------------------


def daily_load(minute: datetime) -> float:
    """1 on average; 1 + DAILY_SWING at PEAK_HOUR UTC, 1 - DAILY_SWING twelve hours away."""
    hours = minute.hour + minute.minute / 60
    return 1 + DAILY_SWING * math.cos(2 * math.pi * (hours - PEAK_HOUR) / 24)


def _minute_index(minute: datetime) -> int:
    return int(minute.timestamp()) // 60


def in_incident(config: SyntheticConfig, service: str, minute: datetime) -> bool:
    for incident in config.incidents:
        if incident.service == service and (
            incident.start <= minute < incident.start + incident.minutes * MINUTE
        ):
            return True
    if not config.incident_every_hours:
        return False
    window = config.incident_every_hours * 60
    index = _minute_index(minute)
    slot = index // window
    room = max(1, window - config.incident_minutes)
    start = slot * window + random.Random(f"{config.seed}:{service}:incident:{slot}").randrange(
        room
    )
    return start <= index < start + config.incident_minutes


@dataclass(frozen=True)
class MinuteOfService:
    latencies: list[float]
    cpu: float
    incident: bool


def minute_of(
    config: SyntheticConfig, profile: ServiceProfile, minute: datetime
) -> MinuteOfService:
    """The samples of one service in one minute, from the seed, the service and the minute."""
    rng = random.Random(f"{config.seed}:{profile.service}:{_minute_index(minute)}")
    load = daily_load(minute)
    incident = in_incident(config, profile.service, minute)
    requests = max(1, round(profile.requests_per_minute * load))
    # Busier means slower, but less than proportionally: queueing, not a linear cost.
    median = profile.latency_ms * (0.6 + 0.4 * load) * (INCIDENT_LATENCY_FACTOR if incident else 1)
    latencies = [rng.lognormvariate(math.log(median), 0.5) for _ in range(requests)]
    cpu = profile.cpu_percent * load + rng.gauss(0, 2) + (INCIDENT_CPU_POINTS if incident else 0)
    return MinuteOfService(latencies, min(100.0, max(0.5, cpu)), incident)


def add_minute(
    batch: metrics.Samples, config: SyntheticConfig, profile: ServiceProfile, minute: datetime
) -> None:
    """Append one service's minute to ``batch``: the latencies spread over the minute,
    the CPU utilisation at its middle."""
    generated = minute_of(config, profile, minute)
    labels = tuple(sorted([("service", profile.service), SOURCE_LABEL]))
    first_us = _minute_index(minute) * 60_000_000
    step_us = 60_000_000 // len(generated.latencies)
    latency_key = metrics.series_key(LATENCY_METRIC, labels)
    batch.series[latency_key] = (LATENCY_METRIC, labels)
    for i, value in enumerate(generated.latencies):
        batch.keys.append(latency_key)
        batch.values.append(value)
        batch.us.append(first_us + i * step_us)
    cpu_key = metrics.series_key(CPU_METRIC, labels)
    batch.series[cpu_key] = (CPU_METRIC, labels)
    batch.keys.append(cpu_key)
    batch.values.append(generated.cpu)
    batch.us.append(first_us + 30_000_000)


def minutes_to_write(
    last: datetime | None, now: datetime, config: SyntheticConfig
) -> tuple[datetime, datetime]:
    """[start, end) of the minutes to write now: the complete minutes after the last one
    written, at most ``catch_up_minutes`` of them, or the backfill the first time."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    if last is None:
        return end - config.backfill_minutes * MINUTE, end
    return max(last + MINUTE, end - config.catch_up_minutes * MINUTE), end


# --- the service --------------------------------------------------------------------


def parse_config(raw: Any) -> SyntheticConfig:
    """A configuration from plain data; a problem is an InvalidInput naming the field."""
    try:
        return SyntheticConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        raise InvalidInput(f"{field}: {first['msg']}", details={"field": field}) from None


def enable(ctx: Ctx, config: SyntheticConfig) -> SyntheticConfig:
    require_site_role(ctx, Role.ENGINEER)
    for profile in config.services:
        # Synthetic samples land among the service's real ones: its team decides.
        service = alarms.get_service(ctx, profile.service)
        require_team_role(ctx, service.owner_team_id, Role.ENGINEER)
    audit.record(
        ctx,
        ACTION,
        "ops_synthetic",
        "generator",
        after={"enabled": True},
        details={"config": config.model_dump(mode="json")},
    )
    return config


def disable(ctx: Ctx) -> None:
    require_site_role(ctx, Role.ENGINEER)
    audit.record(
        ctx,
        ACTION,
        "ops_synthetic",
        "generator",
        after={"enabled": False},
        details={"config": None},
    )


def configuration(ctx: Ctx) -> SyntheticConfig | None:
    """The generator's configuration, or None while it is off (always, unless enabled)."""
    newest = audit.browse(ctx.session, audit.AuditFilter(action=ACTION, limit=1))
    config = newest[0].details.get("config") if newest else None
    return SyntheticConfig.model_validate(config) if config else None


def last_minute_written(ctx: Ctx, service: str) -> datetime | None:
    labels = tuple(sorted([("service", service), SOURCE_LABEL]))
    return ctx.session.execute(
        select(func.max(MetricRollup.bucket_start))
        .join(MetricSeries, MetricSeries.id == MetricRollup.series_id)
        .where(MetricSeries.key == metrics.series_key(LATENCY_METRIC, labels))
    ).scalar_one()


def generate(ctx: Ctx, config: SyntheticConfig) -> int:
    """Write the minutes that are due for every configured service; returns how many."""
    if not _claim(ctx):
        return 0
    written = 0
    limits = metrics.IngestLimits(
        late_window=(max(config.backfill_minutes, config.catch_up_minutes) + 60) * MINUTE,
        max_samples=10_000_000,
    )
    for profile in config.services:
        start, end = minutes_to_write(last_minute_written(ctx, profile.service), ctx.now, config)
        batch = metrics.Samples()
        minute = start
        while minute < end:
            add_minute(batch, config, profile, minute)
            minute += MINUTE
            written += 1
        if batch:
            metrics.ingest(ctx, batch, limits)
    return written


def _claim(ctx: Ctx) -> bool:
    """Only one worker generates at a time (SQLite serialises writers by itself)."""
    if ctx.session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        ctx.session.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY}
        ).scalar()
    )


def due(ctx: Ctx, config: SyntheticConfig) -> bool:
    """Whether a minute completed since the last one written, for any service."""
    for profile in config.services:
        start, end = minutes_to_write(last_minute_written(ctx, profile.service), ctx.now, config)
        if start < end:
            return True
    return False


class GenerateSyntheticMetrics:
    """The worker job: each tick, the minutes that completed since the last one."""

    name = "ops.synthetic"

    def run(self, worker: Worker) -> int:
        # Most ticks find nothing to write (a minute completes once a minute): they only
        # read, so they do not take SQLite's write lock from the other jobs.
        with worker.db.transaction(write=False) as session:
            ctx = Ctx(session, WORKER, worker.clock.now())
            config = configuration(ctx)
            if config is None or not due(ctx, config):
                return 0
        with worker.db.transaction() as session:
            ctx = Ctx(session, WORKER, worker.clock.now())
            config = configuration(ctx)
            return generate(ctx, config) if config is not None else 0


register(GenerateSyntheticMetrics())
