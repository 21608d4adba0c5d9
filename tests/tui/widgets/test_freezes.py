"""The console shows active freezes in its header and says why a frozen queued job waits."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui_support import cell_text, drive, row_ids, until

from opsconsole.core.freezes import FreezeRequest
from opsconsole.core.service import OpsService
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.status_bar import StatusBar


def _header(app: OpsConsole) -> str:
    return str(app.query_one(StatusBar).render())


def test_header_and_queue_follow_a_freeze_set_and_lifted_elsewhere(
    clocked: OpsService, put: Any
) -> None:
    put("qone", tags=",nightly,")
    put("qtwo")
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.resize_terminal(160, 40)
        queue = app.query_one("#queue", JobTable)
        assert "FROZEN" not in _header(app)
        assert cell_text(queue, "qone", "state") == "queued"
        # another operator freezes the tag: the feed's freeze event refreshes header and rows
        f = clocked.set_freeze(FreezeRequest(reason="db migration", tag="nightly"))
        await until(pilot, lambda: "FROZEN: tag nightly (db migration)" in _header(app), timeout=15)
        await until(pilot, lambda: cell_text(queue, "qone", "state") == "frozen", timeout=15)
        assert cell_text(queue, "qone", "when").startswith("db migr")  # the reason, cut to fit
        assert cell_text(queue, "qtwo", "state") == "queued"
        clocked.lift_freeze(f.id)
        await until(pilot, lambda: "FROZEN" not in _header(app), timeout=15)
        await until(pilot, lambda: cell_text(queue, "qone", "state") == "queued", timeout=15)

    drive(app, script)


def test_the_filter_knows_teams(clocked: OpsService, put: Any) -> None:
    put("tweb", team="web")
    put("tdb", team="db")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = app.query_one("#queue", JobTable)
        await until(pilot, lambda: queue.row_count == 2, timeout=15)
        queue.set_filter("web")
        await until(pilot, lambda: row_ids(queue) == ["tweb"], timeout=15)

    drive(app, script)
