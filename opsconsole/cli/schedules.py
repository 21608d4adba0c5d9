"""`opsconsole schedules ...`.

(Foundation stub: filled in by its helper.)
"""

from __future__ import annotations

from typing import Any

import typer

schedules_app = typer.Typer(help="schedules", no_args_is_help=True)


def register(app: Any) -> None:
    app.add_typer(schedules_app, name="schedules")
