"""The audit query: progress ticks an older store may hold are never audit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support import write_template

from opsconsole.core.audit import AuditRequest
from opsconsole.core.service import SubmitRequest
from opsconsole.core.store.audit import AuditFilter, audit_query
from opsconsole.core.store.jobs import add_event


def test_progress_ticks_are_not_in_the_audit(clocked, catalog):
    write_template(catalog, "echo", "runner: shell\ncommand: ['true']\n")
    job = clocked.submit(SubmitRequest(template="echo")).id
    with clocked.db.write() as conn:
        add_event(conn, job, "progress", clocked.now(), message="50%")
    assert [e.kind for e in clocked.recent_events(10)] == ["submitted", "progress"]
    assert [e.kind for e in clocked.audit(AuditRequest()).events] == ["submitted"]


@pytest.mark.parametrize(
    "audit_filter",
    [
        AuditFilter(actor="alice"),
        AuditFilter(kinds=("cancelled", "cancel_requested")),
        AuditFilter(since=datetime(2026, 1, 1, tzinfo=UTC)),
    ],
    ids=["actor", "action", "since"],
)
@pytest.mark.sqlite_only
def test_each_audit_filter_walks_an_index_not_the_table(clocked, audit_filter):
    """The audit trail only grows: a filter that scanned it would slow down every day."""
    query = audit_query(audit_filter, before=None, limit=50)
    sql = str(
        query.compile(dialect=clocked.db.engine.dialect, compile_kwargs={"literal_binds": True})
    )
    with clocked.db.engine.connect() as conn:
        plan = " ".join(r[-1] for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "INDEX ix_job_events_" in plan, plan
