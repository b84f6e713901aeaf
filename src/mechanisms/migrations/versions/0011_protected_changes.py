"""deploys: protected changes to block windows and pipelines waiting for a second leader

Revision ID: 0011_protected_changes
Revises: 0010_authorship
Create Date: 2026-12-01 23:30:00
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0011_protected_changes"
down_revision = "0010_authorship"
branch_labels = None
depends_on = None


def _instant(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, mechanisms.core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "deploys_protected_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("service_key", sa.String(length=128), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("base_digest", sa.String(length=80), nullable=False),
        sa.Column("protection", sa.JSON(), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _instant("requested_at"),
        _instant("expires_at"),
        _instant("decided_at", nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=2000), nullable=False),
        _instant("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploys_protected_changes")),
    )
    with op.batch_alter_table("deploys_protected_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deploys_protected_changes_service_key"), ["service_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deploys_protected_changes_status"), ["status"], unique=False
        )
    op.create_table(
        "deploys_protected_change_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("human", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("comment", sa.String(length=2000), nullable=False),
        _instant("at"),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["deploys_protected_changes.id"],
            name=op.f("fk_deploys_protected_change_decisions_change_id_deploys_protected_changes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploys_protected_change_decisions")),
    )
    with op.batch_alter_table("deploys_protected_change_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deploys_protected_change_decisions_change_id"),
            ["change_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("deploys_protected_change_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deploys_protected_change_decisions_change_id"))
    op.drop_table("deploys_protected_change_decisions")
    with op.batch_alter_table("deploys_protected_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deploys_protected_changes_status"))
        batch_op.drop_index(batch_op.f("ix_deploys_protected_changes_service_key"))
    op.drop_table("deploys_protected_changes")
