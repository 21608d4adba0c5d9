"""The checks view (``K``, ``:checks``): statuses coloured, since when, last output, the
sparklines of recent results and latencies; live from the feed; enter opens the last job.
Seeded check results (as a finished check job records them) on a stopped clock.

Update the snapshot with ``--snapshot-update`` only after looking at the differences.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_support import WIDE, drive, plain, until

from opsconsole.config import Settings, load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import jobs as job_store
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.checks import ChecksScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.widgets.sparkline import latency_sparkline, status_strip

S = JobState
OUTCOME = {"ok": S.SUCCEEDED, "warning": S.PARTIAL, "critical": S.FAILED, "unknown": S.FAILED}
HISTORY: dict[str, list[tuple[str, float | None, str]]] = {
    "web-health": [("ok", 40.0 + 7 * i, "GET https://shop.example/ -> 200") for i in range(9)]
    + [("warning", 950.0, "GET https://shop.example/ -> 200 in 950 ms (threshold 500 ms)")],
    "disk-root": [("ok", None, "/ is 71% used (12.0 GiB free)")] * 4
    + [("critical", None, "/ is 93.5% used (2.6 GiB free)")] * 3,
    "db-port": [("ok", 1.2, "db.internal:5432 accepts connections (1.2 ms)")] * 6,
}


PREFIX = {"web-health": "web", "disk-root": "dsk", "db-port": "dbp"}


def record(clocked: OpsService, clock: SettableClock, name: str, n: int, result: tuple) -> str:
    """A check job of template ``name`` that ran and ended with ``result``, as a worker does."""
    status, latency, summary = result
    job_id = f"{PREFIX[name]}{n:03d}"
    now = clock.now()
    spec = {"name": name, "runner": "python", "handler": "m:f", "check": True}
    row = {
        "id": job_id,
        "template": name,
        "state": S.RUNNING.value,
        "spec": spec,
        "attempts": 1,
        "run_at": now,
        "created_at": now,
        "updated_at": now,
        "started_at": now,
    }
    job_store.insert(clocked.db, row, (), actor="scheduler", now=now)
    values = {"result": {"status": status, "summary": summary, "latency_ms": latency}}
    job_store.finish(clocked.db, job_id, 1, OUTCOME[status], now, values=values)
    return job_id


def seed(clocked: OpsService, clock: SettableClock) -> dict[str, str]:
    """Each check's history, a minute apart; the last job id of each."""
    last = {}
    longest = max(len(h) for h in HISTORY.values())
    for i in range(longest):
        for name, history in HISTORY.items():
            offset = longest - len(history)
            if i >= offset:
                last[name] = record(clocked, clock, name, i, history[i - offset])
        clock.advance(60)
    clock.advance(90)
    return last


async def open_checks(pilot: Pilot[None], rows: int) -> ChecksScreen:
    app = pilot.app
    await pilot.press("K")
    view = await until(pilot, lambda: app.screen if isinstance(app.screen, ChecksScreen) else None)
    await until(pilot, lambda: bool(view.query("#check-detail")), what="the view composed")
    table = view.query_one("#view-table", DataTable)
    await until(pilot, lambda: table.row_count == rows and view.views, what=f"{rows} check rows")
    return view


def test_the_view_lists_checks_coloured_and_details_the_selected_one(
    clocked: OpsService, clock: SettableClock
) -> None:
    last = seed(clocked, clock)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_checks(pilot, 3)
        table = view.query_one("#view-table", DataTable)
        assert [str(r.key.value) for r in table.ordered_rows] == [
            "db-port",
            "disk-root",
            "web-health",
        ]
        status = table.get_cell("disk-root", table.ordered_columns[1].key)
        assert (status.plain, str(status.style)) == ("CRITICAL", "bold red")
        since = table.get_cell("disk-root", table.ordered_columns[2].key)
        assert since.plain == "4m ago"  # it went critical three results ago
        strip = table.get_cell("disk-root", table.ordered_columns[4].key)
        assert strip.plain == "▪▪▪▪✖✖✖"
        detail = view.query_one("#check-detail", Static)
        await until(pilot, lambda: "db-port" in plain(detail.content))
        table.focus()
        await pilot.press("down", "down")
        await until(pilot, lambda: "web-health" in plain(detail.content), what="web shown")
        text = plain(detail.content)
        assert "WARNING since 2m ago" in text, text
        assert "(threshold 500 ms)" in text
        assert latency_sparkline([40.0 + 7 * i for i in range(9)] + [950.0], 40).plain in text
        await pilot.press("enter")
        job = await until(pilot, lambda: app.screen if isinstance(app.screen, JobScreen) else None)
        assert job.job_id == last["web-health"]

    drive(app, script)


def test_the_view_follows_the_feed_and_goto_checks_opens_it(
    clocked: OpsService, clock: SettableClock
) -> None:
    seed(clocked, clock)
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("colon")
        await pilot.press(*"checks", "enter")
        view = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ChecksScreen) else None
        )
        table = view.query_one("#view-table", DataTable)
        await until(pilot, lambda: table.row_count == 3, what="three checks")
        record(clocked, clock, "db-port", 99, ("critical", None, "db.internal:5432: refused"))
        await until(
            pilot,
            lambda: table.get_cell("db-port", table.ordered_columns[1].key).plain == "CRITICAL",
            timeout=10,
            what="the new result shown",
        )

    drive(app, script)


def test_an_empty_store_says_how_a_check_appears(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def open_empty(pilot: Pilot[None]) -> None:
        await pilot.press("K")
        view = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ChecksScreen) else None
        )
        table = await until(pilot, lambda: view.query("#view-table") and view.table)
        await until(pilot, lambda: table.row_count == 1, what="the placeholder")
        first = table.get_row_at(0)[0]
        assert first.plain == "no check yet (a check appears when its first job ends)"

    drive(app, open_empty)


def test_sparklines() -> None:
    assert latency_sparkline([0.0, 50.0, 100.0, None]).plain == "▁▅█ "
    assert latency_sparkline([None, None]).plain == "  "
    assert latency_sparkline([1.2, 1.2]).plain == "██"
    assert latency_sparkline([10.0, 20.0]).plain == "▅█"  # from zero: in proportion
    assert status_strip(["ok", "warning", "critical", "unknown"]).plain == "▪▲✖?"
    assert status_strip(["ok"] * 30, width=5).plain == "▪" * 5


@pytest.fixture
def snap_settings(home: Path, migrated_db: Path) -> Settings:
    """The store in the working directory (the header shows its path), as the other
    snapshots have it."""
    shutil.copyfile(migrated_db, Path.cwd() / "opsconsole.db")
    (Path.cwd() / "catalog" / "templates").mkdir(parents=True)
    return load_settings(home=home, catalog=Path("catalog"), db="sqlite:///opsconsole.db")


def test_checks_view_snapshot(
    snap_settings: Settings, clock: SettableClock, snap_compare: Any
) -> None:
    """K: three checks (ok, critical, warning), the last one selected with its results."""
    from opsconsole.core.store.db import Database

    db = Database(snap_settings.db)
    clocked = OpsService(snap_settings, db, clock=clock)
    seed(clocked, clock)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready, what="the first load")
        view = await open_checks(pilot, 3)
        table = view.query_one("#view-table", DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("web-health"))
        detail = view.query_one("#check-detail", Static)
        await until(pilot, lambda: "web-health" in plain(detail.content), what="web shown")
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
    finally:
        db.dispose()
