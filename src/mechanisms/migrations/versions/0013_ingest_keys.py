"""ops: per-service metric ingest keys (issue #14: writing metrics is a permission)

Revision ID: 0013_ingest_keys
Revises: 0012_signin
Create Date: 2026-12-01 23:30:00
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0013_ingest_keys"
down_revision = "0012_signin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_ingest_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["ops_services.id"],
            name=op.f("fk_ops_ingest_keys_service_id_ops_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_ingest_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_ops_ingest_keys_digest")),
        sa.UniqueConstraint("service_id", "name", name=op.f("uq_ops_ingest_keys_service_id")),
    )


def downgrade() -> None:
    op.drop_table("ops_ingest_keys")
