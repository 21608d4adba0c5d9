"""The ``opsconsole`` command: global options, the service built lazily, errors in one place.

The root callback only records options (in ``session``): ``--help`` and usage errors never
open the store. Commands call ``session.service()`` (or ``session.catalog()``) when they
need it; they never import this module, which imports them. Every OpsError becomes one
line on stderr and an exit code here (``OpsGroup.invoke``); tracebacks only with ``-v``.
A shell asking for completions is answered by ``complete`` before any of that runs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from opsconsole import __version__
from opsconsole.cli import complete
from opsconsole.cli.coerce import plain
from opsconsole.cli.exit_codes import ExitCode, code_for, fail
from opsconsole.cli.session import STATE, STDERR_LOG
from opsconsole.cli.tree import LazyCommands, LazyGroup
from opsconsole.core.errors import OpsError


class OpsGroup(LazyGroup):
    """Turns every OpsError into one stderr line and its exit code; builds only the command
    that runs (``tree``)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMANDS, rich_markup_mode=attrs.get("rich_markup_mode"))
        plain(self)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpsError as exc:
            fail(str(exc))
            raise typer.Exit(code_for(exc)) from None
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            # Typer's own exit and usage errors (its vendored click's, not the `click`
            # package's): Typer prints them and picks the exit code
            raise
        except BrokenPipeError:
            # the reader went away (`| head`): not an error worth a traceback
            sys.stderr.close()
            raise typer.Exit(ExitCode.OK) from None
        except Exception as exc:
            if STATE.verbose:
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (rerun with -v for details)")
            raise typer.Exit(ExitCode.INTERNAL) from None


app = typer.Typer(
    cls=OpsGroup,
    name="opsconsole",
    help="Operations console: submit, watch and audit jobs from a terminal.\n\n"
    "With no command, opens the console (the same as `opsconsole tui`).\n\n"
    "Examples:\n\n\b\n"
    "  opsconsole templates list\n"
    "  opsconsole submit hello -p name=ops --wait\n"
    "  opsconsole jobs list\n"
    "  opsconsole logs JOB --follow",
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsconsole {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="State directory [env: OPSCONSOLE_HOME].", show_default=False
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            metavar="URL|PATH",
            help="Store URL or SQLite path [env: OPSCONSOLE_DB].",
            show_default=False,
        ),
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Template catalog directory [env: OPSCONSOLE_CATALOG].",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Tracebacks on internal errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    install_completion: Annotated[
        complete.Shell | None,
        typer.Option(
            "--install-completion",
            callback=complete.install_script,
            is_eager=True,
            expose_value=False,
            metavar="SHELL",
            help="Install Tab completion for bash, zsh or fish (in your home directory).",
            show_default=False,
        ),
    ] = None,
    show_completion: Annotated[
        complete.Shell | None,
        typer.Option(
            "--show-completion",
            callback=complete.show_script,
            is_eager=True,
            expose_value=False,
            metavar="SHELL",
            help="Print the completion script for bash, zsh or fish, to install it yourself.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Record the global options; with no command, open the console."""
    STATE.reset({"home": home, "db": db, "catalog": catalog}, verbose)
    ctx.call_on_close(STATE.close)
    if ctx.invoked_subcommand is None:
        from opsconsole.cli.console import run_console

        run_console(workers=None)


COMMANDS = typer.Typer()
"""Where the command modules register their commands and groups: the root group builds
each from here when it is used (``tree.LazyCommands``), not all of them on every run."""


def _register() -> None:
    from opsconsole.cli import (
        admin,
        approvals,
        audit,
        catalog,
        checks,
        console,
        freeze,
        instances,
        jobs,
        logs,
        reviews,
        schedules,
        webhooks,
        worker,
    )

    for module in (
        jobs,
        approvals,
        instances,
        schedules,
        checks,
        webhooks,
        reviews,
        freeze,
        logs,
        audit,
        catalog,
        worker,
        admin,
        console,
    ):
        module.register(COMMANDS)


_register()


def main() -> None:
    """Console-script entry point."""
    if os.environ.get(complete.COMPLETE_VAR):
        complete.answer(typer.main.get_command(app))
    logging.getLogger().addHandler(STDERR_LOG)
    try:
        app(prog_name="opsconsole")
    except BrokenPipeError:  # pragma: no cover - output piped into `head`
        sys.exit(ExitCode.OK)
