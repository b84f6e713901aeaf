"""flags

Revision ID: 0002_flags
Revises: 0001_core
Create Date: 2026-11-26 17:44:08.832311
"""

import sqlalchemy as sa
from alembic import op

import mechanisms.core.db

revision = "0002_flags"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    op.create_table(
        "flag_strategies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("predefined", sa.Boolean(), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_strategies")),
        sa.UniqueConstraint("name", name=op.f("uq_flag_strategies_name")),
    )
    op.create_table(
        "flag_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_team_id", sa.Integer(), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_team_id"], ["teams.id"], name=op.f("fk_flag_apps_owner_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_apps")),
        sa.UniqueConstraint("key", name=op.f("uq_flag_apps_key")),
    )
    op.create_table(
        "flag_environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("holdout_percent", sa.Float(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["flag_apps.id"],
            name=op.f("fk_flag_environments_app_id_flag_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_environments")),
        sa.UniqueConstraint("app_id", "key", name=op.f("uq_flag_environments_app_id")),
    )
    op.create_table(
        "flag_layers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("salt", sa.String(length=160), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["flag_apps.id"],
            name=op.f("fk_flag_layers_app_id_flag_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_layers")),
        sa.UniqueConstraint("app_id", "key", name=op.f("uq_flag_layers_app_id")),
    )
    op.create_table(
        "flag_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("updated_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["flag_apps.id"],
            name=op.f("fk_flag_segments_app_id_flag_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_segments")),
        sa.UniqueConstraint("app_id", "key", name=op.f("uq_flag_segments_app_id")),
    )
    op.create_table(
        "flag_exposures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("flag_key", sa.String(length=128), nullable=False),
        sa.Column("targeting_key", sa.String(length=256), nullable=False),
        sa.Column("variant", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_exposures_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_exposures")),
        sa.UniqueConstraint(
            "environment_id",
            "flag_key",
            "targeting_key",
            name=op.f("uq_flag_exposures_environment_id"),
        ),
    )
    op.create_table(
        "flag_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("targeting_key", sa.String(length=256), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_feedback_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_feedback")),
    )
    with op.batch_alter_table("flag_feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_flag_feedback_metric", ["environment_id", "metric", "targeting_key"], unique=False
        )

    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_team_id", sa.Integer(), nullable=False),
        sa.Column("json_schema", sa.JSON(), nullable=True),
        sa.Column("salt", sa.String(length=160), nullable=False),
        sa.Column("stale_after_days", sa.Integer(), nullable=False),
        sa.Column("layer_id", sa.Integer(), nullable=True),
        sa.Column("layer_start", sa.Integer(), nullable=True),
        sa.Column("layer_end", sa.Integer(), nullable=True),
        sa.Column("archived_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["flag_apps.id"], name=op.f("fk_flags_app_id_flag_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["layer_id"], ["flag_layers.id"], name=op.f("fk_flags_layer_id_flag_layers")
        ),
        sa.ForeignKeyConstraint(
            ["owner_team_id"], ["teams.id"], name=op.f("fk_flags_owner_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
        sa.UniqueConstraint("app_id", "key", name=op.f("uq_flags_app_id")),
    )
    op.create_table(
        "flag_change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("base_number", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("strategy_name", sa.String(length=128), nullable=False),
        sa.Column("monitors", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_change_requests_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"],
            ["flags.id"],
            name=op.f("fk_flag_change_requests_flag_id_flags"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["users.id"],
            name=op.f("fk_flag_change_requests_requested_by_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_change_requests")),
    )
    op.create_table(
        "flag_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("from_number", sa.Integer(), nullable=False),
        sa.Column("to_number", sa.Integer(), nullable=False),
        sa.Column("strategy_name", sa.String(length=128), nullable=False),
        sa.Column("strategy", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("started_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_step_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("monitors", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_deployments_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"],
            ["flags.id"],
            name=op.f("fk_flag_deployments_flag_id_flags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_deployments")),
    )
    with op.batch_alter_table("flag_deployments", schema=None) as batch_op:
        batch_op.create_index("ix_flag_deployments_due", ["state", "next_step_at"], unique=False)

    op.create_table(
        "flag_experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("control_variant", sa.String(length=128), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decision_variant", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_experiments_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"],
            ["flags.id"],
            name=op.f("fk_flag_experiments_flag_id_flags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_experiments")),
    )
    op.create_table(
        "flag_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_versions_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"],
            ["flags.id"],
            name=op.f("fk_flag_versions_flag_id_flags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_versions")),
        sa.UniqueConstraint(
            "flag_id", "environment_id", "number", name=op.f("uq_flag_versions_flag_id")
        ),
    )
    op.create_table(
        "flag_deployment_steps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("at", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["flag_deployments.id"],
            name=op.f("fk_flag_deployment_steps_deployment_id_flag_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_deployment_steps")),
    )
    with op.batch_alter_table("flag_deployment_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flag_deployment_steps_deployment_id"), ["deployment_id"], unique=False
        )

    op.create_table(
        "flag_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("live_number", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("served_since", mechanisms.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["flag_deployments.id"],
            name=op.f("fk_flag_states_deployment_id_flag_deployments"),
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["flag_environments.id"],
            name=op.f("fk_flag_states_environment_id_flag_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"], ["flags.id"], name=op.f("fk_flag_states_flag_id_flags"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_states")),
        sa.UniqueConstraint("flag_id", "environment_id", name=op.f("uq_flag_states_flag_id")),
    )


def downgrade() -> None:
    op.drop_table("flag_states")
    with op.batch_alter_table("flag_deployment_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flag_deployment_steps_deployment_id"))

    op.drop_table("flag_deployment_steps")
    op.drop_table("flag_versions")
    op.drop_table("flag_experiments")
    with op.batch_alter_table("flag_deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_flag_deployments_due")

    op.drop_table("flag_deployments")
    op.drop_table("flag_change_requests")
    op.drop_table("flags")
    with op.batch_alter_table("flag_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_flag_feedback_metric")

    op.drop_table("flag_feedback")
    op.drop_table("flag_exposures")
    op.drop_table("flag_segments")
    op.drop_table("flag_layers")
    op.drop_table("flag_environments")
    op.drop_table("flag_apps")
    op.drop_table("flag_strategies")
    op.drop_table("flag_alarm_states")
