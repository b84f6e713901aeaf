"""ops

Revision ID: 0003_ops
Revises: 0002_flags
Create Date: 2026-11-26 18:34:26.836844
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0003_ops"
down_revision = "0002_flags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_metric_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(length=2000), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_metric_series")),
        sa.UniqueConstraint("key", name=op.f("uq_ops_metric_series_key")),
    )
    with op.batch_alter_table("ops_metric_series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ops_metric_series_name"), ["name"], unique=False)

    op.create_table(
        "ops_metric_rollups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("bucket_start", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Float(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["ops_metric_series.id"],
            name=op.f("fk_ops_metric_rollups_series_id_ops_metric_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_metric_rollups")),
        sa.UniqueConstraint(
            "series_id", "resolution", "bucket_start", name=op.f("uq_ops_metric_rollups_series_id")
        ),
    )
    with op.batch_alter_table("ops_metric_rollups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ops_metric_rollups_bucket_start"), ["bucket_start"], unique=False
        )

    op.create_table(
        "ops_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_team_id", sa.Integer(), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_team_id"], ["teams.id"], name=op.f("fk_ops_services_owner_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_services")),
        sa.UniqueConstraint("key", name=op.f("uq_ops_services_key")),
    )
    op.create_table(
        "ops_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=True),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("state_reason", sa.String(length=4000), nullable=False),
        sa.Column(
            "state_changed_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("evaluated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "next_evaluation_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["ops_services.id"],
            name=op.f("fk_ops_alarms_service_id_ops_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_alarms")),
        sa.UniqueConstraint("name", name=op.f("uq_ops_alarms_name")),
    )
    with op.batch_alter_table("ops_alarms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ops_alarms_next_evaluation_at"), ["next_evaluation_at"], unique=False
        )

    op.create_table(
        "ops_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("owner_team_id", sa.Integer(), nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("alarm", sa.String(length=200), nullable=True),
        sa.Column("open_key", sa.String(length=300), nullable=True),
        sa.Column("dedup_key", sa.String(length=300), nullable=True),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_team_id"], ["teams.id"], name=op.f("fk_ops_tickets_owner_team_id_teams")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["ops_services.id"],
            name=op.f("fk_ops_tickets_service_id_ops_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_tickets")),
        sa.UniqueConstraint("open_key", name=op.f("uq_ops_tickets_open_key")),
    )
    with op.batch_alter_table("ops_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ops_tickets_state"), ["state"], unique=False)

    op.create_table(
        "ops_alarm_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=False),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=4000), nullable=False),
        sa.Column("datapoints", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["ops_alarms.id"],
            name=op.f("fk_ops_alarm_transitions_alarm_id_ops_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_alarm_transitions")),
    )
    with op.batch_alter_table("ops_alarm_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ops_alarm_transitions_alarm_id"), ["alarm_id"], unique=False
        )

    op.create_table(
        "ops_ticket_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("text", sa.String(length=5000), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ops_tickets.id"],
            name=op.f("fk_ops_ticket_events_ticket_id_ops_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_ticket_events")),
    )
    with op.batch_alter_table("ops_ticket_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ops_ticket_events_ticket_id"), ["ticket_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ops_ticket_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_ticket_events_ticket_id"))

    op.drop_table("ops_ticket_events")
    with op.batch_alter_table("ops_alarm_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_alarm_transitions_alarm_id"))

    op.drop_table("ops_alarm_transitions")
    with op.batch_alter_table("ops_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_tickets_state"))

    op.drop_table("ops_tickets")
    with op.batch_alter_table("ops_alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_alarms_next_evaluation_at"))

    op.drop_table("ops_alarms")
    op.drop_table("ops_services")
    with op.batch_alter_table("ops_metric_rollups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_metric_rollups_bucket_start"))

    op.drop_table("ops_metric_rollups")
    with op.batch_alter_table("ops_metric_series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_metric_series_name"))

    op.drop_table("ops_metric_series")
