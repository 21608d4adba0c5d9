"""The job detail screen: what it shows of a running job, kept current by the feed."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_support import drive, plain, until

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import jobs as job_store
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.job import JobScreen

S = JobState


def test_an_open_job_follows_its_progress_without_progress_events(
    clocked: OpsService, clock: SettableClock, put: Any
) -> None:
    """Progress is on the row, not in the change feed: the feed's refresh of running rows
    brings it to an open detail screen, and the screen's audit trail has no ticks."""
    put("run1", S.RUNNING, age=30)
    assert job_store.update_progress(
        clocked.db, "run1", 1, clock.now(), progress=40, step="Querying data"
    )
    app = OpsConsole(clocked, embed=False)

    def fields(screen: JobScreen) -> str:
        return plain(screen.query_one("#job-fields", Static).content)

    async def script(pilot: Pilot[None]) -> None:
        screen = JobScreen("run1")
        app.push_screen(screen)
        await until(pilot, lambda: screen.job_view is not None, what="the job loaded")
        assert "progress    40% Querying data" in fields(screen)

        assert job_store.update_progress(
            clocked.db, "run1", 1, clock.now(), progress=70, step="Uploading"
        )
        await until(
            pilot,
            lambda: "progress    70% Uploading" in fields(screen),
            timeout=15,
            what="the feed brought the new progress",
        )
        events = screen.query_one("#job-events", DataTable)
        assert [str(events.get_row_at(i)[1]) for i in range(events.row_count)] == ["submitted"]

    drive(app, script)
