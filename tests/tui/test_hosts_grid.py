"""The console's hosts grid: opened with H for an Ansible job only, filled live from the
store while it is open, the cell under the cursor explained, failed hosts pinned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hosts_support import ansible_template, cells, ended, recap, shell_template, started
from textual.pilot import Pilot
from textual.widgets import Footer
from tui_support import NARROW, drive, notes, plain, until

from opsconsole.core.hosts import SYMBOLS
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.hosts import HostsScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.widgets.hosts_grid import HostsGrid

S = JobState


@pytest.fixture
def site(catalog: Path) -> str:
    return ansible_template(catalog)


def shown(grid: HostsGrid) -> list[list[str]]:
    """The table's rows as text: host, recap, then one symbol per task."""
    table = grid.table
    return [[str(c.plain) for c in table.get_row(row.key)] for row in table.ordered_rows]


def footer_keys(app: OpsConsole) -> set[str]:
    return {str(k.key) for k in app.screen.query_one(Footer).query("FooterKey")}


async def grid_open(pilot: Pilot[None], app: OpsConsole) -> HostsGrid:
    """The hosts screen in front with its first grid read and drawn."""

    def drawn() -> HostsScreen | None:
        screen = app.screen
        return screen if isinstance(screen, HostsScreen) and screen.loads else None

    screen = await until(pilot, drawn, timeout=20, what="the hosts grid")
    return screen.grid


def text_of(grid: HostsGrid, part: str) -> str:
    return plain(grid.query_one(f"#hosts-{part}").content, width=200)


def test_cells_written_while_the_grid_is_open_appear_without_a_key(
    clocked: OpsService, site: str
) -> None:
    job = started(clocked, site)
    cells(clocked, job, (0, "web1", "running"))
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.selected_job() == job, what="the running job selected")
        await until(pilot, lambda: "H" in footer_keys(app), what="H in the footer")
        await pilot.press("H")
        grid = await grid_open(pilot, app)
        assert shown(grid) == [["web1", "", SYMBOLS["running"]]]
        assert "task 1 of 1: step 1" in text_of(grid, "title")
        # the runner writes results and a new task; nothing is pressed
        cells(clocked, job, (0, "web1", "changed"), (0, "web2", "failed", "boom"))
        cells(clocked, job, (1, "web1", "running"))
        await until(
            pilot,
            lambda: (
                shown(grid)
                == [
                    ["web2", f"{SYMBOLS['failed']}1", SYMBOLS["failed"], "·"],
                    [
                        "web1",
                        f"{SYMBOLS['ok']}1 {SYMBOLS['changed']}1",
                        SYMBOLS["changed"],
                        SYMBOLS["running"],
                    ],
                ]
            ),
            timeout=20,
            what="the new cells",
        )
        assert grid.table.fixed_rows == 1  # the failed host stays on screen
        assert "so far" in text_of(grid, "totals") and "failed=1" in text_of(grid, "totals")
        ended(clocked, job, S.PARTIAL, {"web1": recap(ok=2, changed=1), "web2": recap(failed=1)})
        await until(
            pilot,
            lambda: text_of(grid, "totals").startswith("recap"),
            timeout=20,
            what="the recap once the job ended",
        )
        assert "partial" in text_of(grid, "title")
        assert shown(grid)[1][3] == SYMBOLS["stopped"]  # it was running when the job ended

    drive(app, script)


def test_the_cursor_explains_its_cell(clocked: OpsService, site: str) -> None:
    job = started(clocked, site)
    cells(
        clocked,
        job,
        (0, "web1", "ok"),
        (0, "db1", "unreachable", "ssh: connect to host db1 port 22: Connection refused"),
        (1, "web1", "changed"),
        tasks={0: "Gathering Facts", 1: "Write config"},
    )
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        app.action_hosts(job)
        grid = await grid_open(pilot, app)
        # the cursor starts on the newest task of the first (pinned) host
        assert grid.cursor_cell() == ("db1", 1)
        assert "db1 · task 2 Write config" in text_of(grid, "cell")
        assert "not run on this host" in text_of(grid, "cell")
        await pilot.press("left")
        detail = text_of(grid, "cell")
        assert "db1 · task 1 Gathering Facts (play Check the site) · ! unreachable" in detail
        assert "Connection refused" in detail
        await pilot.press("down", "right")
        assert grid.cursor_cell() == ("web1", 1)
        assert "● changed" in text_of(grid, "cell")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HostsScreen), what="back")

    drive(app, script)


def test_h_is_offered_only_for_an_ansible_job(
    clocked: OpsService, catalog: Path, site: str
) -> None:
    shell = clocked.submit(SubmitRequest(shell_template(catalog))).id
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.selected_job() == shell, what="the shell job")
        await until(pilot, lambda: "c" in footer_keys(app), what="the footer")
        assert "H" not in footer_keys(app)
        await pilot.press("H")
        await until(pilot, lambda: notes(app), what="why not")
        assert "runs shell, not Ansible" in notes(app)[-1]
        assert not isinstance(app.screen, HostsScreen)

    drive(app, script)


def test_the_job_detail_screen_opens_the_grid(clocked: OpsService, site: str) -> None:
    job = clocked.submit(SubmitRequest(site)).id
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.selected_job() == job, what="the job")
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen)
        await until(pilot, lambda: screen.job_view is not None, what="the job read")
        await until(pilot, lambda: "H" in footer_keys(app), what="H offered")
        await pilot.press("H")
        grid = await grid_open(pilot, app)
        assert "no task has started" in text_of(grid, "title")
        assert not grid.query_one("#hosts-body").display

    drive(app, script, size=NARROW)


# -- appearance -----------------------------------------------------------------------------


SPEC = {
    "name": "site-ping",
    "runner": "ansible",
    "ansible": {"playbook": "playbooks/ping.yml", "inventory": {"hosts": ["web1"]}},
}


def seeded_run(service: OpsService, put: Any) -> str:
    """Twelve hosts half way through seven tasks: two pinned, one task running on three
    (a fixed job id, so the picture is the same every run)."""
    job = "k6vp2t"
    put(job, S.RUNNING, template="site-ping", spec=SPEC)
    names = {0: "Gathering Facts", 1: "Install nginx", 2: "Write config", 3: "Restart nginx",
             4: "Install postgresql", 5: "Tune memory", 6: "Probe /healthz"}  # fmt: skip
    runs = {
        "web1": "ok changed changed changed . . running",
        "web2": "ok changed ok ok . . running",
        "web3": "ok ok ok skipped . . ok",
        "db1": "ok . . . changed changed running",
        "db2": "ok . . . failed",
        "cache1": "unreachable",
        **{f"app{n}": "ok ok ok ok . . ok" for n in range(1, 7)},
    }
    messages = {
        ("db2", 4): "No package matching 'postgresql-17' is available",
        ("cache1", 0): "Failed to connect to the host via ssh: Connection timed out",
    }
    given = [
        (seq, host, status, messages.get((host, seq), ""))
        for host, run in runs.items()
        for seq, status in enumerate(run.split())
        if status != "."
    ]
    cells(service, job, *given, tasks=names)
    return job


@pytest.mark.parametrize("size", [NARROW, (200, 50)], ids=["80x24", "200x50"])
def test_hosts_grid_looks_right(
    clocked: OpsService, put: Any, snap_compare: object, size: tuple[int, int]
) -> None:
    """80x24: the grid, the cell under the cursor, legend and totals, no task list; 200x50:
    the task list beside it. Failed and unreachable hosts on top; the cursor on db2's
    failure."""
    job = seeded_run(clocked, put)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready, what="the first load")
        app.action_hosts(job)
        grid = await grid_open(pilot, app)
        await pilot.press("down", "left", "left")
        await until(pilot, lambda: grid.cursor_cell() == ("db2", 4), what="db2's failure")
        footer = app.screen.query_one(Footer)
        await until(pilot, lambda: len(footer.query("FooterKey")) > 0, what="the keys")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)  # type: ignore[operator]
