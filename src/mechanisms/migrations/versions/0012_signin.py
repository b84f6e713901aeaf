"""sign-in throttle: failed sign-ins counted per client address and per account

Revision ID: 0012_signin
Revises: 0011_protected_changes
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0012_signin"
down_revision = "0011_protected_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signin_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_throttle")),
        sa.UniqueConstraint("key", name=op.f("uq_signin_throttle_key")),
    )


def downgrade() -> None:
    op.drop_table("signin_throttle")
