"""The checks view (``K``, ``:checks``): every recurring check's status, since when, its
last output, and sparklines of its recent results and latencies.

The same read as ``opsconsole checks list`` (``OpsService.checks``), refreshed on the feed's
ticks like the other views (a check's job ending writes events). The selected check's
recent results are shown from the rows already read; ``enter`` opens its last job.
"""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.widgets import DataTable, Static

from opsconsole.core.checks import CheckView
from opsconsole.core.text import CHECK_STYLES, ago, visible
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.views import TableView
from opsconsole.tui.widgets.sparkline import latency_sparkline, status_strip, status_text

RECENT_SHOWN = 10
"""Results listed under the table for the selected check, newest first."""


def _latency(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:g} ms"


def check_detail(view: CheckView, now: datetime) -> Table:
    """The selected check: its status and output, then its last results, newest first."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Check", Text(visible(view.name), style="bold"))
    grid.add_row("Template", Text(visible(view.template)))
    since = Text.assemble(status_text(view.status), f" since {ago(view.since, now)}")
    grid.add_row("Status", since)
    grid.add_row("Output", Text(visible(view.output) or "-"))
    grid.add_row("Latency", latency_sparkline([r.latency_ms for r in view.recent], width=40))
    for i, r in enumerate(reversed(view.recent[-RECENT_SHOWN:])):
        line = Text(f"{r.at:%H:%M:%S}  ")
        line.append(f"{r.status:<8}", style=CHECK_STYLES.get(r.status, ""))
        line.append(f" {_latency(r.latency_ms):>10}  {r.job_id or '-'}  ")
        line.append(visible(r.output))
        grid.add_row("Results" if i == 0 else "", line)
    return grid


class ChecksScreen(TableView):
    """Every check, live; the selected one's recent results below."""

    TITLE = "Checks: recurring checks and their recent results (enter: the last job)"
    COLUMNS = ("CHECK", "STATUS", "SINCE", "LAST RUN", "RECENT", "LATENCY", "OUTPUT")
    DETAIL = "check"
    BINDINGS = [*TableView.BINDINGS, Binding("enter", "last_job", "Last job")]

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, CheckView] = {}

    def reload(self) -> None:
        self.ops.call("checks", self.ops.service.checks, self.show, group="view")

    def show(self, views: list[CheckView]) -> None:
        now = self.ops.service.now()
        selected = self.selected
        self.views = {v.name: v for v in views}
        self.table.clear()
        for v in views:
            latency = latency_sparkline([r.latency_ms for r in v.recent])
            latency.append(f" {_latency(v.latency_ms)}", style="")
            self.table.add_row(
                Text(visible(v.name), style="bold"),
                status_text(v.status),
                Text(ago(v.since, now)),
                Text(f"{ago(v.last_at, now)} ({v.last_job or '-'})"),
                status_strip([r.status for r in v.recent]),
                latency,
                Text(visible(v.output)),
                key=v.name,
            )
        if not views:
            placeholder = "no check yet (a check appears when its first job ends)"
            self.table.add_row(Text(placeholder, style="dim"), *[""] * 6)
        elif selected in self.views:
            self.table.move_cursor(row=self.table.get_row_index(selected))
        self.describe()

    @property
    def selected(self) -> str | None:
        """The name of the check on the cursor row (None on the empty placeholder)."""
        if not self.table.row_count:
            return None
        key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    @on(DataTable.RowHighlighted, "#view-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.describe()

    @on(DataTable.RowSelected, "#view-table")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        self.action_last_job()

    def describe(self) -> None:
        """Show the selected check's detail (from the rows already read: no I/O)."""
        view = self.views.get(self.selected or "")
        pane = self.query_one("#check-detail", Static)
        if view is None:
            pane.update(Text("no check selected", style="dim"))
        else:
            pane.update(check_detail(view, self.ops.service.now()))

    def action_last_job(self) -> None:
        view = self.views.get(self.selected or "")
        if view is None or view.last_job is None:
            self.notify("no check selected", severity="warning", markup=False)
            return
        self.app.push_screen(JobScreen(view.last_job))
