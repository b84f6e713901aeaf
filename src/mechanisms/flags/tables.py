"""Tables of the flags mechanism. Other modules use the service, never these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mechanisms.core.db import Base, UTCDateTime
from mechanisms.core.tables import BigId


class FlagApp(Base):
    """An application: the unit that owns flags, segments and environments."""

    __tablename__ = "flag_apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagEnvironment(Base):
    __tablename__ = "flag_environments"
    __table_args__ = (UniqueConstraint("app_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("flag_apps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    # Changes here need a second person's approval (a change request).
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    salt: Mapped[str] = mapped_column(String(64))
    holdout_percent: Mapped[float] = mapped_column(Float, default=0.0)
    # Bumped by every change that alters what SDKs download: their ETag.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("app_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("flag_apps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    json_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Fixed at creation: changing it would move every key to another bucket.
    salt: Mapped[str] = mapped_column(String(160))
    stale_after_days: Mapped[int] = mapped_column(Integer, default=30)
    layer_id: Mapped[int | None] = mapped_column(ForeignKey("flag_layers.id"))
    layer_start: Mapped[int | None] = mapped_column(Integer)
    layer_end: Mapped[int | None] = mapped_column(Integer)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagVersion(Base):
    """An immutable configuration of one flag in one environment."""

    __tablename__ = "flag_versions"
    __table_args__ = (UniqueConstraint("flag_id", "environment_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagState(Base):
    """What one flag serves in one environment now."""

    __tablename__ = "flag_states"
    __table_args__ = (UniqueConstraint("flag_id", "environment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    live_number: Mapped[int] = mapped_column(Integer)
    # The deployment moving this flag to a newer version, while one runs.
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("flag_deployments.id"))
    # Since when the set of values served has stayed the same (for staleness).
    served_since: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)


class FlagSegment(Base):
    __tablename__ = "flag_segments"
    __table_args__ = (UniqueConstraint("app_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("flag_apps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagLayer(Base):
    """A mutual-exclusion layer: experiments in it get disjoint slices of its buckets."""

    __tablename__ = "flag_layers"
    __table_args__ = (UniqueConstraint("app_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("flag_apps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    salt: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeploymentStrategy(Base):
    __tablename__ = "flag_strategies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    predefined: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagDeployment(Base):
    """A version on its way to everyone in an environment, step by step."""

    __tablename__ = "flag_deployments"
    __table_args__ = (Index("ix_flag_deployments_due", "state", "next_step_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    from_number: Mapped[int] = mapped_column(Integer)
    to_number: Mapped[int] = mapped_column(Integer)
    strategy_name: Mapped[str] = mapped_column(String(128))
    # A copy of the strategy as it was at the start: editing a strategy never changes
    # a deployment already running.
    strategy: Mapped[dict[str, Any]] = mapped_column(JSON)
    # rolling → baking → complete; or rolled_back / stopped at any point.
    state: Mapped[str] = mapped_column(String(16))
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Alarm names and guardrails that roll the deployment back.
    monitors: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=0)


class FlagDeploymentStep(Base):
    """The deployment's history, one row per change of share or state (the chart)."""

    __tablename__ = "flag_deployment_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_deployments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    percent: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class ChangeRequest(Base):
    """A proposed configuration for an environment that needs a second person."""

    __tablename__ = "flag_change_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    # The version the proposal was written against; any newer version invalidates it.
    base_number: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    strategy_name: Mapped[str] = mapped_column(String(128))
    # What the deployment will watch once a second person applies the change.
    monitors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    comment: Mapped[str] = mapped_column(Text, default="")
    # open → applied | rejected | invalidated
    state: Mapped[str] = mapped_column(String(16))
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FlagExperiment(Base):
    """A flag's variants run as an experiment in one environment."""

    __tablename__ = "flag_experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    control_variant: Mapped[str] = mapped_column(String(128))
    # The split the experiment expects, {variant: percent}, for the sample-ratio check.
    weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    # [{name, kind: conversion|numeric, higher_is_better, guardrail: {direction, bound}?}]
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # running → shipped | rolled_back
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_variant: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))


class FlagExposure(Base):
    """The first time a unit was served a variant of a flag (reported by SDKs)."""

    __tablename__ = "flag_exposures"
    __table_args__ = (UniqueConstraint("environment_id", "flag_key", "targeting_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    flag_key: Mapped[str] = mapped_column(String(128))
    targeting_key: Mapped[str] = mapped_column(String(256))
    variant: Mapped[str] = mapped_column(String(128))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagFeedback(Base):
    """Feedback keyed by targeting key: a rating, a conversion, a latency, a comment."""

    __tablename__ = "flag_feedback"
    __table_args__ = (
        Index("ix_flag_feedback_metric", "environment_id", "metric", "targeting_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("flag_environments.id", ondelete="CASCADE")
    )
    targeting_key: Mapped[str] = mapped_column(String(256))
    metric: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
