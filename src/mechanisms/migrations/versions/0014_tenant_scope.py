"""tenant scope: each audit record names the organisation it belongs to, so a person reads
only their organisations' part of the trail (issue #14, item 7)

Revision ID: 0014_tenant_scope
Revises: 0013_ingest_keys
Create Date: 2026-12-01 23:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_tenant_scope"
down_revision = "0013_ingest_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("org_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_records_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_org_id"))
        batch_op.drop_column("org_id")
