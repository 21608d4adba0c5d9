"""schedules and their ledger, checks, webhook state

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


APPEND_ONLY = "the audit trail is append-only"
# PostgreSQL: the refusal is an integrity error (SQLSTATE 23001), as SQLite's RAISE(ABORT)
# is, not a bare RAISE (P0001) that the store would report as the store being unavailable
_PG_FUNCTION = f"""CREATE OR REPLACE FUNCTION opsconsole_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'restrict_violation'; END;
$$ LANGUAGE plpgsql"""
_PG_FUNCTION_0003 = f"""CREATE OR REPLACE FUNCTION opsconsole_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END; $$ LANGUAGE plpgsql"""


def _ts(name: str, nullable: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schedule", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_jobs_schedule", ["schedule", "created_at"], unique=False)
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("secret_blob", sa.Text(), nullable=True),
        sa.Column("cron", sa.String(length=128), nullable=True),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("every_s", sa.Float(), nullable=True),
        sa.Column("jitter_s", sa.Float(), nullable=False),
        sa.Column("catchup", sa.String(length=8), nullable=False),
        sa.Column("overlap", sa.String(length=8), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        _ts("next_fire_at", nullable=True),
        _ts("last_fire_at", nullable=True),
        sa.Column("last_job", sa.String(length=16), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_schedules_due", "schedules", ["paused", "next_fire_at"])
    op.create_table(
        "schedule_fires",
        sa.Column("schedule", sa.String(length=64), nullable=False),
        _ts("fire_at"),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("job_id", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("schedule", "fire_at"),
    )
    op.create_table(
        "checks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        _ts("since"),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("last_job", sa.String(length=16), nullable=True),
        _ts("last_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=16), nullable=True),
        _ts("at"),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_check_results_check", "check_results", ["check", "id"])
    op.create_table(
        "webhooks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _ts("disabled_at", nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _ts("last_delivery_at", nullable=True),
        sa.Column("last_status", sa.Text(), nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION_0003)
    op.drop_table("webhooks")
    op.drop_index("ix_check_results_check", table_name="check_results")
    op.drop_table("check_results")
    op.drop_table("checks")
    op.drop_table("schedule_fires")
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_schedule")
        batch_op.drop_column("schedule")
