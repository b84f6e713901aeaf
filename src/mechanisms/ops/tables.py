"""Tables of the ops mechanism. Other modules use the service, never these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
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


# --- scaling (autoscaling targets, target-tracking policies, capacity history) -------


class ScalableTarget(Base):
    """Something that runs a number of units (instances, replicas, workers) for a service."""

    __tablename__ = "ops_scalable_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("ops_services.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str] = mapped_column(String(2000), default="")
    # What the policies last asked for, and what the actuator last reported running.
    desired_capacity: Mapped[int] = mapped_column(Integer)
    current_capacity: Mapped[int] = mapped_column(Integer)
    min_capacity: Mapped[int] = mapped_column(Integer)
    max_capacity: Mapped[int] = mapped_column(Integer)
    # Cost of one unit for one hour, in the organisation's currency (cost findings).
    unit_cost_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    # {"kind": "event"} | {"kind": "webhook", "webhook_id": n}
    # | {"kind": "command", "argv": [...], "timeout_seconds": n}
    action: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScalingPolicyRow(Base):
    """A target-tracking policy: keep a statistic of a metric near a target value."""

    __tablename__ = "ops_scaling_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    target_id: Mapped[int] = mapped_column(
        ForeignKey("ops_scalable_targets.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str] = mapped_column(String(200))
    match: Mapped[dict[str, str]] = mapped_column(JSON)
    statistic: Mapped[str] = mapped_column(String(16))
    period_seconds: Mapped[int] = mapped_column(Integer)
    target_value: Mapped[float] = mapped_column(Float)
    tolerance: Mapped[float] = mapped_column(Float)
    scale_out_cooldown_seconds: Mapped[int] = mapped_column(Integer)
    scale_in_cooldown_seconds: Mapped[int] = mapped_column(Integer)
    disable_scale_in: Mapped[bool] = mapped_column(default=False)
    # An alarm whose transitions into one of ``alarm_states`` evaluate this policy at once.
    alarm: Mapped[str | None] = mapped_column(String(200), index=True)
    alarm_states: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_evaluation_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScalingDecisionRow(Base):
    """The capacity history: every decision, why, who or what asked, and what the action
    did. ``action_status``: none, emitted (an event, delivered by the event outbox),
    pending, running, succeeded, failed, superseded, unknown."""

    __tablename__ = "ops_scaling_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target_id: Mapped[int] = mapped_column(
        ForeignKey("ops_scalable_targets.id", ondelete="CASCADE"), index=True
    )
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("ops_scaling_policies.id", ondelete="SET NULL")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    from_capacity: Mapped[int] = mapped_column(Integer)
    to_capacity: Mapped[int] = mapped_column(Integer)
    # What the formula asked for, within [min, max], before cooldowns and protection.
    formula_capacity: Mapped[int] = mapped_column(Integer)
    metric_value: Mapped[float | None] = mapped_column(Float)
    target_value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(4000))
    # "schedule", "alarm:<name>", or "manual".
    trigger: Mapped[str] = mapped_column(String(300))
    actor: Mapped[str] = mapped_column(String(200))
    action_kind: Mapped[str] = mapped_column(String(16))
    action_status: Mapped[str] = mapped_column(String(16), index=True)
    action_attempts: Mapped[int] = mapped_column(Integer, default=0)
    action_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    action_exit_code: Mapped[int | None] = mapped_column(Integer)
    action_output: Mapped[str] = mapped_column(String(4000), default="")
    action_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_id: Mapped[int | None] = mapped_column(BigId)


# --- end scaling ---------------------------------------------------------------------
# --- alerts from existing tools (ops/alerts.py, ops/prometheus.py) ---------------------


class IntegrationKey(Base):
    """A PagerDuty-style integration (routing) key that sends events to one service.
    Only the key's SHA-256 is stored; the key itself is shown once, at creation or rotation."""

    __tablename__ = "ops_integration_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("ops_services.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so people can tell their keys apart without the secret.
    hint: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Fixed one-minute window of the per-key rate limit.
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_events: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (UniqueConstraint("service_id", "name"),)


class IngestKey(Base):
    """A key that writes metric samples for one service and nothing else (a collector's or
    an SDK's credential). Only its SHA-256 is kept; the key is shown once. Revoking deletes
    it."""

    __tablename__ = "ops_ingest_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("ops_services.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(12))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (UniqueConstraint("service_id", "name"),)


class PrometheusSource(Base):
    """Where a Prometheus-sourced alarm reads its datapoints: a server and a PromQL query."""

    __tablename__ = "ops_prometheus_sources"

    alarm_id: Mapped[int] = mapped_column(
        ForeignKey("ops_alarms.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    query: Mapped[str] = mapped_column(String(10_000))


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


# --- scheduled silences and evaluation (ops-eval) ---------------------------------------


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
