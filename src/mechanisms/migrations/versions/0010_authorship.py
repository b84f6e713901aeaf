"""deploys authority: a version's author is an account (users.id), a break-glass approval
records whether its credential reached the leader role, and a denial can be lifted

Revision ID: 0010_authorship
Revises: 0009_docs
Create Date: 2026-12-01 23:20:00.000000

A typed author that names exactly one account (its username, or its email, case-insensitive
and trimmed) becomes that account; any other author becomes unknown, so that version cannot
be broken-glass until an engineer names its author. Approvals recorded before this revision
do not count as a leader's: nobody knows which credential made them.
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0010_authorship"
down_revision = "0009_docs"
branch_labels = None
depends_on = None

_RESOLVE_AUTHORS = """
UPDATE deploys_versions SET author_id = (
    SELECT CASE WHEN COUNT(*) = 1 THEN MIN(users.id) END FROM users
    WHERE lower(users.username) = lower(trim(deploys_versions.author))
       OR lower(users.email) = lower(trim(deploys_versions.author))
)
WHERE author IS NOT NULL
"""

_RESTORE_AUTHORS = """
UPDATE deploys_versions SET author = (
    SELECT users.username FROM users WHERE users.id = deploys_versions.author_id
)
"""


def upgrade() -> None:
    with op.batch_alter_table("deploys_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author_id", sa.Integer(), nullable=True))
    op.execute(_RESOLVE_AUTHORS)
    with op.batch_alter_table("deploys_versions", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_deploys_versions_author_id_users"), "users", ["author_id"], ["id"]
        )
        batch_op.drop_column("author")

    with op.batch_alter_table("deploys_breakglass_decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("leader_scope", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("deploys_breakglass_decisions", schema=None) as batch_op:
        batch_op.alter_column("leader_scope", server_default=None)

    with op.batch_alter_table("deploys_breakglass", schema=None) as batch_op:
        batch_op.add_column(sa.Column("denial_lifted_by", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "denial_lifted_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("deploys_breakglass", schema=None) as batch_op:
        batch_op.drop_column("denial_lifted_at")
        batch_op.drop_column("denial_lifted_by")
    with op.batch_alter_table("deploys_breakglass_decisions", schema=None) as batch_op:
        batch_op.drop_column("leader_scope")
    with op.batch_alter_table("deploys_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author", sa.String(length=200), nullable=True))
    op.execute(_RESTORE_AUTHORS)
    with op.batch_alter_table("deploys_versions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deploys_versions_author_id_users", type_="foreignkey")
        batch_op.drop_column("author_id")
