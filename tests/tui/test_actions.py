"""The action registry and every key in it: footer, help, palette, and what each key does."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from support import failed_job
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets._footer import FooterKey
from tui_support import cell_text, drive, label_text, notes, plain, row_ids, until

from opsconsole.core.clock import SettableClock
from opsconsole.core.secrets import MASK
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import queries
from opsconsole.tui import actions
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.dialogs import ConfirmScreen, PromptScreen
from opsconsole.tui.screens.help import HelpScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.views import EventsScreen, LocksScreen, StatsScreen, WorkersScreen
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView

S = JobState


def table(app: OpsConsole, name: str) -> JobTable:
    return app.query_one(f"#{name}", JobTable)


async def prompt(pilot: Pilot[None], key: str) -> PromptScreen:
    await pilot.press(key)
    return await until(
        pilot,
        lambda: pilot.app.screen if isinstance(pilot.app.screen, PromptScreen) else None,
        what=f"the prompt of {key!r}",
    )


async def answer(pilot: Pilot[None], text: str) -> None:
    """Put ``text`` in the prompt and press Enter."""
    pilot.app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await pilot.pause()


# -- one registry -------------------------------------------------------------------------


def test_footer_help_and_palette_all_read_the_registry(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)
    own = [b for b in OpsConsole.BINDINGS if not b.action.startswith("refused(")]  # type: ignore[union-attr]
    assert [(b.key, b.action) for b in own] == [(a.key, a.name) for a in actions.ACTIONS]
    # a job action's key falls back to saying why it does not apply, never shown itself
    fallbacks = [b for b in OpsConsole.BINDINGS if b.action.startswith("refused(")]  # type: ignore[union-attr]
    assert [(b.key, b.action, b.show) for b in fallbacks] == [
        (a.key, f"refused('{a.name}')", False) for a in actions.ACTIONS if a.name in actions.ON_JOB
    ]
    for a in actions.ACTIONS:
        assert callable(getattr(app, f"action_{a.name}")), a.name

    async def script(pilot: Pilot[None]) -> None:
        await pilot.pause()
        keys = [k for k in app.screen.query(FooterKey) if not k.has_class("-command-palette")]
        # an empty store: nothing is selected, so no job action is offered
        assert [(k.key, k.action, k.description) for k in keys] == [
            (a.key, a.name, a.label)
            for a in actions.ACTIONS
            if a.footer and a.name not in actions.ON_JOB
        ]

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        lines = plain(app.screen.query_one("#help-text", Static).content).splitlines()
        for a in actions.ACTIONS:
            line = f"{actions.key_label(a.key)}  {a.description}"
            assert any(ln.strip() == line for ln in lines), line
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")

        await pilot.press("ctrl+p")
        palette = await until(
            pilot, lambda: app.screen if isinstance(app.screen, CommandPalette) else None
        )
        options = palette.query_one(OptionList)
        await until(pilot, lambda: options.option_count >= len(actions.ACTIONS))
        prompts = {str(options.get_option_at_index(i).prompt) for i in range(options.option_count)}
        for a in actions.ACTIONS:
            assert f"{a.description}\nkey {actions.key_label(a.key)}" in prompts, a.name

        # a palette hit runs the action
        await pilot.press(*"toggle dark")
        await until(
            pilot,
            lambda: (
                options.option_count and "Toggle dark" in str(options.get_option_at_index(0).prompt)
            ),
        )
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "textual-light", what="the theme changed")

    drive(app, script)


# -- jobs ---------------------------------------------------------------------------------


def test_cancel_asks_first_then_cancels(clocked: OpsService, put: Any) -> None:
    put("q1", age=20)
    put("r1", S.RUNNING, age=10)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready)
        assert app.focused is table(app, "running")  # the console starts on what runs
        table(app, "queue").focus()
        await pilot.press("c")
        confirm = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None
        )
        assert confirm.question == "Cancel job q1 (echo, queued)?"
        await pilot.press("n")
        await pilot.pause()
        assert clocked.get("q1").state == S.QUEUED
        assert not isinstance(app.screen, ConfirmScreen)

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "q1" in table(app, "history").views, what="q1 in history")
        assert clocked.get("q1").state == S.CANCELLED
        assert "q1" not in table(app, "queue").views
        assert "cancel: q1 is cancelled" in notes(app)

        # a running job is asked to stop; the row says so until the worker ends it
        table(app, "running").focus()
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(
            pilot,
            lambda: "cancelling" in cell_text(table(app, "running"), "r1", "progress"),
        )
        assert clocked.get("r1").cancel_requested
        # the toast says what happens next, not just "running"
        toast = next(n for n in notes(app) if n.startswith("cancellation of r1 requested"))
        assert "its worker stops it" in toast and "moves to History as cancelled" in toast
        assert "cancel: r1 is running" not in notes(app)

        # asking again, or cancelling what has ended, says why and opens no dialog
        await pilot.press("c")
        await until(pilot, lambda: any("r1 is already requested" in n for n in notes(app)))
        table(app, "history").focus()
        await pilot.press("c")
        await until(pilot, lambda: any("q1 has already ended (cancelled)" in n for n in notes(app)))
        assert not isinstance(app.screen, ConfirmScreen)

    drive(app, script)


def test_retry_asks_for_dropped_secrets(
    clocked: OpsService, clock: SettableClock, templates: Path, put: Any
) -> None:
    job = failed_job(clocked, clock, SubmitRequest("deploy", {"env": "prod", "token": "s3cret"}))
    assert clocked.get(job).params["token"] == MASK
    clock.advance(10)
    put("ok1", S.SUCCEEDED)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        history = table(app, "history")
        history.focus()
        assert history.selected_id == "ok1"
        await pilot.press("r")
        await until(pilot, lambda: "ok1 succeeded: there is nothing to retry" in notes(app))
        assert not isinstance(app.screen, PromptScreen)

        await pilot.press("down")
        assert history.selected_id == job
        ask = await prompt(pilot, "r")
        assert "Secret 'token'" in label_text(ask.query_one(".question"))
        assert ask.query_one(Input).password
        await answer(pilot, "n3w-secret")
        await until(pilot, lambda: job in table(app, "queue").views, what="the retry queued")
        view = clocked.get(job)
        assert view.state == S.QUEUED and view.params["token"] == MASK
        row, _ = queries.get(clocked.db, job)
        assert clocked.box.open(row["secret_blob"]) == {"token": "n3w-secret"}

    drive(app, script)


def test_retry_without_secrets_needs_no_prompt(
    clocked: OpsService, clock: SettableClock, templates: Path
) -> None:
    job = failed_job(clocked, clock, SubmitRequest("echo", {"word": "hi"}))
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        table(app, "history").focus()
        await pilot.press("r")
        await until(pilot, lambda: job in table(app, "queue").views, what="the retry queued")
        assert not isinstance(app.screen, PromptScreen)
        assert clocked.get(job).state == S.QUEUED

    drive(app, script)


def test_enter_opens_the_job_detail(clocked: OpsService, put: Any) -> None:
    put("q1", template="deploy", params={"env": "[b]prod[/b]"}, tags=",nightly,")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, JobScreen) else None
        )
        await until(pilot, lambda: screen.job_view is not None, what="the job loaded")
        await pilot.pause()
        text = plain(screen.query_one("#job-fields", Static).content)
        assert "q1  deploy" in text
        assert "param env   [b]prod[/b]" in text
        assert "nightly" in text
        events = screen.query_one("#job-events", DataTable)
        assert events.row_count == 1
        assert str(events.get_row_at(0)[1]) == "submitted"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, JobScreen))

    drive(app, script)


def test_follow_shows_the_selected_jobs_log(clocked: OpsService, put: Any, add_logs: Any) -> None:
    put("r1", S.RUNNING, age=20)
    put("r2", S.RUNNING, age=10)
    add_logs("r2", ["second job"])
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = app.query_one(LogView)
        await until(pilot, lambda: view.job_id == "r1")
        running = table(app, "running")
        running.focus()
        running.move_cursor(row=1)  # without a focus change on the way: no selection event
        await pilot.press("f")
        await until(pilot, lambda: view.job_id == "r2" and view.lines, what="r2's log")
        assert view.has_focus and view.following
        assert view.lines[0].text == "second job"

    drive(app, script)


def test_priority_moves_a_queued_job(clocked: OpsService, put: Any) -> None:
    put("first", age=20)
    put("second", age=10)
    put("done", S.SUCCEEDED)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = table(app, "queue")
        assert row_ids(queue) == ["first", "second"]
        await pilot.press("down")
        ask = await prompt(pilot, "p")
        assert ask.query_one(Input).value == "5"
        await answer(pilot, "high")
        await until(pilot, lambda: row_ids(queue) == ["second", "first"], what="reordered")
        assert clocked.get("second").priority == 10
        assert queue.selected_id == "second"

        # only a job that has not started has a priority to change
        table(app, "history").focus()
        await pilot.press("p")
        await until(pilot, lambda: any("only a job waiting in the queue" in n for n in notes(app)))
        assert not isinstance(app.screen, PromptScreen)

    drive(app, script)


def test_filter_narrows_a_table_and_clears(clocked: OpsService, put: Any) -> None:
    put("d1", template="deploy", params={"env": "prod"}, age=30)
    put("e1", age=20)
    put("d2", template="deploy", params={"env": "dev"}, age=10)
    put("hd", S.FAILED, template="deploy")
    put("he", S.SUCCEEDED)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = table(app, "queue")
        await prompt(pilot, "slash")
        await answer(pilot, "deploy")
        assert row_ids(queue) == ["d1", "d2"]
        assert app.query_one("#pane-queue").border_subtitle == "filter: deploy"
        await prompt(pilot, "slash")
        await answer(pilot, "env=prod")
        assert row_ids(queue) == ["d1"]
        ask = await prompt(pilot, "slash")
        assert ask.query_one(Input).value == "env=prod"
        await answer(pilot, "")
        assert row_ids(queue) == ["d1", "e1", "d2"]
        assert app.query_one("#pane-queue").border_subtitle == ""

        # history filters in the store too (older pages must match the same words)
        history = table(app, "history")
        history.focus()
        await prompt(pilot, "slash")
        await answer(pilot, "deploy")
        await until(pilot, lambda: row_ids(history) == ["hd"])
        assert app.history_text == "deploy"

    drive(app, script)


# -- the log ------------------------------------------------------------------------------


@pytest.fixture
def logged(clocked: OpsService, put: Any, add_logs: Any) -> str:
    put("r1", S.RUNNING)
    add_logs("r1", ["first line", "[b]second[/b] line", "third line"])
    return "r1"


def test_save_writes_the_whole_log(clocked: OpsService, logged: str) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)
    saved = Path.cwd() / "opsconsole-r1.log"

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.log_job == "r1")
        await pilot.press("w")
        await until(pilot, lambda: f"saved the log of r1 to {saved}" in notes(app))

    drive(app, script)
    assert saved.read_text() == "first line\n[b]second[/b] line\nthird line\n"


def test_pager_without_a_terminal_is_a_notification(
    clocked: OpsService, logged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGER", "cat")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.log_job == "r1")
        await pilot.press("o")
        await until(pilot, lambda: any(n.startswith("cannot run $PAGER") for n in notes(app)))
        assert app.is_running

    drive(app, script)


def test_pager_gets_a_file_with_the_whole_log(
    clocked: OpsService, logged: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "paged"
    out.mkdir()
    monkeypatch.setenv("PAGER", f"cp -t '{out}'")
    app = OpsConsole(clocked, embed=False, start_feed=False)
    # headless tests have no terminal to hand over; everything else is the real path
    monkeypatch.setattr(app, "suspend", contextlib.nullcontext)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.log_job == "r1")
        await pilot.press("o")
        await until(pilot, lambda: list(out.iterdir()), what="the pager ran")

    drive(app, script)
    [paged] = out.iterdir()
    assert paged.name.startswith("opsconsole-r1-")
    assert paged.read_text() == "first line\n[b]second[/b] line\nthird line\n"
    assert not (Path(tempfile.gettempdir()) / paged.name).exists()  # the dump is removed


# -- views --------------------------------------------------------------------------------


def test_goto_jumps_to_panes_and_views(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await prompt(pilot, "colon")
        await answer(pilot, "hist")
        assert table(app, "history").has_focus
        await prompt(pilot, "colon")
        await answer(pilot, "log")
        assert app.query_one(LogView).has_focus
        await prompt(pilot, "colon")
        await answer(pilot, "stats")
        await until(pilot, lambda: isinstance(app.screen, StatsScreen))
        await pilot.press("escape")
        await prompt(pilot, "colon")
        await answer(pilot, "nowhere")
        assert any(n.startswith("no view 'nowhere'") for n in notes(app))

    drive(app, script)


def test_locks_show_holders_and_waiters(clocked: OpsService, put: Any) -> None:
    key = {"concurrency_key": "deploy-prod", "concurrency_limit": 1, "template": "deploy"}
    put("holder", S.RUNNING, age=60, **key)
    put("waiter", age=30, **key)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("L")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, LocksScreen) else None
        )
        await until(pilot, lambda: screen.table.row_count == 1)
        row = [str(c) for c in screen.table.get_row_at(0)]
        assert row == ["deploy-prod", "1", "holder (deploy)", "1m ago", "waiter"]
        await pilot.press("escape")

    drive(app, script)


def test_workers_view_resizes_a_worker(clocked: OpsService, clock: SettableClock) -> None:
    claim_store.register_worker(
        clocked.db, "host-a:w1", host="host-a", pid=4242, slots=2, now=clock.now(), version="t"
    )
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("W")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, WorkersScreen) else None
        )
        await until(pilot, lambda: screen.table.row_count == 1)
        ask = await prompt(pilot, "r")
        assert ask.query_one(Input).value == "2"
        await answer(pilot, "3")
        await until(pilot, lambda: str(screen.table.get_row_at(0)[3]) == "2→3")
        assert clocked.workers()[0].desired_slots == 3

        await prompt(pilot, "r")
        await answer(pilot, "lots")
        assert "not a number: lots" in notes(app)

    drive(app, script)


def test_events_view_is_live(clocked: OpsService, put: Any, templates: Path) -> None:
    put("old1")
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("E")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, EventsScreen) else None
        )
        events = screen.query_one("#events-table", DataTable)
        await until(pilot, lambda: events.row_count == 1)
        new = clocked.submit(SubmitRequest("echo", {"word": "x"}))
        await until(
            pilot,
            lambda: any(str(events.get_row_at(i)[1]) == new.id for i in range(events.row_count)),
            what="the new job's event",
        )

    drive(app, script)


def test_stats_view_counts_per_template(clocked: OpsService, put: Any) -> None:
    put("a", S.SUCCEEDED, took=2)
    put("b", S.FAILED, took=4)
    put("c", S.SUCCEEDED, template="deploy")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("S")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, StatsScreen) else None
        )
        await until(pilot, lambda: screen.table.row_count == 2)
        rows = {
            str(screen.table.get_row_at(i)[0]): [str(c) for c in screen.table.get_row_at(i)]
            for i in range(2)
        }
        assert rows["echo"][1:5] == ["2", "1", "1", "50%"]
        assert rows["deploy"][1:5] == ["1", "1", "0", "100%"]

    drive(app, script)


def test_next_pane_cycles_the_focus(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        seen = []
        for _ in range(4):
            await pilot.press("right_square_bracket")
            await pilot.pause()
            seen.append(app.focused.id if app.focused else None)
        assert seen == ["running", "history", "log", "queue"]

    drive(app, script)


def test_theme_toggles(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        assert app.theme == "textual-dark"
        await pilot.press("t")
        assert app.theme == "textual-light"
        await pilot.press("t")
        assert app.theme == "textual-dark"

    drive(app, script)


def test_quit_with_nothing_running_exits_at_once(clocked: OpsService) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app exited")

    drive(app, script)
    assert app.return_code == 0


def test_a_worker_that_cannot_work_is_a_banner_and_a_row_in_the_workers_view(
    clocked: OpsService, clock: SettableClock
) -> None:
    claim_store.register_worker(
        clocked.db, "host-a:w1", host="host-a", pid=4242, slots=3, now=clock.now(), version="t"
    )
    claim_store.heartbeat(
        clocked.db,
        "host-a:w1",
        clock.now(),
        lease_s=30,
        slots=3,
        busy=0,
        state="running",
        running=[],
        problem="cannot claim jobs: store sqlite:x: database or disk is full",
    )
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#workers-banner", Static)
        await until(pilot, lambda: banner.has_class("-visible"), what="the banner")
        assert "worker host-a:w1 cannot work: cannot claim jobs" in label_text(banner)
        await pilot.press("W")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, WorkersScreen) else None
        )
        await until(pilot, lambda: screen.table.row_count == 1)
        row = [str(getattr(c, "plain", c)) for c in screen.table.get_row("host-a:w1")]
        assert row[5] == "unhealthy"
        assert "disk is full" in row[7]

    drive(app, script)
