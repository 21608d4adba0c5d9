"""One selected job: the focused pane's cursor row; the log follows it; every action acts
on it; an action that cannot apply to it is not offered and says why without a dialog."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select
from textual.widgets._footer import FooterKey
from tui_support import drive, notes, until

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.dialogs import ConfirmScreen, PromptScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.submit import SubmitScreen
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView

S = JobState
TABLES = ("queue", "running", "history")


def failed(service: OpsService, clock: SettableClock, req: SubmitRequest) -> str:
    """A job submitted, claimed and failed through the store, so that it can be retried."""
    job = service.submit(req)
    row = claim_store.claim(service.db, "w1", clock.now(), 30)
    assert row is not None and row["id"] == job.id
    assert job_store.finish(service.db, job.id, 1, S.FAILED, clock.now(), values={"exit_code": 1})
    return job.id


def table(app: OpsConsole, name: str) -> JobTable:
    return app.query_one(f"#{name}", JobTable)


def offered(app: OpsConsole) -> set[str]:
    """The actions the footer in front shows."""
    return {k.action for k in app.screen.query(FooterKey)}


def looks_selected(app: OpsConsole) -> list[str]:
    """The tables whose cursor row is drawn as selected (focused) or dimmed (``-origin``)."""
    return [n for n in TABLES if table(app, n).has_focus or table(app, n).has_class("-origin")]


def log_title(app: OpsConsole) -> str:
    return str(app.query_one("#pane-log").border_title)


async def next_pane(pilot: Pilot[None], app: OpsConsole) -> None:
    before = app.focused
    await pilot.press("right_square_bracket")
    # ] may name the pane that has the focus already (the log): then nothing moves
    with contextlib.suppress(AssertionError):
        await until(pilot, lambda: app.focused is not before, timeout=1.0)


async def focus_pane(pilot: Pilot[None], app: OpsConsole, name: str) -> JobTable:
    """``]`` (next pane) until ``name`` has the focus, as an operator would."""
    target = table(app, name)
    for _ in range(8):
        if target.has_focus:
            return target
        await next_pane(pilot, app)
    await until(pilot, lambda: target.has_focus, what=f"{name} focused")
    return target


async def refused(pilot: Pilot[None], app: OpsConsole, key: str, reason: str) -> None:
    """``key`` does not apply: a notification says why, no dialog opens."""
    await pilot.press(key)
    await until(pilot, lambda: any(reason in n for n in notes(app)), what=reason)
    await pilot.pause()
    assert app.screen is app.screen_stack[0], f"{key} opened {app.screen}"


def test_every_action_acts_on_the_highlighted_row_while_another_log_is_shown(
    clocked: OpsService, clock: SettableClock, put: Any, templates: Path
) -> None:
    h1 = failed(clocked, clock, SubmitRequest("deploy", {"env": "dev"}))  # retried at the end
    clock.advance(5)
    put("q1", age=20)
    put("q2", template="deploy", age=10, params={"env": "dev"})
    put("r1", S.RUNNING, age=30)
    put("r2", S.RUNNING, template="deploy", age=10, params={"env": "dev"})
    put("x1", S.PARTIAL, template="sync")  # the log shown first: it has just finished
    put("h2", S.SUCCEEDED, ended=20)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        # the log pane shows x1, a finished job, and has the focus (History, cursor, f)
        history = await focus_pane(pilot, app, "history")
        assert history.selected_id == "x1"
        await pilot.press("f")
        view = app.query_one(LogView)
        await until(pilot, lambda: view.has_focus and app.log_job == "x1", what="x1's log")
        assert log_title(app).startswith("Log x1 sync · partial")
        # cancel does not apply to a finished job: its key says why, and it is not offered
        await refused(pilot, app, "c", "x1 has already ended (partial): nothing to cancel")
        await until(pilot, lambda: "cancel" not in offered(app) and "follow" in offered(app))
        # only x1's row is marked (dimmed); the other panes show no cursor at all
        await until(pilot, lambda: looks_selected(app) == ["history"], what="one marked row")

        async def acts_on(pane: str, job: str, template: str) -> None:
            """In ``pane``, the cursor moved to ``job``: every key acts on it, or says why."""

            t = await focus_pane(pilot, app, pane)
            first = t.selected_id
            # on a pane, its cursor row is the selected job: the log follows it at once
            await until(pilot, lambda: app.log_job == first, what=f"the log on {first}")
            await pilot.press("down")
            await until(pilot, lambda: t.selected_id == job, what=f"the cursor on {job}")
            await until(pilot, lambda: app.log_job == job, what=f"the log on {job}")
            assert log_title(app).startswith(f"Log {job} {template} · ")
            assert looks_selected(app) == [pane]

            # c: cancel that job (asked first), or why not
            if pane == "history":
                await refused(pilot, app, "c", f"{job} has already ended (failed)")
            else:
                await until(pilot, lambda: "cancel" in offered(app), what="cancel offered")
                await pilot.press("c")
                confirm = await until(
                    pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None
                )
                state = "queued" if pane == "queue" else "running"
                assert confirm.question == f"Cancel job {job} ({template}, {state})?"
                await pilot.press("n")
                await until(pilot, lambda: app.screen is app.screen_stack[0])

            # p: the priority of that job, or why not
            if pane == "queue":
                await pilot.press("p")
                ask = await until(
                    pilot, lambda: app.screen if isinstance(app.screen, PromptScreen) else None
                )
                assert ask.question.startswith(f"Priority of {job} ")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.screen_stack[0])
            else:
                await refused(pilot, app, "p", f"{job} is {clocked.get(job).state.value}: only")

            # r: a retry of that job, or why not
            if pane != "history":
                await refused(pilot, app, "r", f"{job} is {clocked.get(job).state.value}: only")

            # enter: that job's detail
            await pilot.press("enter")
            detail = await until(
                pilot, lambda: app.screen if isinstance(app.screen, JobScreen) else None
            )
            assert detail.job_id == job
            # its footer shows its own keys, not the main screen's
            await until(pilot, lambda: "app.pop_screen" in offered(app), what="its keys")
            assert not offered(app) & {"submit", "follow", "filter", "goto", "priority"}
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.screen_stack[0])
            await until(pilot, lambda: t.has_focus, what=f"{pane} focused again")

            # f: that job's log, focused
            await pilot.press("f")
            await until(pilot, lambda: view.has_focus and view.job_id == job)
            assert looks_selected(app) == [pane]

        cases = {"queue": ("q2", "deploy"), "running": ("r2", "deploy"), "history": (h1, "deploy")}
        for pane, (job, template) in cases.items():
            await acts_on(pane, job, template)

        # r on the failed h1 retries h1 and nothing else
        await focus_pane(pilot, app, "history")
        await until(pilot, lambda: history.selected_id == h1)
        await pilot.press("r")
        await until(pilot, lambda: clocked.get(h1).state == S.QUEUED, what="h1 retried")
        assert [j.id for j in clocked.queue()] == ["q1", "q2", h1]
        assert {j.id for j in clocked.running()} == {"r1", "r2"}

    drive(app, script)


def test_the_submitted_job_becomes_the_selected_job(
    clocked: OpsService, put: Any, templates: Path
) -> None:
    put("r1", S.RUNNING, age=30)
    put("q1", age=20)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        assert table(app, "running").has_focus  # the console starts on what runs
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        # the form's footer shows the form's keys, not the main screen's
        await until(pilot, lambda: offered(app) >= {"submit", "dismiss(None)"})
        assert not offered(app) & {"cancel", "retry", "follow", "priority", "filter"}
        form.query_one("#template", Select).value = "echo"
        await until(pilot, lambda: form.query("#p-word"), what="the echo fields")
        form.query_one("#p-word", Input).value = "hi"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is app.screen_stack[0], what="the form closed")
        [job] = [j for j in clocked.queue() if j.id != "q1"]
        queue = table(app, "queue")
        await until(pilot, lambda: queue.has_focus, what="the queue focused")
        assert queue.selected_id == job.id
        await until(pilot, lambda: app.log_job == job.id, what="its log")
        assert log_title(app).startswith(f"Log {job.id} echo")

    drive(app, script)
