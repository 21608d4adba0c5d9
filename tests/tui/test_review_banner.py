"""The break-glass banner: every open console shows it until another person acknowledges.

The glass is broken by another service on the same store (as another process would) and
the review is acknowledged by a second real OS account (made with ``useradd``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import submitted_by, write_template
from textual.pilot import Pilot
from textual.widgets import Static
from tui_support import drive, label_text, until

from opsconsole.config import Settings, load_settings
from opsconsole.core.identity import for_uid, os_user
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database
from opsconsole.tui.app import OpsConsole

USER = f"ocban{os.getpid() % 100000}"


@pytest.fixture
def reviewer(home: Path, catalog: Path, store_url: str) -> Iterator[OpsService]:
    """A service acting as a second real account with the approver role."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to make a second OS user")
    subprocess.run(["useradd", "-M", "-N", USER], check=True, capture_output=True, timeout=60)
    config = home.parent / "reviewer-home"
    config.mkdir()
    (config / "opsconsole.toml").write_text(
        f'[roles]\nadmin = ["user:{os_user()}"]\napprover = ["user:{USER}"]\n'
    )
    settings = load_settings(home=config, catalog=catalog, db=store_url)
    db = Database(settings.db)
    service = OpsService(settings, db)
    service.identity = for_uid(pwd.getpwnam(USER).pw_uid)
    try:
        yield service
    finally:
        db.dispose()
        subprocess.run(["userdel", USER], capture_output=True, timeout=60, check=False)


def test_the_banner_stays_until_another_person_acknowledges(
    clocked: OpsService, settings: Settings, catalog: Path, reviewer: OpsService
) -> None:
    write_template(catalog, "glass", "command: [echo, hi]\napproval: {break_glass: true}\n")
    other = OpsService(settings, Database(settings.db))  # another console's process, in effect
    job = submitted_by(other, SubmitRequest("glass"), "alice")
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#review-banner", Static)
        await until(pilot, lambda: app.ready, what="the first load")
        assert not banner.has_class("-visible")

        _, review = other.break_glass(job, reason="site down, INC-7")
        await until(pilot, lambda: banner.has_class("-visible"), timeout=20, what="the banner")
        text = label_text(banner)
        assert f"job {job} ran without approval, by {os_user()}: site down, INC-7" in text
        assert f"opsconsole reviews ack {review} --comment TEXT" in text

        reviewer.ack_review(review, comment="checked")
        await until(pilot, lambda: not banner.has_class("-visible"), timeout=20, what="banner gone")

    try:
        drive(app, script)
    finally:
        other.db.dispose()


def test_a_console_opened_later_shows_the_open_review(clocked: OpsService, catalog: Path) -> None:
    write_template(catalog, "glass", "command: [echo, hi]\napproval: {break_glass: true}\n")
    job = submitted_by(clocked, SubmitRequest("glass"), "alice")
    clocked.break_glass(job, reason="urgent")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#review-banner", Static)
        await until(pilot, lambda: banner.has_class("-visible"), what="the banner")
        assert f"job {job} ran without approval" in label_text(banner)

    drive(app, script)
