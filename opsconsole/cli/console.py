"""``opsconsole tui`` (and a bare ``opsconsole``): open the Textual console.

Textual is imported here, only when the console opens, so every other command stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from opsconsole.cli.helptext import Command
from opsconsole.cli.session import service
from opsconsole.core.errors import InvalidParams


def run_console(workers: int | None, no_workers: bool = False) -> None:
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise InvalidParams(
            "the console needs a terminal; for scripts use the commands (`opsconsole --help`)"
        )
    from opsconsole.tui.app import OpsConsole

    embed = False if no_workers else (True if workers else None)
    OpsConsole(service(), workers=workers, embed=embed).run()


def tui(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            metavar="N",
            help="Run an embedded worker pool of N slots.",
            show_default=False,
        ),
    ] = None,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Never run an embedded worker pool.")
    ] = False,
) -> None:
    """Open the console. On SQLite with no other worker alive it runs a pool in-process."""
    if workers is not None:
        from opsconsole.config import check_slots

        check_slots(workers, "--workers")
    run_console(workers, no_workers)


def register(app: Any) -> None:
    app.command("tui", cls=Command)(tui)
