"""ops: alerts from existing tools (integration keys, Prometheus alarm sources)

Revision ID: 0006_alerts
Revises: 0005_scaling
Create Date: 2026-11-26 19:47:57.866859
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0006_alerts"
down_revision = "0005_scaling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_integration_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_start", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_events", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["ops_services.id"],
            name=op.f("fk_ops_integration_keys_service_id_ops_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_integration_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_ops_integration_keys_digest")),
        sa.UniqueConstraint("service_id", "name", name=op.f("uq_ops_integration_keys_service_id")),
    )
    op.create_table(
        "ops_prometheus_sources",
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("query", sa.String(length=10000), nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["ops_alarms.id"],
            name=op.f("fk_ops_prometheus_sources_alarm_id_ops_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alarm_id", name=op.f("pk_ops_prometheus_sources")),
    )


def downgrade() -> None:
    op.drop_table("ops_prometheus_sources")
    op.drop_table("ops_integration_keys")
