"""The console as a whole: layout, live updates from other processes, a failing store, the
embedded pool (real jobs, progress, quitting while they run)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from support import wait_until, write_template
from textual.pilot import Pilot
from textual.widgets import Static, Tabs
from tui_support import NARROW, WIDE, cell_text, drive, label_text, notes, until

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.tui.app import PANES, OpsConsole
from opsconsole.tui.messages import CountsChanged, EventsArrived, JobsChanged, StoreStatus
from opsconsole.tui.screens.dialogs import QuitScreen
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView
from opsconsole.tui.widgets.status_bar import StatusBar

S = JobState


def visible(app: OpsConsole) -> list[str]:
    """The panes on screen (a pane inside a hidden column is hidden too)."""
    left = app.query_one("#left").display
    return [p for p in PANES if app.query_one(f"#pane-{p}").display and (p == "log" or left)]


# -- layout -------------------------------------------------------------------------------


def test_wide_terminals_show_every_pane(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        assert not app.screen.has_class("narrow")
        assert visible(app) == list(PANES)
        assert not app.query_one("#tabs", Tabs).display
        await pilot.press("right_square_bracket")
        assert visible(app) == list(PANES)

    drive(app, script)


def test_narrow_terminals_turn_panes_into_tabs(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        tabs = app.query_one("#tabs", Tabs)
        assert app.screen.has_class("narrow")
        assert tabs.display
        assert visible(app) == ["queue"]
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert visible(app) == ["running"]
        assert tabs.active == "t-running"
        await pilot.click("#t-history")
        await pilot.pause()
        assert visible(app) == ["history"]
        assert app.query_one("#history", JobTable).has_focus
        await pilot.click("#t-log")
        await pilot.pause()
        assert visible(app) == ["log"]
        assert app.query_one(LogView).has_focus

        # growing the terminal brings every pane back
        await pilot.resize_terminal(160, 50)
        await until(pilot, lambda: not app.screen.has_class("narrow"))
        assert visible(app) == list(PANES)

    drive(app, script, size=NARROW)


# -- other processes ------------------------------------------------------------------------


async def opsconsole(settings: Settings, *args: str) -> str:
    """Run the CLI in another process without blocking the app; its stdout."""
    base = ["--home", str(settings.home), "--db", settings.db, "--catalog", str(settings.catalog)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opsconsole",
        *base,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_jobs_changed_by_another_process_show_up(
    service: OpsService, settings: Settings, templates: Path
) -> None:
    app = OpsConsole(service, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = app.query_one("#queue", JobTable)
        history = app.query_one("#history", JobTable)
        out = await opsconsole(settings, "submit", "echo", "-p", "word=from-cli", "--json")
        job = json.loads(out)["id"]
        await until(pilot, lambda: job in queue.views, what="the CLI's job in the queue")
        assert cell_text(queue, job, "params") == "word=from-cli"

        await opsconsole(settings, "jobs", "cancel", job)
        await until(pilot, lambda: job in history.views, what="the cancelled job in history")
        assert job not in queue.views
        assert cell_text(history, job, "state") == "cancelled"

    drive(app, script)


# -- a failing store ------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_failing_store_shows_a_banner_and_recovers(
    clocked: OpsService, settings: Settings, put: Any
) -> None:
    put("q1")
    app = OpsConsole(clocked, embed=False)
    path = settings.db.removeprefix("sqlite:///")

    def rename(old: str, new: str) -> None:
        # another process changes the schema under the console (a bad migration, a restore)
        with sqlite3.connect(path) as conn:
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#banner", Static)
        assert not banner.has_class("-visible")
        rename("job_events", "job_events_away")
        await until(pilot, lambda: banner.has_class("-visible"), what="the banner")
        assert banner.display
        assert label_text(banner) == f"store sqlite:{path}: no such table: job_events (retrying)"

        # operator actions fail as notifications; the console keeps running
        await pilot.press("c", "y")
        await until(
            pilot, lambda: any(n.startswith(f"cancel: store sqlite:{path}: ") for n in notes(app))
        )
        assert app.is_running

        rename("job_events_away", "job_events")
        await until(pilot, lambda: not banner.has_class("-visible"), timeout=10, what="recovery")
        assert not banner.display

    drive(app, script)


def test_a_slow_store_shows_a_banner_while_the_screen_stays_usable(
    clocked: OpsService, put: Any, monkeypatch: Any
) -> None:
    """A store that stops answering (a stalled network to PostgreSQL) is said on screen.

    The stall is simulated at the service boundary, the one thing here off this machine.
    """
    import threading

    put("q1")
    app = OpsConsole(clocked, embed=False)
    stalled = threading.Event()
    release = threading.Event()
    real = clocked.events_since

    def slow_events_since(*args: Any, **kw: Any) -> Any:
        if stalled.is_set():
            release.wait(20)
        return real(*args, **kw)

    monkeypatch.setattr(clocked, "events_since", slow_events_since)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#banner", Static)
        stalled.set()
        await until(pilot, lambda: banner.has_class("-visible"), timeout=10, what="the banner")
        assert "has not answered" in label_text(banner)
        await pilot.press("]")  # the UI thread is not blocked by the stalled read
        assert app._active_pane == "running"
        stalled.clear()
        release.set()
        await until(pilot, lambda: not banner.has_class("-visible"), timeout=10, what="recovery")

    drive(app, script)


@pytest.mark.sqlite_only
def test_a_store_failing_at_start_shows_the_banner_until_it_loads(
    clocked: OpsService, settings: Settings, put: Any
) -> None:
    put("q1")
    path = settings.db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE job_events RENAME TO job_events_away")
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#banner", Static)
        await until(pilot, lambda: banner.has_class("-visible"), what="the banner")
        assert label_text(banner) == f"store sqlite:{path}: no such table: job_events (retrying)"
        assert not app.ready
        assert notes(app) == []  # the banner says it, once, not a notification per retry
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE job_events_away RENAME TO job_events")
        await until(pilot, lambda: app.ready, timeout=10, what="the first load, retried")
        assert not banner.has_class("-visible")
        assert "q1" in app.query_one("#queue", JobTable).views

    async def main() -> None:
        async with app.run_test(size=WIDE) as pilot:
            await script(pilot)

    asyncio.run(main())


def test_feed_messages_during_shutdown_are_dropped(clocked: OpsService, put: Any) -> None:
    put("q1")
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.pause()

    drive(app, script)
    # the feed stops in on_unmount, after the screens are gone: what it posted meanwhile
    # reaches handlers that have no widgets left
    view = clocked.get("q1")
    app.on_jobs_changed(JobsChanged([view]))
    app.on_events_arrived(EventsArrived([]))
    app.on_counts_changed(CountsChanged(clocked.counts(), []))
    app.on_store_status(StoreStatus(False, "gone"))


# -- the embedded pool ----------------------------------------------------------------------


def slow_template(catalog: Path, release: Path) -> str:
    write_template(
        catalog,
        "slow",
        "runner: shell\ncommand:\n  - bash\n  - -c\n  - |\n"
        "    echo ::progress 40 Querying data\n"
        "    printf 'bad \\xff\\xfe bytes\\n'\n"
        f"    while [ ! -e {release} ]; do sleep 0.02; done\n"
        "    echo finished\n",
    )
    return "slow"


def test_a_real_job_runs_in_the_embedded_pool(
    service: OpsService, catalog: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = service.submit(SubmitRequest(slow_template(catalog, release))).id
    app = OpsConsole(service, embed=True, workers=1)

    async def script(pilot: Pilot[None]) -> None:
        assert app.pool is not None
        assert "embedded pool: 1 slots" in str(app.query_one(StatusBar).content.plain)
        running = app.query_one("#running", JobTable)
        await until(
            pilot,
            lambda: (
                job in running.views
                and cell_text(running, job, "progress") == "████░░░░░░  40% Querying data"
            ),
            what="the job's progress",
        )
        view = app.query_one(LogView)
        await until(
            pilot,
            lambda: (
                view.job_id == job and any(ln.text == "bad \ufffd\ufffd bytes" for ln in view.lines)
            ),
            what="the undecodable line, replaced",
        )
        release.touch()
        history = app.query_one("#history", JobTable)
        await until(pilot, lambda: job in history.views, what="the job finished")
        assert cell_text(history, job, "state") == "succeeded"
        assert cell_text(history, job, "exit") == "0"
        await until(pilot, lambda: view.lines and view.lines[-1].text == "finished")

    drive(app, script)


def test_quitting_while_a_job_runs_asks_first(
    service: OpsService, catalog: Path, tmp_path: Path
) -> None:
    job = service.submit(SubmitRequest(slow_template(catalog, tmp_path / "never"))).id
    app = OpsConsole(service, embed=True, workers=1)

    async def script(pilot: Pilot[None]) -> None:
        running = app.query_one("#running", JobTable)
        await until(pilot, lambda: job in running.views, what="the job running")
        await pilot.press("q")
        ask = await until(pilot, lambda: app.screen if isinstance(app.screen, QuitScreen) else None)
        assert ask.running == 1
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, QuitScreen)
        assert app.is_running and service.get(job).state == S.RUNNING

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("c")
        await until(pilot, lambda: not app.is_running, timeout=15, what="the app exited")

    drive(app, script)
    wait_until(lambda: service.get(job).state == S.CANCELLED, timeout=10)
    events = service.get(job, with_events=True).events or ()
    assert [e.message for e in events if e.kind == "cancel_requested"] == ["the console quit"]


def test_quit_and_wait_exits_when_the_job_ends(
    service: OpsService, catalog: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = service.submit(SubmitRequest(slow_template(catalog, release))).id
    app = OpsConsole(service, embed=True, workers=1)

    async def script(pilot: Pilot[None]) -> None:
        running = app.query_one("#running", JobTable)
        await until(pilot, lambda: job in running.views, what="the job running")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("w")
        await until(pilot, lambda: any(n.startswith("quitting when") for n in notes(app)))
        assert app.is_running
        release.touch()
        await until(pilot, lambda: not app.is_running, timeout=15, what="the app exited")

    drive(app, script)
    assert service.get(job).state == S.SUCCEEDED


def test_empty_panes_say_what_to_do(clocked: OpsService, put: Any) -> None:
    """A first start on an empty store explains itself; a job arriving clears the hint."""
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready)
        assert app.query_one("#pane-queue").border_subtitle == "nothing waiting · s submits a job"
        assert app.query_one("#pane-running").border_subtitle == "nothing running"
        assert app.query_one("#pane-history").border_subtitle == "no finished jobs yet"
        put("q1")
        app.post_message(JobsChanged(clocked.queue()))
        await until(pilot, lambda: not app.query_one("#pane-queue").border_subtitle)

    drive(app, script)
