"""The console gets the service's checks: a refused action is a one-line notification."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.pilot import Pilot
from tui_support import drive, notes, until

from opsconsole.config import Settings
from opsconsole.core.access import Member, Policy, Role
from opsconsole.core.clock import SettableClock
from opsconsole.core.identity import os_user
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store.db import Database
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.dialogs import ConfirmScreen

S = JobState


def test_a_refused_cancel_shows_the_reason_and_changes_nothing(
    settings: Settings, clock: SettableClock, put: Any
) -> None:
    me = os_user()
    viewer = Policy(roles=((Role.VIEWER, (Member("user", me),)),))
    db = Database(settings.db)
    service = OpsService(replace(settings, policy=viewer), db, clock=clock)
    put("q1", age=20)
    app = OpsConsole(service, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        app.query_one("#queue").focus()
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        want = f"{me} may not cancel jobs: needs the operator role ({me} has the viewer role)"
        await until(pilot, lambda: any(want in n for n in notes(app)), what="the refusal")

    try:
        drive(app, script)
        assert service.get("q1").state == S.QUEUED
        assert service.get("q1", with_events=True).events[-1].kind == "refused"
    finally:
        db.dispose()
