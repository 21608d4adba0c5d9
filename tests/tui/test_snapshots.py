"""What the main screen looks like, narrow and wide, on seeded jobs and a stopped clock.

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
from textual.widgets.data_table import ColumnKey
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
def settings(home: Path, catalog: Path, migrated_db: Path) -> Settings:
    """The store in the working directory: the header shows its path, the same every run."""
    shutil.copyfile(migrated_db, Path.cwd() / "opsconsole.db")
    return load_settings(home=home, catalog=catalog, db="sqlite:///opsconsole.db")


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
            lambda: all(t.columns[ColumnKey("id")].content_width >= 6 for t in tables),
            timeout=20,
            what="column widths",
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
