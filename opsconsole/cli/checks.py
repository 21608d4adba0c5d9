"""`opsconsole checks ...`.

(Foundation stub: filled in by its helper.)
"""

from __future__ import annotations

from typing import Any

import typer

checks_app = typer.Typer(help="checks", no_args_is_help=True)


def register(app: Any) -> None:
    app.add_typer(checks_app, name="checks")
