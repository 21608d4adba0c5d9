"""The queue, running and history panes: order, columns, live updates, keyset paging."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_support import cell_text, drive, row_ids, until

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.tui import history as history_pages
from opsconsole.tui.app import HISTORY_PAGE, OpsConsole
from opsconsole.tui.messages import CountsChanged, JobsChanged
from opsconsole.tui.widgets import job_table
from opsconsole.tui.widgets.job_table import JobTable

S = JobState


def test_queue_is_in_claim_order_with_when_column(
    clocked: OpsService, clock: SettableClock, put: Any
) -> None:
    put("qlow", priority=1, age=300)
    put("qmid1", priority=5, age=200)
    put("qmid2", priority=5, age=100)
    put("qhigh", priority=10, age=10)
    put("qsched", S.SCHEDULED, age=50, run_at=clock.now() + timedelta(minutes=4))
    put("qwait", S.WAITING, age=40, after=("qmid1",))
    put("qappr", S.AWAITING_APPROVAL, age=30)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = app.query_one("#queue", JobTable)
        order = ["qhigh", "qmid1", "qmid2", "qsched", "qwait", "qappr", "qlow"]
        assert row_ids(queue) == order
        assert cell_text(queue, "qsched", "when") == "in 4m"
        assert cell_text(queue, "qwait", "when") == "after qmid1"
        assert cell_text(queue, "qappr", "when") == "0/1 approvals"  # what it waits for
        assert cell_text(queue, "qmid1", "when") == "queued 3m ago"
        assert cell_text(queue, "qhigh", "pri") == "10"
        assert queue.get_cell("qwait", "state").style == "yellow"

        # relative times move with the clock on the feed's next counts message
        clock.advance(150)
        app.post_message(CountsChanged(clocked.counts(), []))
        await until(pilot, lambda: cell_text(queue, "qsched", "when") == "in 1m")
        assert cell_text(queue, "qmid1", "when") == "queued 5m ago"

    drive(app, script)

    # the store claims the ready rows in the order the pane shows them (qsched is not due)
    claimed = []
    while (row := claim_store.claim(clocked.db, "w", clock.now(), 30)) is not None:
        claimed.append(row["id"])
    assert claimed == ["qhigh", "qmid1", "qmid2", "qlow"]


def test_running_shows_progress_and_follows_it(
    clocked: OpsService, clock: SettableClock, put: Any
) -> None:
    put("run1", S.RUNNING, age=90)
    put("run2", S.RUNNING, age=30, template="deploy", params={"env": "prod"})
    assert job_store.update_progress(
        clocked.db, "run1", 1, clock.now(), progress=40, step="Querying data"
    )
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        running = app.query_one("#running", JobTable)
        assert row_ids(running) == ["run1", "run2"]  # oldest first
        assert cell_text(running, "run1", "progress") == "████░░░░░░  40% Querying data"
        assert cell_text(running, "run2", "progress") == "░░░░░░░░░░   0%"
        assert cell_text(running, "run1", "elapsed") == "1m30s"
        assert cell_text(running, "run1", "worker") == "host-a:w1"
        assert cell_text(running, "run2", "params") == "env=prod"
        bar = running.get_cell("run1", "progress")
        styles = {bar.plain[span.start : span.end]: str(span.style) for span in bar.spans}
        assert (bar.style, styles) == ("", {"████": "green", "░░░░░░": "dim"})

        # another writer moves the job on: the feed updates the row in place
        assert job_store.update_progress(
            clocked.db, "run1", 1, clock.now(), progress=70, step="Uploading"
        )
        await until(
            pilot,
            lambda: cell_text(running, "run1", "progress") == "███████░░░  70% Uploading",
            what="the feed updated the progress",
        )
        assert row_ids(running) == ["run1", "run2"]

    drive(app, script)


def test_running_keeps_the_claim_order_of_jobs_one_claim_started(
    clocked: OpsService, clock: SettableClock, put: Any
) -> None:
    """A batch claim starts its jobs at one instant: the pane shows them in the order they
    were claimed (priority, then age), whatever their ids, as the store lists them."""
    started = clock.now()
    put("aa-young", S.RUNNING, age=10, started_at=started)
    put("mm-old", S.RUNNING, age=60, started_at=started)
    put("zz-urgent", S.RUNNING, age=5, priority=10, started_at=started)
    put("zz-earlier", S.RUNNING, age=5, started_at=started - timedelta(seconds=1))
    order = ["zz-earlier", "zz-urgent", "mm-old", "aa-young"]
    assert [v.id for v in clocked.running()] == order
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        running = app.query_one("#running", JobTable)
        assert row_ids(running) == order
        app.post_message(JobsChanged(list(reversed(clocked.running()))))
        await pilot.pause()
        assert row_ids(running) == order  # a live update sorts the same way

    drive(app, script)


def test_history_is_newest_first_with_state_colours(
    clocked: OpsService, put: Any, end: Any
) -> None:
    put("hok", S.SUCCEEDED, ended=30, took=1.5)
    put("hfail", S.FAILED, ended=10, took=75, exit_code=2)
    put("hcancel", S.CANCELLED, ended=20, exit_code=None)
    put("htime", S.TIMED_OUT, ended=3700, took=4000, exit_code=None)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        history = app.query_one("#history", JobTable)
        assert row_ids(history) == ["hfail", "hcancel", "hok", "htime"]
        styles = {j: history.get_cell(j, "state").style for j in row_ids(history)}
        assert styles == {"hfail": "bold red", "hcancel": "dim", "hok": "green", "htime": "red"}
        assert [cell_text(history, j, "duration") for j in row_ids(history)] == [
            "1m15s",
            "1.5s",
            "1.5s",
            "1h06m",
        ]
        assert cell_text(history, "hcancel", "duration") == "1.5s"
        assert [cell_text(history, j, "exit") for j in row_ids(history)] == ["2", "", "0", ""]
        assert cell_text(history, "hfail", "finished") == "10s ago"
        assert cell_text(history, "htime", "finished") == "1h01m ago"

    drive(app, script)


def test_history_loads_older_pages_at_the_bottom(
    clocked: OpsService, clock: SettableClock, put: Any
) -> None:
    total = HISTORY_PAGE + 50
    for i in range(total):
        put(f"h{i:04d}", S.SUCCEEDED, ended=i)  # h0000 is the newest
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        history = app.query_one("#history", JobTable)
        assert history.row_count == HISTORY_PAGE
        history.focus()
        await pilot.press("ctrl+end")
        await until(pilot, lambda: history.row_count == total, what="the second page")
        assert row_ids(history) == [f"h{i:04d}" for i in range(total)]
        # the last page was short: no more requests, and the cursor stayed where it was
        await pilot.press("up", "ctrl+end")
        await pilot.pause()
        assert history.row_count == total
        assert history.selected_id == f"h{total - 1:04d}"

    drive(app, script)


def test_history_is_a_window_that_follows_the_cursor_to_both_ends(
    clocked: OpsService, clock: SettableClock, put: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history longer than the window: End shows the oldest job, Home the newest, and
    paging down past the window cuts its top (fetched again on the way up), never a gap."""
    monkeypatch.setattr(job_table, "HISTORY_MAX", 400)
    page = history_pages.HISTORY_PAGE
    total = 2 * page + 150
    for i in range(total):
        put(f"h{i:04d}", S.SUCCEEDED, ended=i)  # h0000 is the newest
    every = [f"h{i:04d}" for i in range(total)]
    app = OpsConsole(clocked, embed=False, start_feed=False)

    def contiguous(table: JobTable) -> bool:
        ids = row_ids(table)
        first = every.index(ids[0])
        return ids == every[first : first + len(ids)]

    async def script(pilot: Pilot[None]) -> None:
        history = app.query_one("#history", JobTable)
        assert history.row_count == page
        assert history.more_below and not history.more_above
        history.focus()
        await pilot.press("end")
        await until(pilot, lambda: history.selected_id == every[-1], what="the oldest job")
        assert history.row_count == page  # the oldest page only, not all between
        assert history.more_above and not history.more_below
        assert contiguous(history)
        # a job finishing now belongs above this window: it waits for Home
        put("fresh", S.SUCCEEDED, ended=0)
        every.insert(0, "fresh")
        app.post_message(JobsChanged(clocked.jobs_by_id(["fresh"])))
        await pilot.pause()
        assert "fresh" not in history.views
        await pilot.press("home")
        await until(pilot, lambda: history.selected_id == "fresh", what="the newest job")
        assert not history.more_above and history.more_below
        # page down through the whole history: the window moves, never more than its size
        for _ in range(60):
            await pilot.press("pagedown")
            assert history.row_count <= job_table.HISTORY_MAX
            if history.selected_id == every[-1]:
                break
            await pilot.pause()
        await until(pilot, lambda: history.selected_id == every[-1], what="the bottom by pages")
        assert history.more_above and contiguous(history)
        assert every[0] not in history.views  # the top was cut on the way down
        # and back up by pages: the rows above come back
        for _ in range(60):
            await pilot.press("pageup")
            if history.selected_id == "fresh":
                break
            await pilot.pause()
        await until(pilot, lambda: history.selected_id == "fresh", what="the top by pages")
        assert not history.more_above and contiguous(history)

    drive(app, script)


def test_column_widths_do_not_move_as_jobs_come_and_progress(
    clocked: OpsService, clock: SettableClock, put: Any
) -> None:
    put("run1", S.RUNNING, age=5)
    put("q1", age=5)
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        tables = list(app.query(JobTable))

        def widths() -> list[list[int]]:
            return [[c.get_render_width(t) for c in t.columns.values()] for t in tables]

        before = widths()
        # a long step, a long template name and long parameters arrive
        long = "a-template-with-a-name-far-longer-than-its-column"
        put("q2", template=long, age=1, params={"word": "x" * 80})
        assert job_store.update_progress(
            clocked.db, "run1", 1, clock.now(), progress=55, step="Copying " + "y" * 60
        )
        queue, running = app.query_one("#queue", JobTable), app.query_one("#running", JobTable)
        await until(pilot, lambda: "q2" in queue.views, what="the new job")
        await until(pilot, lambda: "55%" in cell_text(running, "run1", "progress"))
        await pilot.pause()
        assert widths() == before
        assert cell_text(queue, "q2", "template").endswith("…")  # cut, not widened

    drive(app, script)
