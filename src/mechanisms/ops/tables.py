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


# --- on-call schedules, escalation policies and paging (ops/schedules.py, ops/paging.py) ---


class OnCallSchedule(Base):
    """A team's schedule, stored as the domain's ``oncall.Schedule`` (layers, roster changes,
    restrictions and overrides), validated by it on every write."""

    __tablename__ = "ops_oncall_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Bumped by every edit; an edit that names an older version is refused (lost update).
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The person the handoff job last announced, and when it should look again (the end of
    # the current shift, or now after an edit).
    announced_person: Mapped[str | None] = mapped_column(String(200))
    handoff_check_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EscalationPolicy(Base):
    """A team's escalation policy, stored as the domain's ``escalation.Policy``."""

    __tablename__ = "ops_escalation_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TeamPagingPolicy(Base):
    """The policy that pages for a team's high-severity tickets."""

    __tablename__ = "ops_team_paging_policies"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[int] = mapped_column(
        ForeignKey("ops_escalation_policies.id", ondelete="CASCADE"), index=True
    )


class CalendarFeed(Base):
    """A secret iCalendar feed URL of one schedule or one person; calendar apps send no
    headers, so the token in the URL is the credential (stored hashed, shown once)."""

    __tablename__ = "ops_calendar_feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("ops_oncall_schedules.id", ondelete="CASCADE"), index=True
    )
    person: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Page(Base):
    """A high-severity ticket paging its team through an escalation policy until someone
    acknowledges. ``next_escalation_at`` is what the worker asks for."""

    __tablename__ = "ops_pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ops_tickets.id", ondelete="CASCADE"), unique=True
    )
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    policy_name: Mapped[str | None] = mapped_column(String(200))
    # The policy as it was when the page opened: later edits do not reshape a live page.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # triggered → acknowledged | resolved | exhausted; unrouted: the team has no policy.
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exhausted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The instant up to which notifications were sent (``since`` of escalation.due_between).
    notified_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class PageNotification(Base):
    """One target of one level of one pass, notified once: the unique key is what makes a
    worker killed mid-tick, or two workers, never notify twice."""

    __tablename__ = "ops_page_notifications"
    __table_args__ = (UniqueConstraint("page_id", "loop", "level", "target_kind", "target_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("ops_pages.id", ondelete="CASCADE"))
    loop: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    target_kind: Mapped[str] = mapped_column(String(16))
    target_name: Mapped[str] = mapped_column(String(200))
    # None: the target schedule had nobody on call (a coverage gap, kept visible).
    person: Mapped[str | None] = mapped_column(String(200), index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- end of on-call schedules, escalation policies and paging ---------------------------------
