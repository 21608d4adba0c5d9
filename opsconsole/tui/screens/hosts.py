"""The hosts view of one Ansible job: its ``HostsGrid``, kept live while the job runs.

The grid is read again off the UI thread (``OpsConsole.call``, one read in flight at a
time) whenever the feed says the job changed: the feed reports every running job once a
second and every job whose events move, so the rate is bounded by the feed's, and nothing
here polls on a timer of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from opsconsole.core.hosts import HostGrid
from opsconsole.tui.widgets.hosts_grid import HostsGrid

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsole


class HostsScreen(Screen[None]):
    AUTO_FOCUS = "#hosts-table"
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("l", "log", "Log"),
        Binding("home", "first", "First host", show=False),
    ]

    def __init__(self, job_id: str, attempt: int | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.attempt = attempt
        self.loads = 0
        """Grids read so far (the tests wait on it)."""

    @property
    def ops(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    @property
    def grid(self) -> HostsGrid:
        return self.query_one(HostsGrid)

    def compose(self) -> ComposeResult:
        yield HostsGrid(id="hosts")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.ops.call(
            "hosts",
            lambda: self.ops.service.host_grid(self.job_id, self.attempt),
            self.show,
            group="hosts-grid",
        )

    def show(self, grid: HostGrid) -> None:
        if not self.is_attached:  # closed while the read was on its way
            return
        self.loads += 1
        self.grid.show(grid)

    def on_jobs_changed(self, job_ids: set[str]) -> None:
        """The feed saw this job move: read its grid again."""
        if self.job_id in job_ids:
            self.reload()

    def action_log(self) -> None:
        self.app.pop_screen()
        self.ops.show_log(self.job_id)

    def action_first(self) -> None:
        self.grid.table.move_cursor(row=0, column=2)
