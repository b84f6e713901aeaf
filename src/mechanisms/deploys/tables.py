"""Tables of the deploys mechanism. Other modules use its services, never these.

A deploy service is an ops service (``ops_services``), named by its key: the pipeline, its
versions and its windows refer to it by key and ask ops for the owning team (decision 0014).
"""

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
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from mechanisms.core.db import Base, UTCDateTime
from mechanisms.core.tables import BigId, User


class Pipeline(Base):
    """A service's pipeline: its stages in order."""

    __tablename__ = "deploys_pipelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Stage(Base):
    """One stage: the suites it requires, how long a deploy bakes, the ops alarms watched
    while it bakes, and the manual approval it asks for (roles and count), if any."""

    __tablename__ = "deploys_stages"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "name", name="uq_deploys_stages_name"),
        UniqueConstraint("pipeline_id", "position", name="uq_deploys_stages_position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("deploys_pipelines.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    required_suites: Mapped[list[str]] = mapped_column(JSON)
    bake_seconds: Mapped[int] = mapped_column(Integer, default=0)
    alarms: Mapped[list[str]] = mapped_column(JSON)
    approval_roles: Mapped[list[str] | None] = mapped_column(JSON)
    approval_count: Mapped[int] = mapped_column(Integer, default=0)


class Version(Base):
    """A build of a service: an artifact and the digest that names its exact bytes, and its
    author: an account of the system (never a typed name), or unknown until someone names
    them."""

    __tablename__ = "deploys_versions"
    __table_args__ = (UniqueConstraint("service_key", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128), index=True)
    artifact: Mapped[str] = mapped_column(String(500))
    digest: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    registered_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The author's username, read in the same statement as the version (no extra round
    # trip on the gate's path); usernames never change, so it names the same person.
    author: Mapped[str | None] = column_property(
        select(User.username).where(User.id == author_id).correlate_except(User).scalar_subquery()
    )


class Deployment(Base):
    """A version deployed into a stage: deploying → baking → succeeded, or rolled_back.
    The newest row per stage is what the stage runs (unless it was rolled back)."""

    __tablename__ = "deploys_deployments"
    __table_args__ = (Index("ix_deploys_deployments_pipeline_stage", "pipeline_id", "stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("deploys_pipelines.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(200))
    # deploying | baking | succeeded | rolled_back
    state: Mapped[str] = mapped_column(String(16), index=True)
    previous_good: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    bake_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    promoted_by: Mapped[str] = mapped_column(String(200))
    break_glass_id: Mapped[int | None] = mapped_column(Integer)
    rollback_alarm: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=0)

    __mapper_args__ = {"version_id_col": version}


class TestRun(Base):
    """One uploaded JUnit report of a suite against a version digest."""

    __tablename__ = "deploys_test_runs"
    __test__ = False  # pytest: a table, not a test class
    __table_args__ = (Index("ix_deploys_test_runs_digest_suite", "service_key", "digest", "suite"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(200))
    suite: Mapped[str] = mapped_column(String(200))
    tests: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    time_seconds: Mapped[float] = mapped_column(Float)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BlockWindow(Base):
    """A block window: its scope (org → team → service → stage) and its rule, stored as the
    domain model's definition (wall-clock times and zone names, decision 0013)."""

    __tablename__ = "deploys_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(200), unique=True)
    # "org", "team", "service" or "stage", and the scope's path ("acme/payments/api/prod").
    scope_kind: Mapped[str] = mapped_column(String(16))
    scope_key: Mapped[str] = mapped_column(String(600), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # One-off windows and freezes: when they are over for good (the expiry job removes them).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class StageApproval(Base):
    """A person's manual approval of one version into one stage."""

    __tablename__ = "deploys_stage_approvals"
    __table_args__ = (Index("ix_deploys_stage_approvals_target", "service_key", "stage", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(200))
    approver: Mapped[str] = mapped_column(String(200))
    human: Mapped[bool] = mapped_column(Boolean)
    roles: Mapped[list[str]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(String(2000), default="")
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BreakGlassRequest(Base):
    """A request to promote one exact version into one stage through a block window.

    Its status is derived from its decisions by ``approvals.py`` whenever it is read; the
    stored ``status`` and grant columns are what the last writer saw, for listing and for
    the expiry job. ``version`` is bumped on every change so that two approvals arriving at
    once cannot both decide the grant."""

    __tablename__ = "deploys_breakglass"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(200))
    requester: Mapped[str] = mapped_column(String(200))
    version_author: Mapped[str | None] = mapped_column(String(200))
    org: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(4000))
    ticket_ref: Mapped[str] = mapped_column(String(200))
    ticket_severity: Mapped[str] = mapped_column(String(8))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending | granted | used | denied | expired | grant_expired | invalidated | revoked
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    grant_ttl_seconds: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    grant_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    denied_by: Mapped[str | None] = mapped_column(String(200))
    denied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    denial_reason: Mapped[str] = mapped_column(String(2000), default="")
    # A denial keeps its requester from filing again for the same version until a leader of
    # the owning team lifts it.
    denial_lifted_by: Mapped[str | None] = mapped_column(String(200))
    denial_lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invalidated_by_digest: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)

    __mapper_args__ = {"version_id_col": version}


class BreakGlassDecision(Base):
    """An approval (possibly revoked later) or a denial of a break-glass request."""

    __tablename__ = "deploys_breakglass_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("deploys_breakglass.id", ondelete="CASCADE"), index=True
    )
    # approve | deny
    kind: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(200))
    human: Mapped[bool] = mapped_column(Boolean)
    # Whether the credential it was made with reached the leader role: only then may the
    # approver's leadership count (a leader's engineer-scoped token approves as an engineer).
    leader_scope: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the approver was shown and approved: the exact promotion.
    service_key: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(String(2000), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewItem(Base):
    """The follow-up review a break-glass use opens: open until someone records what
    happened and why."""

    __tablename__ = "deploys_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("deploys_breakglass.id", ondelete="CASCADE"), unique=True
    )
    service_key: Mapped[str] = mapped_column(String(128), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(200))
    what_happened: Mapped[str] = mapped_column(Text, default="")
    why: Mapped[str] = mapped_column(Text, default="")


class TimelineEntry(Base):
    """A service's deploy history: promotions, blocks, overrides, approvals, denials,
    expiries and rollbacks, with who, when, why and which version."""

    __tablename__ = "deploys_timeline"
    __table_args__ = (Index("ix_deploys_timeline_service_at", "service_key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str | None] = mapped_column(String(100))
    digest: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class ProtectedChange(Base):
    """A change that would lift a block in force now (deleting or narrowing a window holding
    a gate, lowering a requirement that blocks the newest version), waiting for a second
    leader under the two-person rule. ``proposal`` is what is applied once approved;
    ``digest`` names it exactly, so an approval cannot carry over to another proposal."""

    __tablename__ = "deploys_protected_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # window_update | window_delete | pipeline_set
    kind: Mapped[str] = mapped_column(String(16))
    # The window's uid, or the service whose pipeline changes.
    subject: Mapped[str] = mapped_column(String(200))
    # The services whose timelines show the change (the first is where it is listed).
    service_key: Mapped[str] = mapped_column(String(128), index=True)
    services: Mapped[list[str]] = mapped_column(JSON)
    team_id: Mapped[int] = mapped_column(Integer)
    proposal: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(80))
    # The subject's state when asked: applied only if it is still the same.
    base_digest: Mapped[str] = mapped_column(String(80))
    protection: Mapped[dict[str, Any]] = mapped_column(JSON)
    requester: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(2000))
    # An ops ticket's id, through ops' service API (not a copy of its text).
    ticket_id: Mapped[int] = mapped_column(Integer)
    # pending | applied | denied | expired | invalidated
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(2000), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)

    __mapper_args__ = {"version_id_col": version}


class ProtectedChangeDecision(Base):
    """A leader's approval or denial of a protected change, with the proposal they saw."""

    __tablename__ = "deploys_protected_change_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int] = mapped_column(
        ForeignKey("deploys_protected_changes.id", ondelete="CASCADE"), index=True
    )
    # approve | deny
    kind: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(200))
    human: Mapped[bool] = mapped_column(Boolean)
    digest: Mapped[str] = mapped_column(String(80))
    comment: Mapped[str] = mapped_column(String(2000), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)
