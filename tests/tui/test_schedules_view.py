"""The Schedules view (``D``, ``:schedules``): the list, the selected schedule's next fire
times and ledger, the keys acting on the selected schedule, and how it looks.

Schedules are added through ``OpsService.add_schedule`` and fired by the engine's own
``tick`` at times the settable clock gives, so the ledger holds what a real scheduler
wrote (fired, missed after a downtime, skipped); the keys go through the same service
methods as the CLI.

Update the snapshot with ``pytest tests/tui/test_schedules_view.py --snapshot-update``
only after looking at the differences.
"""

from __future__ import annotations

import itertools
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import write_template
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets._footer import FooterKey
from tui_support import NARROW, WIDE, cell_text, drive, notes, plain, row_ids, until

from opsconsole.config import Settings, load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.schedules import ScheduleRequest
from opsconsole.core.service import OpsService
from opsconsole.engine.scheduler import tick
from opsconsole.tui import actions
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.messages import CountsChanged
from opsconsole.tui.screens.dialogs import ConfirmScreen, PromptScreen
from opsconsole.tui.screens.help import HelpScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.schedules import SchedulesScreen

STATUSES = {"fired", "missed", "skipped"}
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A Monday morning, far from a DST change (Berlin is CET, UTC+1)."""


def templates(catalog: Path) -> None:
    write_template(
        catalog,
        "rotate",
        "description: Rotate logs\nrunner: shell\ncommand: [echo, rotate, '{{ path }}']\n"
        "params:\n  path: {type: string, default: /var/log}\n"
        "  token: {type: string, secret: true, required: false}\n",
    )
    write_template(
        catalog,
        "ping",
        "description: Ping a host\nrunner: shell\ncommand: [echo, ping, '{{ host }}']\n"
        "params:\n  host: {type: string, required: true}\n",
    )


def add(service: OpsService, name: str, template: str, **options: Any) -> None:
    service.add_schedule(ScheduleRequest(name=name, template=template, **options))


@pytest.fixture
def catalog() -> Path:
    path = Path.cwd() / "catalog"
    (path / "templates").mkdir(parents=True)
    return path


@pytest.fixture
def settings(home: Path, migrated_db: Path, catalog: Path) -> Settings:
    """The store and the catalog in the working directory: the header shows the store's
    path, the same every run (the snapshot)."""
    shutil.copyfile(migrated_db, Path.cwd() / "opsconsole.db")
    return load_settings(home=home, catalog=Path("catalog"), db="sqlite:///opsconsole.db")


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def fleet(
    clocked: OpsService, catalog: Path, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> OpsService:
    """``nightly`` (cron in Berlin), ``ping-web`` (every 15m, fired once, then a downtime
    that leaves missed fires), ``ping-db`` (paused). Jobs get fixed ids, oldest first, so
    the picture is the same every run (the audit trail is append-only: ids are given at
    the start, never rewritten)."""
    ids = (f"s{n}x7k2" for n in itertools.count())
    for module in ("opsconsole.core.schedules", "opsconsole.core.service"):
        monkeypatch.setattr(f"{module}.new_job_id", lambda: next(ids))
    templates(catalog)
    clocked.reload_catalog()
    add(clocked, "nightly", "rotate", cron="30 2 * * *", tz="Europe/Berlin")
    add(clocked, "ping-web", "ping", params={"host": "web1"}, every="15m")
    add(clocked, "ping-db", "ping", params={"host": "db1"}, every="1h")
    clocked.pause_schedule("ping-db")
    clock.advance(15 * 60)
    tick(clocked, clock.now())  # ping-web fires on time
    clock.advance(60 * 60)  # nothing ran for an hour: four fire times passed
    tick(clocked, clock.now())  # catch-up latest: the newest runs, the others are missed
    return clocked


async def open_view(pilot: Pilot[None], rows: int = 3) -> SchedulesScreen:
    app = pilot.app
    await pilot.press("D")
    view = await until(
        pilot, lambda: app.screen if isinstance(app.screen, SchedulesScreen) else None
    )
    await until(pilot, lambda: bool(view.query("#schedule-detail")), what="the view composed")
    table = view.query_one("#view-table", DataTable)
    await until(pilot, lambda: table.row_count >= rows, what="schedule rows")
    table.focus()
    return view


async def select(pilot: Pilot[None], view: SchedulesScreen, name: str) -> str:
    """Put the cursor on ``name``; wait for its ledger; the detail pane's text."""
    table = view.query_one("#view-table", DataTable)
    table.move_cursor(row=table.get_row_index(name))
    detail = view.query_one("#schedule-detail", Static)
    await until(
        pilot,
        lambda: view.detail is not None and view.detail.view.name == name,
        what=f"{name}'s ledger",
    )
    await pilot.pause()
    return plain(detail.content, width=160)


def test_the_view_lists_schedules_with_when_next_fire_last_job_and_state(
    fleet: OpsService,
) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        table = view.query_one("#view-table", DataTable)
        assert sorted(row_ids(table)) == ["nightly", "ping-db", "ping-web"]
        assert cell_text(table, "nightly", "TEMPLATE") == "rotate"
        assert cell_text(table, "nightly", "WHEN") == "30 2 * * *  Europe/Berlin"
        assert cell_text(table, "ping-web", "WHEN") == "every 15m"
        # now 10:15 UTC: the nightly fires at 02:30 Berlin, 01:30 UTC tomorrow
        assert cell_text(table, "nightly", "NEXT FIRE") == "in 15h15m · 02:30 CET"
        assert cell_text(table, "ping-web", "NEXT FIRE") == "in 15m · 10:30 UTC"
        assert cell_text(table, "ping-db", "NEXT FIRE") == "paused"
        assert cell_text(table, "ping-db", "STATE") == "paused"
        assert cell_text(table, "ping-web", "STATE") == "active"
        last = fleet.schedule("ping-web").view
        assert last.last_job is not None
        assert cell_text(table, "ping-web", "LAST JOB") == f"{last.last_job} queued"
        assert cell_text(table, "nightly", "LAST JOB") == "-"

    drive(app, script)


def test_the_selected_schedule_shows_its_next_fires_in_its_zone_and_its_ledger(
    fleet: OpsService,
) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        text = await select(pilot, view, "nightly")
        for day in ("Tue 2026-03-03", "Wed 2026-03-04", "Sat 2026-03-07"):
            assert f"{day} 02:30 CET" in text, text
        assert "Ledger: no fire time has passed yet" in text
        text = await select(pilot, view, "ping-web")
        rows = [ln.split() for ln in text.splitlines()]
        ledger = [w for w in rows if len(w) > 3 and w[2] == "UTC" and w[3] in STATUSES]
        # newest first: the catch-up fire (skipped: the on-time fire's job has not run),
        # the three the downtime missed, the on-time fire with its job
        job = fleet.schedule("ping-web").view.last_job
        assert ledger[0][:4] == ["2026-03-02", "10:15", "UTC", "skipped"]
        assert [ln[3] for ln in ledger] == [
            "skipped",
            "missed",
            "missed",
            "missed",
            "fired",
        ], text
        assert "overlap: job" in text and "the store or every worker was down" in text
        assert ledger[-1][:5] == ["2026-03-02", "09:15", "UTC", "fired", job]

    drive(app, script)


def test_next_fires_across_the_spring_forward_night_show_the_wall_clock_and_zone(
    fleet: OpsService, clock: SettableClock
) -> None:
    """02:30 does not exist in Berlin on 2026-03-29: that night's fire is at 03:30 CEST,
    once, and the view says so in the schedule's zone."""
    clock.set(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    tick(fleet, clock.now())
    add(fleet, "nightly-dst", "rotate", cron="30 2 * * *", tz="Europe/Berlin")
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot, rows=4)
        text = await select(pilot, view, "nightly-dst")
        # the "Next fires" column: "Sat 2026-03-28 02:30 CET  in 14h30m"
        assert re.findall(r"\w{3} (\S+ \S+ \S+)  in \w+", text) == [
            "2026-03-28 02:30 CET",
            "2026-03-29 03:30 CEST",
            "2026-03-30 02:30 CEST",
            "2026-03-31 02:30 CEST",
            "2026-04-01 02:30 CEST",
        ], text

    drive(app, script)


def test_a_schedule_its_template_declares_says_so(
    fleet: OpsService, catalog: Path, clock: SettableClock
) -> None:
    write_template(
        catalog,
        "backup",
        "runner: shell\ncommand: [echo, backup]\nschedule: {every: 6h, catchup: skip}\n",
    )
    tick(fleet, clock.now())  # the tick makes the template's schedule
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot, rows=4)
        text = await select(pilot, view, "backup")
        assert re.search(r"Origin +declared by its template", text), text
        assert "catch-up skip · overlap skip" in text
        table = view.query_one("#view-table", DataTable)
        assert cell_text(table, "backup", "WHEN") == "every 6h"

    drive(app, script)


def test_a_secret_parameter_never_reaches_the_screen(fleet: OpsService) -> None:
    add(fleet, "rotate-tmp", "rotate", params={"path": "/tmp", "token": "hunter2"}, every="1h")
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot, rows=4)
        text = await select(pilot, view, "rotate-tmp")
        assert "path=/tmp" in text
        assert "hunter2" not in text
        table = view.query_one("#view-table", DataTable)
        assert "hunter2" not in " ".join(
            plain(c) for row in table.ordered_rows for c in table.get_row(row.key)
        )

    drive(app, script)


def test_p_pauses_the_selected_schedule_and_resumes_a_paused_one(fleet: OpsService) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        table = view.query_one("#view-table", DataTable)
        text = await select(pilot, view, "ping-db")
        # what it would fire after a resume now: the hourly grid from now on
        assert "paused: these once p resumes it" in text
        assert re.findall(r"\w{3} (\S+ \S+ \S+)  in \w+", text)[:2] == [
            "2026-03-02 11:00 UTC",
            "2026-03-02 12:00 UTC",
        ], text

        def footer() -> list[str]:
            return [k.description for k in view.query(FooterKey)]

        await until(pilot, lambda: "Resume" in footer() and "Pause" not in footer())
        await pilot.press("p")
        await until(pilot, lambda: not fleet.schedule("ping-db").view.paused, what="resumed")
        await until(pilot, lambda: cell_text(table, "ping-db", "STATE") == "active")
        assert any("resumed ping-db" in n for n in notes(app))
        # the other schedules were not touched; p again pauses only the selected one
        await until(pilot, lambda: "Pause" in footer(), what="the footer offers Pause")
        await select(pilot, view, "nightly")
        await pilot.press("p")
        await until(pilot, lambda: cell_text(table, "nightly", "STATE") == "paused")
        assert fleet.schedule("nightly").view.paused
        assert not fleet.schedule("ping-web").view.paused
        assert not fleet.schedule("ping-db").view.paused

    drive(app, script)


def test_r_runs_the_selected_schedule_now(fleet: OpsService) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        table = view.query_one("#view-table", DataTable)
        await select(pilot, view, "nightly")
        await pilot.press("r")
        await until(pilot, lambda: any("ran nightly now as job" in n for n in notes(app)))
        detail = fleet.schedule("nightly")
        job = detail.view.last_job
        assert job is not None and detail.ledger[0].job_id == job
        assert detail.ledger[0].status == "fired"
        assert fleet.get(job).template == "rotate"
        await until(pilot, lambda: cell_text(table, "nightly", "LAST JOB") == f"{job} queued")
        # nothing else fired
        assert fleet.schedule("ping-db").view.last_job is None

    drive(app, script)


def test_a_refused_run_is_a_notification_and_fires_nothing(fleet: OpsService) -> None:
    """The schedule was removed elsewhere after the view read it: r says so in one
    notification, fires nothing, and the view stays."""
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        await select(pilot, view, "nightly")
        fleet.remove_schedule("nightly")  # e.g. `opsconsole schedules remove nightly`
        jobs_before = len(fleet.history(limit=50)) + len(fleet.queue())
        await pilot.press("r")
        await until(pilot, lambda: any(n.startswith("run: ") for n in notes(app)))
        [note] = [n for n in notes(app) if n.startswith("run: ")]
        assert "nightly" in note, note
        assert len(fleet.history(limit=50)) + len(fleet.queue()) == jobs_before
        assert isinstance(app.screen, SchedulesScreen)

    drive(app, script)


def test_m_runs_the_missed_fires_after_a_confirmation(fleet: OpsService) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        await select(pilot, view, "ping-web")
        await pilot.press("m")
        confirm = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None
        )
        assert "(3 in the ledger shown)" in confirm.question
        await pilot.press("n")  # no: nothing runs
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        assert [f.status for f in fleet.schedule("ping-web").ledger].count("missed") == 3
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: any("ran 3 missed fire(s) of ping-web" in n for n in notes(app)))
        ledger = fleet.schedule("ping-web").ledger
        assert [f.status for f in ledger] == ["skipped", "fired", "fired", "fired", "fired"]
        assert all(f.job_id for f in ledger[1:]) and len({f.job_id for f in ledger[1:]}) == 4

    drive(app, script)


def test_k_skips_the_past_fire_times_after_a_confirmation(
    fleet: OpsService, clock: SettableClock
) -> None:
    clock.advance(45 * 60)  # ping-web is due again, three times over, and no tick ran
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        table = view.query_one("#view-table", DataTable)
        await select(pilot, view, "ping-web")
        assert cell_text(table, "ping-web", "NEXT FIRE").startswith("due 30m ago")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: any("skipped 3 pending fire" in n for n in notes(app)))
        detail = fleet.schedule("ping-web")
        assert [f.status for f in detail.ledger[:3]] == ["skipped"] * 3
        assert detail.view.next_fire_at is not None and detail.view.next_fire_at > clock.now()
        await until(pilot, lambda: cell_text(table, "ping-web", "NEXT FIRE").startswith("in "))

    drive(app, script)


def test_j_and_enter_open_the_last_job_and_say_why_not_without_one(fleet: OpsService) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        await select(pilot, view, "nightly")
        await pilot.press("j")
        await until(pilot, lambda: any("nightly has not fired a job yet" in n for n in notes(app)))
        assert isinstance(app.screen, SchedulesScreen)
        await select(pilot, view, "ping-web")
        job = fleet.schedule("ping-web").view.last_job
        await pilot.press("j")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, JobScreen) else None
        )
        assert screen.job_id == job
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await pilot.press("enter")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, JobScreen) else None
        )
        assert screen.job_id == job

    drive(app, script)


def test_keys_on_an_empty_view_say_there_is_no_schedule(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot, rows=1)
        assert "no schedule yet" in plain(view.query_one("#view-table", DataTable).get_row_at(0)[0])
        for key in ("p", "r", "m", "k", "j"):
            await pilot.press(key)
        await until(pilot, lambda: notes(app).count("no schedule selected") == 5)
        assert isinstance(app.screen, SchedulesScreen)  # no dialog opened

    drive(app, script)


def test_the_view_follows_the_feed(fleet: OpsService) -> None:
    """A schedule added elsewhere (the CLI, another console) appears without a key."""
    app = OpsConsole(fleet, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        table = view.query_one("#view-table", DataTable)
        add(fleet, "ping-lb", "ping", params={"host": "lb1"}, every="5m")
        await until(pilot, lambda: "ping-lb" in row_ids(table), timeout=10, what="the new row")

    drive(app, script)


def test_the_feeds_ticks_move_the_next_fire_on_and_read_a_schedule_that_came_due(
    fleet: OpsService, clock: SettableClock
) -> None:
    """No event has to arrive: the counts tick redraws "in 15m", and a schedule whose time
    has come is read again once, which shows what another process's tick did with it."""
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_view(pilot)
        table = view.query_one("#view-table", DataTable)
        await select(pilot, view, "ping-web")
        old_job = fleet.schedule("ping-web").view.last_job
        clock.advance(10 * 60)
        app.post_message(CountsChanged({}))
        await until(pilot, lambda: cell_text(table, "ping-web", "NEXT FIRE").startswith("in 5m"))
        fleet.cancel(old_job or "", reason="stuck")  # the next fire is not an overlap
        clock.advance(6 * 60)
        tick(fleet, clock.now())  # another process fires it at 10:30
        app.post_message(CountsChanged({}))
        new_job = fleet.schedule("ping-web").view.last_job
        assert new_job not in (None, old_job)
        await until(
            pilot,
            lambda: cell_text(table, "ping-web", "LAST JOB") == f"{new_job} queued",
            what="the new fire's job",
        )
        assert cell_text(table, "ping-web", "NEXT FIRE").startswith("in 14m")
        detail = plain(view.query_one("#schedule-detail", Static).content, width=160)
        assert f"2026-03-02 10:30 UTC  fired    {new_job} queued" in detail, detail

    drive(app, script)


def test_colon_schedules_opens_the_view(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("colon")
        prompt = await until(
            pilot,
            lambda: (
                app.screen
                if isinstance(app.screen, PromptScreen) and app.screen.query(Input)
                else None
            ),
        )
        prompt.query_one(Input).value = "sched"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen), what="the view")

    drive(app, script)


def test_help_and_palette_list_the_views_keys(fleet: OpsService) -> None:
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        lines = plain(app.screen.query_one("#help-text", Static).content).splitlines()
        for a in actions.SCHEDULE_ACTIONS:
            assert any(ln.strip() == f"{a.key}  {a.description}" for ln in lines), a.name
        await pilot.press("escape")
        view = await open_view(pilot)
        await select(pilot, view, "nightly")
        await pilot.press("ctrl+p")
        palette = await until(
            pilot, lambda: app.screen if isinstance(app.screen, CommandPalette) else None
        )
        await pilot.press(*"run the selected schedule now")
        options = palette.query_one(OptionList)
        await until(
            pilot,
            lambda: (
                options.option_count
                and "Run the selected schedule now" in str(options.get_option_at_index(0).prompt)
            ),
        )
        await pilot.press("enter")
        await until(pilot, lambda: any("ran nightly now as job" in n for n in notes(app)))

    drive(app, script)


# -- how it looks ---------------------------------------------------------------------------


def fixed_author(service: OpsService) -> None:
    """A fixed operator as the schedules' author (not whoever runs the tests)."""
    with service.db.write() as conn:
        conn.exec_driver_sql("UPDATE schedules SET created_by = 'alice'")


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["160x50", "80x24"])
def test_snapshot_ping_web_selected(
    fleet: OpsService, size: tuple[int, int], snap_compare: Any
) -> None:
    """D: three schedules (one paused), ping-web selected: its next fires and its ledger
    after an hour's downtime (the newest fire ran, three missed, the on-time one)."""
    fixed_author(fleet)
    app = OpsConsole(fleet, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready, what="the first load")
        view = await open_view(pilot)
        await select(pilot, view, "ping-web")

    assert snap_compare(app, terminal_size=size, run_before=run_before)
