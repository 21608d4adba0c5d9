"""The console's bulk keys (``C``/``R`` on a filtered pane) and its audit view (``A``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import failed_job
from textual.pilot import Pilot
from textual.widgets import DataTable, Input
from tui_support import drive, notes, row_ids, until

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.audit import AuditScreen
from opsconsole.tui.screens.dialogs import ConfirmScreen, PromptScreen
from opsconsole.tui.widgets.job_table import JobTable

S = JobState


async def filter_pane(pilot: Pilot[None], text: str) -> None:
    await pilot.press("slash")
    ask = await until(
        pilot, lambda: pilot.app.screen if isinstance(pilot.app.screen, PromptScreen) else None
    )
    ask.query_one(Input).value = text
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(pilot.app.screen, PromptScreen))


def test_cancel_shown_acts_on_exactly_the_filtered_rows(clocked: OpsService, put: Any) -> None:
    put("d1", template="deploy", age=30)
    put("e1", age=20)
    put("d2", template="deploy", age=10)
    put("d3", S.FAILED, template="deploy")  # in history: another pane's row
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = app.query_one("#queue", JobTable)
        queue.focus()
        await pilot.press("C")  # no filter: it says how, and acts on nothing
        await pilot.pause()
        assert any("filters the pane first" in n for n in notes(app))
        assert not isinstance(app.screen, ConfirmScreen)
        await filter_pane(pilot, "deploy")
        assert row_ids(queue) == ["d1", "d2"]
        await pilot.press("C")
        confirm = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None
        )
        assert confirm.question == "Cancel the 2 jobs shown in queue (filter: deploy)?"
        await pilot.press("n")
        await pilot.pause()
        assert clocked.get("d1").state == S.QUEUED
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(
            pilot, lambda: any("cancelled 2 jobs" in n for n in notes(app)), what="the summary"
        )
        assert clocked.get("d1").state == S.CANCELLED
        assert clocked.get("d2").state == S.CANCELLED
        assert clocked.get("e1").state == S.QUEUED
        assert clocked.get("d3").state == S.FAILED

        await pilot.press("A")
        audit = await until(
            pilot, lambda: app.screen if isinstance(app.screen, AuditScreen) else None
        )
        table = audit.query_one("#view-table", DataTable)
        await until(pilot, lambda: table.row_count >= 2, what="audit rows")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        cancelled = sorted(r[3] for r in rows if r[2] == "cancelled")
        assert cancelled == ["d1", "d2"]
        assert rows[0][2] == "cancelled"  # newest first

    drive(app, script)


def test_retry_shown_skips_what_it_cannot_retry_and_says_so(
    clocked: OpsService, clock: SettableClock, templates: Path
) -> None:
    f1 = failed_job(clocked, clock, SubmitRequest("echo", {"word": "bulk"}))
    f2 = failed_job(clocked, clock, SubmitRequest("echo", {"word": "bulk"}))
    secret = SubmitRequest("deploy", {"env": "prod", "token": "s3cret"}, tags=("bulk",))
    d1 = failed_job(clocked, clock, secret)
    other = failed_job(clocked, clock, SubmitRequest("echo", {"word": "other"}))
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        history = app.query_one("#history", JobTable)
        history.focus()
        await filter_pane(pilot, "bulk")
        await until(pilot, lambda: sorted(row_ids(history)) == sorted([f1, f2, d1]))
        await pilot.press("R")
        confirm = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None
        )
        assert confirm.question == "Retry the 3 jobs shown in history (filter: bulk)?"
        await pilot.press("y")
        note = await until(
            pilot,
            lambda: next((n for n in notes(app) if n.startswith("retried 2 jobs")), None),
            what="the summary",
        )
        assert f"1 skipped: {d1} needs its secret parameters again" in note
        assert "s3cret" not in note
        assert clocked.get(f1).state == S.QUEUED
        assert clocked.get(f2).state == S.QUEUED
        assert clocked.get(d1).state == S.FAILED
        assert clocked.get(other).state == S.FAILED

    drive(app, script)
