"""Tables of the ops mechanism. Other modules use the service, never these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mechanisms.core.db import Base, UTCDateTime
from mechanisms.core.tables import BigId


class MetricSeries(Base):
    """One time series: a metric name and its labels."""

    __tablename__ = "ops_metric_series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    # name{label="value",...} with labels sorted: the series' identity.
    key: Mapped[str] = mapped_column(String(2000), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MetricRollup(Base):
    """A series' samples in one bucket (a minute, or an hour once downsampled): count, sum,
    min, max and a DDSketch, so any percentile can be merged across buckets and series
    without ever averaging percentiles."""

    __tablename__ = "ops_metric_rollups"
    __table_args__ = (UniqueConstraint("series_id", "resolution", "bucket_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("ops_metric_series.id", ondelete="CASCADE"))
    # 60 (per minute) or 3600 (per hour, after downsampling).
    resolution: Mapped[int] = mapped_column(Integer)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)


class OpsService(Base):
    """A service the organisation runs: its metrics, alarms and on-call belong to a team."""

    __tablename__ = "ops_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Alarm(Base):
    __tablename__ = "ops_alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("ops_services.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(2000), default="")
    # "metric" (a statistic of a metric against a threshold or band) or "composite".
    kind: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str | None] = mapped_column(String(200))
    match: Mapped[dict[str, str]] = mapped_column(JSON)
    # The AlarmDefinition (metric) or {"rule": "..."} (composite).
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    severity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(24))
    state_reason: Mapped[str] = mapped_column(String(4000), default="")
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_evaluation_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlarmTransition(Base):
    """Every change of an alarm's state, with the datapoints that decided it."""

    __tablename__ = "ops_alarm_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(
        ForeignKey("ops_alarms.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(String(4000))
    datapoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class Ticket(Base):
    __tablename__ = "ops_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    # 1 (SEV1, the most severe) to 5.
    severity: Mapped[int] = mapped_column(Integer)
    # open → acknowledged → resolved
    state: Mapped[str] = mapped_column(String(16), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("ops_services.id", ondelete="CASCADE"))
    owner_team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    assignee: Mapped[str | None] = mapped_column(String(64))
    alarm: Mapped[str | None] = mapped_column(String(200))
    # The dedup key while the ticket is open, NULL once resolved: the unique index keeps
    # one open ticket per key (one per alarm, one per incoming alert).
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    dedup_key: Mapped[str | None] = mapped_column(String(300))
    links: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TicketEvent(Base):
    """The ticket's timeline: every change and comment."""

    __tablename__ = "ops_ticket_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ops_tickets.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    # created, update, comment, acknowledged, resolved, reopened, assigned, note
    kind: Mapped[str] = mapped_column(String(24))
    text: Mapped[str] = mapped_column(String(5000), default="")


# --- scheduled silences and evaluation (ops-eval) ---------------------------------------

from sqlalchemy import Index  # noqa: E402  (this section's own import)


class Silence(Base):
    """A scheduled silence: while one of its windows is open, the alarms it covers still
    evaluate and record transitions, but their events say ``silenced`` so that tickets and
    pages hold back. ``definition`` is ``alarm_rules.Silence`` as JSON (wall-clock start and
    end in an IANA zone, an optional RRULE, the alarm names; none means every alarm)."""

    __tablename__ = "ops_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HeldAlarm(Base):
    """An alarm that went into ALARM inside a silence and has not left it: when the silence
    ends with the alarm still in ALARM, the evaluator announces it again (unsilenced), so the
    ticket a silence held back is cut then, as Alertmanager notifies once a silence expires."""

    __tablename__ = "ops_held_alarms"

    alarm_id: Mapped[int] = mapped_column(
        ForeignKey("ops_alarms.id", ondelete="CASCADE"), primary_key=True
    )
    silence: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(UTCDateTime)


# Downsampling looks for the oldest minute rollups; without this index it would first step
# over every hourly rollup (they are the oldest rows).
Index(
    "ix_ops_metric_rollups_resolution_bucket_start",
    MetricRollup.resolution,
    MetricRollup.bucket_start,
)


# --- end of scheduled silences and evaluation (ops-eval) --------------------------------
