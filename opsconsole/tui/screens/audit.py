"""The audit view (``A``, ``:audit``): who did what to which job, newest first, live.

The same read as ``opsconsole audit`` (``OpsService.audit``), refreshed on the feed's
ticks like the other views; it never writes.
"""

from __future__ import annotations

from rich.text import Text

from opsconsole.core.audit import AuditPage, AuditRequest
from opsconsole.core.text import STATE_STYLES, visible
from opsconsole.tui.screens.views import TableView

AUDIT_ROWS = 500


class AuditScreen(TableView):
    TITLE = "Audit: every action on every job, newest first (opsconsole audit)"
    COLUMNS = ("TIME", "BY", "ACTION", "JOB", "STATE", "MESSAGE")

    def reload(self) -> None:
        self.ops.call(
            "audit",
            lambda: self.ops.service.audit(AuditRequest(limit=AUDIT_ROWS)),
            self.show,
            group="view",
        )

    def show(self, page: AuditPage) -> None:
        self.table.clear()
        for e in page.events:
            self.table.add_row(
                Text(f"{e.ts:%Y-%m-%d %H:%M:%S}"),
                Text(visible(e.actor) or "-"),
                Text(e.kind),
                Text(visible(e.job_id)),
                Text(e.state or "", style=STATE_STYLES.get(e.state or "", "")),
                Text(visible(e.message)[:200]),
                key=str(e.id),
            )
