"""The log tail: selection, following, "N new lines", older lines on scroll, search, and
hostile output (markup, escape sequences, a 10 MB line, undecodable bytes)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui_support import drive, log_screen, notes, until

from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.log_actions import TAIL
from opsconsole.tui.screens.dialogs import PromptScreen
from opsconsole.tui.widgets.job_table import JobTable, key_params
from opsconsole.tui.widgets.log_pane import RENDER_MAX, TRUNCATED, LogView

S = JobState


def numbered(prefix: str, n: int, start: int = 1) -> list[str]:
    return [f"{prefix} {i:04d}" for i in range(start, start + n)]


def shown(view: LogView) -> list[str]:
    return [row for row in log_screen(view) if row]


def subtitle(app: OpsConsole) -> str:
    return str(app.query_one("#pane-log").border_subtitle)


async def loaded(pilot: Pilot[None], app: OpsConsole, job_id: str, lines: int) -> LogView:
    view = app.query_one(LogView)
    await until(
        pilot,
        lambda: view.job_id == job_id and len(view.lines) == lines,
        what=f"{lines} lines of {job_id} in the log pane",
    )
    await pilot.pause()
    return view


def test_selecting_a_job_shows_its_log_and_follows_it(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    put("run1", S.RUNNING, age=20)
    put("run2", S.RUNNING, age=10)
    add_logs("run1", numbered("one", 3))
    add_logs("run2", numbered("two", 3))
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "run1", 3)  # the first running job is shown at start
        assert shown(view) == ["one 0001", "one 0002", "one 0003"]
        assert str(app.query_one("#pane-log").border_title) == "Log run1 echo · running"

        app.query_one("#running", JobTable).focus()
        await pilot.press("down")
        view = await loaded(pilot, app, "run2", 3)
        assert shown(view) == ["two 0001", "two 0002", "two 0003"]

        add_logs("run2", ["two appended"])
        add_logs("run1", ["not this job's"])
        await until(pilot, lambda: len(view.lines) == 4, what="the appended line")
        await pilot.pause()
        assert shown(view)[-1] == "two appended"
        assert subtitle(app) == "following"

    drive(app, script)


def test_scrolling_up_pauses_and_counts_new_lines_until_end(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    put("run1", S.RUNNING)
    add_logs("run1", numbered("line", 300))
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "run1", 300)
        assert shown(view)[-1] == "line 0300"
        view.focus()
        await pilot.press("pageup")
        await until(pilot, lambda: not view.following, what="following stops")

        add_logs("run1", numbered("new", 5))
        await until(pilot, lambda: view.new_lines == 5, what="5 new lines counted")
        await pilot.pause()
        assert subtitle(app) == "paused · 5 new lines · End to follow"
        assert not any(row.startswith("new") for row in shown(view))

        await pilot.press("end")
        await until(pilot, lambda: view.following and view.new_lines == 0)
        await pilot.pause()
        assert shown(view)[-1] == "new 0005"
        assert subtitle(app) == "following"

        add_logs("run1", ["after end"])
        await until(pilot, lambda: shown(view)[-1] == "after end", what="following again")

    drive(app, script)


def test_scrolling_to_the_top_loads_older_lines_from_the_store(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    total = TAIL + 600
    put("big", S.RUNNING)
    add_logs("big", numbered("line", total))
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "big", TAIL)
        assert view.lines[0].seq == total - TAIL + 1
        assert view.has_older
        view.focus()
        await pilot.press("home")
        await until(pilot, lambda: len(view.lines) == total, what="the older lines")
        await pilot.pause()
        assert [ln.seq for ln in view.lines] == list(range(1, total + 1))
        assert not view.has_older
        # the rows on screen did not jump: the line at the top is the one that was there
        assert shown(view)[0] == f"line {total - TAIL + 1:04d}"
        await pilot.press("home")
        await pilot.pause()
        assert shown(view)[0] == "line 0001"

    drive(app, script)


def test_a_capped_log_shows_the_truncation_marker(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    put("capped", S.RUNNING)
    add_logs("capped", numbered("line", 25), cap=10)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "capped", 10)
        rows = shown(view)
        marker = "── [opsconsole] log truncated: 16 lines dropped here (log cap 10 lines) ──"
        width = view.size.width  # long lines are cut at the pane's edge, not wrapped
        assert rows == [
            *numbered("line", 5),
            marker[:width].rstrip(),
            *numbered("line", 4, start=22),
        ]
        strip = view.render_line(5)
        assert TRUNCATED.reverse and any(s.style and s.style.reverse for s in strip)

    drive(app, script)


def test_hostile_lines_are_plain_text_and_bounded(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    put("evil", S.RUNNING, params={"word": "[red]x[/red]\x1b[2Jwiped"})
    huge = "x" * 10_000_000
    add_logs(
        "evil",
        [
            "[/bold] and [red]x[/red] [link=http://e.invalid]link[/link]",
            "\x1b[2Jcleared \x1b]0;title\x07after \x1b[31mred\x1b[0m",
            "bad bytes: \ufffd\ufffd(",
            huge,
            "after the huge line",
        ],
    )
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "evil", 5)
        rows = log_screen(view)
        assert rows[0] == "[/bold] and [red]x[/red] [link=http://e.invalid]link[/link]"
        assert rows[1] == "cleared after red"
        assert rows[2] == "bad bytes: \ufffd\ufffd("
        assert rows[4] == "after the huge line"

        # the 10 MB line: cut once when loaded, so each frame costs one screen row
        assert len(view._texts[3]) < RENDER_MAX + 60
        assert view._texts[3].endswith(f"… [{10_000_000 - RENDER_MAX} more characters]")
        assert view.virtual_size.width <= RENDER_MAX + 40
        strip = view.render_line(3)
        assert strip.cell_length == view.size.width
        assert rows[3] == "x" * view.size.width

        running = app.query_one("#running", JobTable)
        params = running.get_cell("evil", "params").plain
        # markup literal; a parameter is not job output: its escape is shown, not stripped
        assert params.startswith("word=[red]x[/")  # the column cuts it
        assert key_params(running.views["evil"], 100).startswith("word=[red]x[/red]\\x")
        assert "\x1b" not in params

    drive(app, script)


def test_search_moves_between_matches_and_context_filters(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    put("run1", S.RUNNING)
    add_logs(
        "run1", [f"line {i:03d}" + (" ERROR here" if i % 10 == 0 else "") for i in range(1, 101)]
    )
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "run1", 100)
        view.focus()
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), what="search prompt")
        await pilot.press(*"error", "enter")
        await until(pilot, lambda: view.matches, what="search results")
        assert view.matches == list(range(10, 101, 10))
        assert view.match_at in view.matches
        assert "/error: 10 matches" in subtitle(app)
        first = view.match_at
        assert first is not None
        await pilot.press("n")
        assert view.match_at == (first + 10 if first < 100 else 10)
        await pilot.press("N", "N")
        assert view.match_at == (first - 10 if first > 10 else 100)
        assert not view.following

        await pilot.press("x")
        await pilot.pause()
        assert "showing matching lines with context" in notes(app)
        rows = shown(view)
        assert f"line {view.match_at:03d} ERROR here" in rows  # the current match stays in view
        near = {f"line {i:03d}" for m in view.matches for i in range(m - 3, m + 4)}
        assert {r.removesuffix(" ERROR here") for r in rows} <= near
        await pilot.press("home")
        await pilot.pause()
        assert shown(view)[:8] == [
            f"line {i:03d}" + (" ERROR here" if i == 10 else "")
            for i in [7, 8, 9, 10, 11, 12, 13, 17]
        ]
        await pilot.press("x")
        await pilot.pause()
        assert view.virtual_size.height == 100
        assert "showing every line" in notes(app)

    drive(app, script)


def test_a_match_outside_the_window_loads_around_it_and_end_returns(
    clocked: OpsService, put: Any, add_logs: Any
) -> None:
    total = TAIL + 1000
    put("big", S.RUNNING)
    add_logs("big", ["needle at the start", *numbered("line", total - 1, start=2)])
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await loaded(pilot, app, "big", TAIL)
        view.focus()
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), what="search prompt")
        await pilot.press(*"needle", "enter")
        await until(pilot, lambda: view.match_at == 1, what="the far match")
        await pilot.pause()
        assert view.tail_dropped and not view.following
        assert "needle at the start" in log_screen(view)
        assert "End to follow" in subtitle(app)

        await pilot.press("end")
        await until(
            pilot,
            lambda: view.lines and view.lines[-1].seq == total and view.following,
            what="the tail again",
        )
        await pilot.pause()
        assert shown(view)[-1] == f"line {total:04d}"

    drive(app, script)
