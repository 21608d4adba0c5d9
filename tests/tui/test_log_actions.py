"""Saving a log from the console: a new 0600 file, never through a link, never over a file."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_support import drive, notes, until

from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole

LOG = "first line\n[b]second[/b] line\nthird line\n"


@pytest.fixture
def logged(clocked: OpsService, put: Any, add_logs: Any) -> str:
    put("r1", JobState.RUNNING)
    add_logs("r1", ["first line", "[b]second[/b] line", "third line"])
    return "r1"


def save(service: OpsService, expect: str) -> list[str]:
    """Press the save key with the log of r1 shown; wait for a notification containing
    ``expect`` and return them all."""
    app = OpsConsole(service, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.log_job == "r1")
        await pilot.press("w")
        await until(pilot, lambda: any(expect in n for n in notes(app)), what=expect)

    drive(app, script)
    return notes(app)


@pytest.mark.parametrize("target_exists", [True, False], ids=["to-a-file", "dangling"])
def test_a_planted_link_is_never_followed(
    clocked: OpsService, logged: str, tmp_path: Path, target_exists: bool
) -> None:
    victim = tmp_path / "victim"
    if target_exists:
        victim.write_text("precious\n")
    planted = Path.cwd() / "opsconsole-r1.log"
    planted.symlink_to(victim)
    saved = Path.cwd() / "opsconsole-r1-2.log"

    save(clocked, f"saved the log of r1 to {saved} (opsconsole-r1.log already exists)")

    assert planted.is_symlink()
    if target_exists:
        assert victim.read_text() == "precious\n"
    else:
        assert not victim.exists()
    assert saved.read_text() == LOG
    assert stat.S_IMODE(saved.lstat().st_mode) == 0o600


def test_an_existing_file_is_kept_and_the_next_free_name_used(
    clocked: OpsService, logged: str
) -> None:
    for name in ("opsconsole-r1.log", "opsconsole-r1-2.log"):
        (Path.cwd() / name).write_text("older save\n")
    saved = Path.cwd() / "opsconsole-r1-3.log"
    save(clocked, f"saved the log of r1 to {saved}")
    assert (Path.cwd() / "opsconsole-r1.log").read_text() == "older save\n"
    assert (Path.cwd() / "opsconsole-r1-2.log").read_text() == "older save\n"
    assert saved.read_text() == LOG


def test_every_name_taken_is_an_error_notification(clocked: OpsService, logged: str) -> None:
    names = ["opsconsole-r1.log", *(f"opsconsole-r1-{n}.log" for n in range(2, 101))]
    for name in names:
        (Path.cwd() / name).write_text("older save\n")
    shown = save(clocked, "save log: not saved")
    assert (
        f"save log: not saved: opsconsole-r1.log to opsconsole-r1-100.log all exist in {Path.cwd()}"
    ) in shown
    assert sorted(p.name for p in Path.cwd().iterdir()) == sorted(names)
    assert all((Path.cwd() / n).read_text() == "older save\n" for n in names)
