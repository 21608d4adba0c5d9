"""The audit query: progress ticks an older store may hold are never audit."""

from __future__ import annotations

from support import write_template

from opsconsole.core.audit import AuditRequest
from opsconsole.core.service import SubmitRequest
from opsconsole.core.store.jobs import add_event


def test_progress_ticks_are_not_in_the_audit(clocked, catalog):
    write_template(catalog, "echo", "runner: shell\ncommand: ['true']\n")
    job = clocked.submit(SubmitRequest(template="echo")).id
    with clocked.db.write() as conn:
        add_event(conn, job, "progress", clocked.now(), message="50%")
    assert [e.kind for e in clocked.recent_events(10)] == ["submitted", "progress"]
    assert [e.kind for e in clocked.audit(AuditRequest()).events] == ["submitted"]
