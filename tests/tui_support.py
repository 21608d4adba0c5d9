"""Helpers for the console tests (tests/tui): drive an app under Pilot with bounded waits.

pytest has no asyncio plugin here, so each test is a plain function that runs its Pilot
script with ``asyncio.run``. Every wait polls with ``pilot.pause`` against a deadline.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.widgets import DataTable, Label, Static

from opsconsole.tui.app import OpsConsole
from opsconsole.tui.widgets.log_pane import LogView

T = TypeVar("T")
Script = Callable[[Pilot[None]], Awaitable[None]]
WIDE = (160, 50)
NARROW = (80, 24)


async def until(
    pilot: Pilot[Any], predicate: Callable[[], T], timeout: float = 5.0, what: str = ""
) -> T:
    """Let the app run until ``predicate`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what or predicate}")
        await pilot.pause(0.02)


def drive(app: OpsConsole, script: Script, *, size: tuple[int, int] = WIDE) -> None:
    """Run ``app`` headless at ``size``, wait for its first load, then run ``script``."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.ready, what="the first load")
            await script(pilot)

    asyncio.run(main())


def row_ids(table: DataTable[Any]) -> list[str]:
    """Job ids in the order the table shows them."""
    return [str(row.key.value) for row in table.ordered_rows]


def cell_text(table: DataTable[Any], job_id: str, column: str) -> str:
    value = table.get_cell(job_id, column)
    return str(getattr(value, "plain", value))


def notes(app: OpsConsole) -> list[str]:
    """The notifications shown so far (Textual keeps no public list of them)."""
    return [n.message for n in app._notifications]


def label_text(widget: Label | Static) -> str:
    return str(widget.content)


def log_screen(view: LogView) -> list[str]:
    """The log pane's visible rows as text, rendered through the Line API."""
    return [view.render_line(y).text.rstrip() for y in range(view.size.height)]


def plain(renderable: Any, width: int = 120) -> str:
    """A Rich renderable (a detail table, a Static's content) as plain text."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()
