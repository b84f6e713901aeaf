"""ops evaluation: scheduled silences, alarms a silence held back; the flags mechanism's
temporary alarm-state table goes (deployments read the ops alarms); an index for
downsampling

Revision ID: 0007_eval
Revises: 0006_alerts
Create Date: 2026-11-26 19:48:54.139720
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0007_eval"
down_revision = "0006_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("comment", sa.String(length=2000), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_silences")),
        sa.UniqueConstraint("name", name=op.f("uq_ops_silences_name")),
    )
    op.create_table(
        "ops_held_alarms",
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("silence", sa.String(length=200), nullable=False),
        sa.Column("since", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["ops_alarms.id"],
            name=op.f("fk_ops_held_alarms_alarm_id_ops_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alarm_id", name=op.f("pk_ops_held_alarms")),
    )
    op.drop_table("flag_alarm_states")
    with op.batch_alter_table("ops_metric_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ops_metric_rollups_resolution_bucket_start",
            ["resolution", "bucket_start"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("ops_metric_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_ops_metric_rollups_resolution_bucket_start")
    op.create_table(
        "flag_alarm_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_alarm_states")),
        sa.UniqueConstraint("name", name=op.f("uq_flag_alarm_states_name")),
    )
    op.drop_table("ops_held_alarms")
    op.drop_table("ops_silences")
