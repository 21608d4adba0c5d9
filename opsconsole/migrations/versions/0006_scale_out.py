"""scale-out on PostgreSQL: host identity of workers, limit-1 keys enforced by the database,
saved plans kept in the store

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Two claims of a limit-1 key that overlap can each count zero holders on PostgreSQL (each
# reads its own snapshot): the database itself refuses the second ``running`` row.
_RUNNING_KEY_WHERE = "state = 'running' AND concurrency_limit = 1 AND concurrency_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_id", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_workers_host_id", ["host_id", "state"], unique=False)
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ux_jobs_running_key",
        "jobs",
        ["concurrency_key"],
        unique=True,
        sqlite_where=sa.text(_RUNNING_KEY_WHERE),
        postgresql_where=sa.text(_RUNNING_KEY_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ux_jobs_running_key", table_name="jobs")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("content")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index("ix_workers_host_id")
        batch_op.drop_column("host_id")
