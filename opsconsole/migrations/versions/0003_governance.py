"""governance: approvals, reviews, freezes, the gate's job columns, an append-only audit trail

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = "the audit trail is append-only"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER job_events_no_update BEFORE UPDATE ON job_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
    f"""CREATE TRIGGER job_events_no_delete BEFORE DELETE ON job_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
]

_PG_FUNCTION = f"""CREATE OR REPLACE FUNCTION opsconsole_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END; $$ LANGUAGE plpgsql"""
_PG_TRIGGER = """CREATE TRIGGER job_events_append_only BEFORE UPDATE OR DELETE ON job_events
FOR EACH ROW EXECUTE FUNCTION opsconsole_append_only()"""


def _ts(name: str, nullable: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("gate_round", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(_ts("approval_expires_at", nullable=True))
        batch_op.add_column(sa.Column("approved_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("break_glass", sa.Boolean(), nullable=False, server_default="0")
        )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        _ts("at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approvals_job", "approvals", ["job_id", "round"])
    op.create_index(
        "uq_approvals_approver",
        "approvals",
        ["job_id", "round", "actor"],
        unique=True,
        sqlite_where=sa.text("decision = 'approve'"),
        postgresql_where=sa.text("decision = 'approve'"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=16), nullable=False),
        sa.Column("broken_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("acked_by", sa.String(length=128), nullable=True),
        _ts("acked_at", nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reviews_job_id", "reviews", ["job_id"])
    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _ts("created_at"),
        _ts("until", nullable=True),
        sa.Column("lifted_by", sa.String(length=128), nullable=True),
        _ts("lifted_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_freezes_active", "freezes", ["lifted_at"])
    # the audit trail's filters (actor, action, since) each walk an index, newest first
    op.create_index("ix_job_events_actor", "job_events", ["actor", "id"])
    op.create_index("ix_job_events_kind", "job_events", ["kind", "id"])
    op.create_index("ix_job_events_ts", "job_events", ["ts"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS job_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS job_events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS job_events_append_only ON job_events")
        op.execute("DROP FUNCTION IF EXISTS opsconsole_append_only()")
    op.drop_index("ix_freezes_active", table_name="freezes")
    op.drop_table("freezes")
    for index in ("ix_job_events_ts", "ix_job_events_kind", "ix_job_events_actor"):
        op.drop_index(index, table_name="job_events")
    op.drop_index("ix_reviews_job_id", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("uq_approvals_approver", table_name="approvals")
    op.drop_index("ix_approvals_job", table_name="approvals")
    op.drop_table("approvals")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("break_glass")
        batch_op.drop_column("approved_digest")
        batch_op.drop_column("approval_expires_at")
        batch_op.drop_column("gate_round")
        batch_op.drop_column("team")
