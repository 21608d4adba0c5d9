"""What the main screen looks like, narrow and wide, on seeded jobs and a stopped clock:
one selected row, the catalog banner, a terminal resized to 80x24.

Update with ``pytest tests/tui/test_snapshots.py --snapshot-update`` only after looking at
the differences (the HTML report pytest-textual-snapshot writes on failure).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Footer
from tui_support import NARROW, WIDE, until

from opsconsole.config import Settings, load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import jobs as job_store
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView

S = JobState
LOG = [
    ("meta", "attempt 1 started on host-a:w1"),
    ("out", "connecting to db-prod-1"),
    ("out", "[deploy] pulling image registry.local/app:2.4.1"),
    ("out", "layers: 7/7 done"),
    ("err", "warning: config key 'timeout' is deprecated"),
    ("out", "migrating schema: 3 pending"),
    ("out", "querying data…"),
]


@pytest.fixture
def settings(home: Path, migrated_db: Path) -> Settings:
    """The store and the catalog in the working directory: the header and the catalog's
    problems show their paths, the same every run."""
    shutil.copyfile(migrated_db, Path.cwd() / "opsconsole.db")
    (Path.cwd() / "catalog" / "templates").mkdir(parents=True)
    return load_settings(home=home, catalog=Path("catalog"), db="sqlite:///opsconsole.db")


@pytest.fixture
def board(clocked: OpsService, clock: SettableClock, put: Any, add_logs: Any) -> OpsService:
    """A queue, two running jobs (one with progress and a log) and a short history."""
    now = clock.now()
    put("b7k2m9", template="deploy", priority=10, age=120, params={"env": "prod", "count": 2})
    put("c3d4f5", age=300, params={"word": "hello"})
    put("d8g9h2", S.SCHEDULED, age=60, run_at=now + timedelta(minutes=4), params={"word": "later"})
    put("f2j3k4", S.WAITING, template="deploy", age=30, after=("b7k2m9",), params={"env": "dev"})
    put("g5h6j7", S.RUNNING, template="deploy", age=95, params={"env": "prod", "count": 1})
    put("h8j9k2", S.RUNNING, age=12, params={"word": "world"})
    put("k3m4n5", S.SUCCEEDED, ended=30, took=1.2)
    put("m6n7p8", S.FAILED, template="deploy", ended=300, took=75, exit_code=2)
    put("n9p2q3", S.CANCELLED, ended=3600, exit_code=None)
    put("p4q5r6", S.TIMED_OUT, ended=7200, took=600, exit_code=None)
    assert job_store.update_progress(
        clocked.db, "g5h6j7", 1, now, progress=40, step="Querying data"
    )
    for stream, text in LOG:
        add_logs("g5h6j7", [text], stream=stream)
    return clocked


def settled(app: OpsConsole, job_id: str, lines: int, *keys: str) -> Any:
    """Wait for the first load, press ``keys``, then wait for ``job_id``'s log."""

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready, what="the first load")
        await pilot.press(*keys)
        view = app.query_one(LogView)
        await until(
            pilot,
            lambda: view.job_id == job_id and len(view.lines) == lines,
            timeout=20,
            what=f"{job_id}'s log",
        )
        # what a loaded machine draws later: the footer's keys (recomposed once focus has
        # settled) and the tables' column widths (measured when the table is next idle)
        footer = app.query_one(Footer)
        await until(pilot, lambda: len(footer.query("FooterKey")) > 0, timeout=20, what="keys")
        tables = [t for t in app.query(JobTable) if t.row_count]
        await until(
            pilot,
            lambda: all(t.virtual_size.height >= t.row_count + 1 for t in tables),
            timeout=20,
            what="the rows laid out",
        )
        await pilot.pause()

    return run_before


def test_main_screen_narrow(board: OpsService, snap_compare: Any) -> None:
    """80x24 at start: tabs, on the running pane (what matters first), its first job's log."""
    app = OpsConsole(board, embed=False, start_feed=False)
    assert snap_compare(app, terminal_size=NARROW, run_before=settled(app, "g5h6j7", len(LOG)))


def test_main_screen_wide(board: OpsService, snap_compare: Any) -> None:
    """160x50, every pane; the running pane focused at start and its first job's log."""
    app = OpsConsole(board, embed=False, start_feed=False)
    run_before = settled(app, "g5h6j7", len(LOG))
    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_only_the_selected_row_looks_selected(board: OpsService, snap_compare: Any) -> None:
    """History, the cursor on m6n7p8, f: the log pane has the focus and shows m6n7p8; its
    History row stays marked (dimmed), the Queue and Running panes show no cursor."""
    app = OpsConsole(board, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready, what="the first load")
        history = app.query_one("#history", JobTable)
        for _ in range(4):
            if history.has_focus:
                break
            await pilot.press("right_square_bracket")
            await until(pilot, lambda: app.focus_wanted is None, what="the focus settled")
        await until(pilot, lambda: history.has_focus, what="History focused")
        await pilot.press("down", "f")
        view = app.query_one(LogView)
        await until(pilot, lambda: view.has_focus and view.job_id == "m6n7p8", what="its log")
        await until(pilot, lambda: history.has_class("-origin"), what="the row marked")
        await settled(app, "m6n7p8", 0)(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_catalog_problems_are_a_banner(board: OpsService, snap_compare: Any) -> None:
    """Two broken template files: the first in the banner, how many more, and T."""
    templates = Path("catalog") / "templates"
    (templates / "backup.yaml").write_text("name: backup\nrunner: [shell\n")
    (templates / "zz-old.yaml").write_text("name: zz-old\nrunner: telnet\ncommand: [true]\n")
    app = OpsConsole(board, embed=False, start_feed=False)
    assert snap_compare(app, terminal_size=WIDE, run_before=settled(app, "g5h6j7", len(LOG)))


def test_resized_to_80x24(board: OpsService, snap_compare: Any) -> None:
    """Wide at start, then 80x24: tabs, narrow columns, one footer line, a header that fits."""
    app = OpsConsole(board, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await settled(app, "g5h6j7", len(LOG))(pilot)
        await pilot.resize_terminal(*NARROW)
        await until(pilot, lambda: app.screen.has_class("narrow"), what="the narrow layout")
        running = app.query_one("#running", JobTable)
        await until(pilot, lambda: running.narrow and running.row_count == 2, what="narrow")
        footer = app.query_one(Footer)
        await until(pilot, lambda: not footer.query(".-command-palette"), what="footer redrawn")
        await until(pilot, lambda: len(footer.query("FooterKey")) > 0, what="its keys")
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
