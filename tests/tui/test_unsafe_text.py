"""The console shows unsafe characters (controls, bidirectional overrides, invisible format
characters) escaped, as the CLI does: in the log pane, the job tables, the job screen and
the views. Escape sequences in job output are stripped, as before."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_support import drive, log_screen, plain, until

from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.text import UNSAFE_MULTILINE
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.views import EventsScreen, LocksScreen
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView

S = JobState
RLO = "\u202e"
CSI = "\x9b"
LOADED = 20.0
"""Seconds a load may take on a loaded machine (a bound, not an expectation)."""


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def clean(texts: list[str]) -> bool:
    return all(UNSAFE_MULTILINE.search(t) is None for t in texts)


def test_a_log_line_and_a_job_message_render_escaped(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    put(
        "evil",
        S.RUNNING,
        params={"word": f"w{RLO}x"},
        progress=40,
        step=f"st{RLO}ep",
        concurrency_key=f"deploy-{RLO}prod",
        concurrency_limit=1,
    )
    add_logs("evil", [f"attached: invoice_{RLO}gnp.exe", f"\x1b[31mred\x1b[0m lone{CSI}\x07"])
    put("broke", S.FAILED, error={"message": f"disk {CSI}2J full\nsecond line", "kind": "X"})
    put("q1")
    clocked.cancel("q1", reason=f"bad {RLO}reason\u2028forged line")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = app.query_one(LogView)
        await until(pilot, lambda: view.job_id == "evil" and len(view.lines) == 2, LOADED)
        await pilot.pause()
        shown = [row for row in log_screen(view) if row]
        # the sequences of job output are stripped; what is left is shown escaped
        assert shown == ["attached: invoice_\\u202egnp.exe", "red lone\\x9b\\x07"]

        running = app.query_one("#running", JobTable)
        cells = [str(getattr(c, "plain", c)) for c in running.get_row("evil")]
        assert clean(cells)
        assert "word=w\\u202ex" in cells[2] and "st\\u202eep" in cells[5]

        await app.push_screen(JobScreen("broke"))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        await until(pilot, lambda: screen.job_view is not None, LOADED, "the job loaded")
        await pilot.pause()
        fields = plain(screen.query_one("#job-fields", Static).content)
        assert CSI not in fields
        assert "disk \\x9b2J full" in fields and "second line" in fields
        app.pop_screen()

        await app.push_screen(JobScreen("q1"))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        events = screen.query_one("#job-events", DataTable)
        await until(pilot, lambda: events.row_count == 2, LOADED, "the job's two events")
        messages = [row[-1] for row in rows(events)]
        assert clean(messages)
        assert "bad \\u202ereason\\u2028forged line" in messages
        app.pop_screen()

        await pilot.press("E")
        stream = await until(
            pilot, lambda: app.screen if isinstance(app.screen, EventsScreen) else None, LOADED
        )
        table = stream.query_one("#events-table", DataTable)
        await until(pilot, lambda: table.row_count >= 4, LOADED, "the events")
        assert clean([cell for row in rows(table) for cell in row])
        assert any("bad \\u202ereason" in row[-1] for row in rows(table))
        await pilot.press("escape")

        await pilot.press("L")
        locks = await until(
            pilot, lambda: app.screen if isinstance(app.screen, LocksScreen) else None, LOADED
        )
        await until(pilot, lambda: locks.table.row_count == 1, LOADED, "the lock")
        assert rows(locks.table)[0][0] == "deploy-\\u202eprod"

    drive(app, script)
