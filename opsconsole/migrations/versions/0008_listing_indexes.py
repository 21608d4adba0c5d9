"""indexes that serve every listing and ``stats`` at a million jobs: History keyset-paged on
(finished_at, id), ``jobs list`` on (created_at, id) and by template, and the
per-template figures of ``stats`` (counts and recent runs within a finish-time window, run
time percentiles by walking an index ordered by run time; it holds the columns the run time
is computed from, so the walk never reads the table)

Revision ID: 0008
Revises: 0007

Why indexes and not pre-aggregated tables: every figure ``stats`` shows stays exact (the
p50/p95 run times are the k-th smallest run time, found by stepping k entries along
``ix_jobs_durations`` instead of sorting a template's runs), and nothing is added to the
transaction that finishes a job, which a rollup table maintained there would need.

Existing indexes keep their names and gain the columns that make their order total
(``id`` breaks ties), so the keyset pages of History and ``jobs list`` need no sort.
No (state, created_at) index for ``jobs list --state``: SQLite's planner, which has no
statistics, took it for the claim's statement over ``ix_jobs_claim`` (both start with the
state), a loss on the hot path; that listing sorts the one state's rows instead.

Nothing here rewrites a table: on a store with a million jobs the upgrade builds each index
in one pass (seconds).
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DURATION = {
    "sqlite": "(julianday(finished_at) - julianday(started_at)) * 86400.0",
    "postgresql": "extract(epoch from (finished_at - started_at))",
}
"""A run's seconds, written exactly as ``core/store/queries.py`` writes it (a planner uses an
expression index only for the same expression)."""

_WIDENED = (
    ("ix_jobs_history", ["finished_at"], ["finished_at", "id"]),
    ("ix_jobs_created", ["created_at"], ["created_at", "id"]),
    ("ix_jobs_template", ["template", "created_at"], ["template", "created_at", "id"]),
)
_NEW = (
    # History of one template; stats per template within a finish-time window (covering)
    ("ix_jobs_template_finished", ["template", "finished_at", "id", "state", "started_at"]),
    # stats without --since: a template's runs per final state, counted as index ranges
    ("ix_jobs_template_state", ["template", "state", "started_at"]),
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, _, columns in _WIDENED:
        op.drop_index(name, table_name="jobs")
        op.create_index(name, "jobs", columns, unique=False)
    for name, columns in _NEW:
        op.create_index(name, "jobs", columns, unique=False)
    op.execute(
        "CREATE INDEX ix_jobs_durations ON jobs "
        f"(template, ({DURATION[dialect]}), state, started_at, finished_at)"
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_durations", table_name="jobs")
    for name, _ in _NEW:
        op.drop_index(name, table_name="jobs")
    for name, columns, _ in _WIDENED:
        op.drop_index(name, table_name="jobs")
        op.create_index(name, "jobs", columns, unique=False)
