"""`opsconsole webhooks ...`.

(Foundation stub: filled in by its helper.)
"""

from __future__ import annotations

from typing import Any

import typer

webhooks_app = typer.Typer(help="webhooks", no_args_is_help=True)


def register(app: Any) -> None:
    app.add_typer(webhooks_app, name="webhooks")
