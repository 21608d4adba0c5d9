"""``templates list|show``: the catalog an operator submits from."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.exit_codes import ExitCode, fail
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import catalog

templates_app = typer.Typer(help="The job templates of the catalog.", no_args_is_help=True)


@templates_app.command("list", cls=Command)
def list_templates(
    as_json: JsonOpt = False,
) -> None:
    """List the catalog's templates.

    Broken template files are reported on stderr and skipped. Exits 3 (not found) when
    the catalog itself cannot be read: no such directory, or no templates/ in it.

    Examples:

    \b
      opsconsole templates list
      opsconsole templates list --json
    """
    svc = catalog()
    views = svc.templates()
    problems = svc.catalog_problems()
    error = svc.catalog_error()
    if as_json:
        listing = {"templates": [v.to_dict() for v in views], "problems": problems}
        output.emit_json({**listing, "error": error} if error else listing)
        if error:
            raise typer.Exit(ExitCode.NOT_FOUND)
        return
    if error:
        fail(error)
        raise typer.Exit(ExitCode.NOT_FOUND)
    output.table(
        None,
        ["NAME", "RUNNER", "PARAMS", "DESCRIPTION"],
        [
            (
                v.name,
                v.runner,
                " ".join(p.name + ("*" if p.required else "") for p in v.params),
                v.description,
            )
            for v in views
        ],
    )
    _warn(problems)
    if not views and not problems:
        sys.stderr.write(
            f"opsconsole: the catalog has no templates yet: add a template file (NAME.yaml) "
            f"to {output.visible(str(svc.catalog.directory))}/\n"
        )


@templates_app.command("show", cls=Command)
def show_template(
    name: Annotated[
        str,
        typer.Argument(
            metavar="TEMPLATE",
            help="Template name.",
            show_default=False,
            autocompletion=complete.template_names,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Show a template: what it runs and its parameters.

    Examples:

    \b
      opsconsole templates show deploy-app
    """
    v = catalog().template(name)
    if as_json:
        output.emit_json(v.to_dict())
        return
    output.line(v.name, style="bold")
    if v.description:
        output.line(v.description, multiline=True)
    output.line(f"runner: {v.runner}   runs: {v.runs}")
    extras = [f"priority {v.to_dict()['priority_name']}", f"retries {v.retries}"]
    if v.timeout_s:
        extras.append(f"timeout {output.fmt_duration(v.timeout_s)}")
    if v.concurrency_key:
        extras.append(f"lock {v.concurrency_key} (limit {v.concurrency_limit})")
    extras.append(f"on interrupt: {v.on_interrupt}")
    output.line("   ".join(extras), style="dim")
    output.table(
        "parameters",
        ["NAME", "TYPE", "REQUIRED", "DEFAULT", "RULE", "DESCRIPTION"],
        [
            (
                p.name,
                p.type + (" (secret)" if p.secret else ""),
                "yes" if p.required else "",
                ""
                if p.default is None
                else json.dumps(p.default)
                if not isinstance(p.default, str)
                else p.default,
                p.pattern or ("|".join(p.choices) if p.choices else _range(p.min, p.max)),
                p.description,
            )
            for p in v.params
        ],
    )


def _range(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return ""
    return f"{'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'}"


def _warn(problems: list[str]) -> None:
    for p in problems:
        sys.stderr.write(f"opsconsole: warning: skipped template: {output.visible(p)}\n")


def register(app: Any) -> None:
    app.add_typer(templates_app, name="templates")
