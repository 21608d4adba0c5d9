"""The ``opsconsole`` command: global options, the service built lazily, errors in one place.

The root callback only records options: ``--help`` and usage errors never open the store.
Commands call ``service()`` when they need it. Every OpsError becomes one line on stderr
and an exit code here (``OpsGroup.invoke``); tracebacks only with ``-v``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from opsconsole import __version__
from opsconsole.cli.exit_codes import ExitCode, code_for, fail
from opsconsole.core.errors import OpsError

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.service import OpsService


class _State:
    def __init__(self) -> None:
        self.flags: dict[str, Any] = {}
        self.verbose = False
        self._settings: Settings | None = None
        self._service: OpsService | None = None

    def reset(self, flags: dict[str, Any], verbose: bool) -> None:
        self.flags = flags
        self.verbose = verbose
        self._settings = None
        self._service = None

    def settings(self) -> Settings:
        if self._settings is None:
            from opsconsole.config import load_settings

            self._settings = load_settings(**self.flags)
        return self._settings

    def service(self) -> OpsService:
        if self._service is None:
            from opsconsole.runtime import open_service

            self._service = open_service(self.settings(), notice=notice)
        return self._service


def notice(text: str, *, transient: bool = False) -> None:
    """What the store says that is not an error (a new store, files made private): stderr.

    A passing wait (a locked store) goes to stderr only on a terminal, where someone is
    watching; otherwise to the log, which a worker writes and a script's command does not.
    """
    if transient and not sys.stderr.isatty():
        logging.getLogger("opsconsole.store").info("%s", text)
        return
    sys.stderr.write(f"opsconsole: {text}\n")
    sys.stderr.flush()


STATE = _State()


def service() -> OpsService:
    return STATE.service()


def settings() -> Settings:
    return STATE.settings()


class OpsGroup(TyperGroup):
    """Turns every OpsError into one stderr line and its exit code."""

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
    help="Operations console: submit, approve, watch and audit jobs from a terminal.",
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
        typer.Option(help="State directory [env: OPSCONSOLE_HOME].", show_default=False),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Store URL or SQLite path [env: OPSCONSOLE_DB].", show_default=False),
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="Template catalog directory [env: OPSCONSOLE_CATALOG].", show_default=False
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Tracebacks on internal errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Operations console: submit, approve, watch and audit jobs from a terminal.

    With no command, opens the console (the same as `opsconsole tui`).
    """
    STATE.reset({"home": home, "db": db, "catalog": catalog}, verbose)
    if ctx.invoked_subcommand is None:
        from opsconsole.cli.console import run_console

        run_console(workers=None)


def _register() -> None:
    from opsconsole.cli import admin, catalog, console, jobs, logs, worker

    for module in (jobs, logs, catalog, worker, admin, console):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="opsconsole")
    except BrokenPipeError:  # pragma: no cover - output piped into `head`
        sys.exit(ExitCode.OK)
