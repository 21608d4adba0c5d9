"""Freeze commands: ``freeze set``, ``freeze list`` and ``freeze lift ID``.

A freeze stops new claims of matching jobs (running jobs go on) until it is lifted or its
``--until`` time passes. Exit codes: 0 done; 2 bad input (no reason, no or several scopes,
an end in the past, a freeze that already ended); 3 no such freeze; 4 the caller is not an
admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service
from opsconsole.core.errors import InvalidParams

if TYPE_CHECKING:
    from datetime import datetime

    from opsconsole.core.freezes import FreezeView

freeze_app = typer.Typer(
    help="Stop new claims of matching jobs for a while.",
    no_args_is_help=True,
)


def parse_until(text: str, now: datetime) -> datetime:
    """A duration from now (``2h``, ``30m``) or an ISO 8601 time (local time without a zone)."""
    from datetime import timedelta

    from opsconsole.core.catalog import parse_duration
    from opsconsole.core.clock import parse_datetime

    try:
        return now + timedelta(seconds=parse_duration(text))
    except InvalidParams:
        pass
    try:
        return parse_datetime(text)
    except InvalidParams:
        raise InvalidParams(
            f"invalid --until '{text[:40]}': a duration (2h, 30m) or an ISO 8601 time "
            "(2026-05-01T14:30Z)"
        ) from None


@freeze_app.command("set", cls=Command)
def set_freeze(
    all_jobs: Annotated[bool, typer.Option("--all", help="Freeze every job.")] = False,
    tag: Annotated[
        str | None,
        typer.Option(metavar="TAG", help="Freeze the jobs with this tag.", show_default=False),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(metavar="TEAM", help="Freeze the jobs of this team.", show_default=False),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            metavar="KEY", help="Freeze the jobs with this concurrency key.", show_default=False
        ),
    ] = None,
    reason: Annotated[
        str,
        typer.Option(metavar="TEXT", help="Why (required, one line); shown on every frozen job."),
    ] = "",
    until: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="End it then: a duration (2h) or an ISO 8601 time. Default: until lifted.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop new claims of matching jobs (admin role); running jobs go on.

    Give exactly one of --all, --tag, --team or --key. A queued job the freeze holds says
    so in `jobs list`, `jobs show` and the console's queue.

    Examples:

    \b
      opsconsole freeze set --all --reason "datacenter move" --until 2h
      opsconsole freeze set --team web --reason "sale weekend" --until 2026-05-04T08:00
    """
    from opsconsole.core.freezes import FreezeRequest

    svc = service()
    end = parse_until(until, svc.now()) if until is not None else None
    view = svc.set_freeze(
        FreezeRequest(reason=reason, all=all_jobs, tag=tag, team=team, key=key, until=end)
    )
    _print(view, as_json, "frozen")


@freeze_app.command("list", cls=Command)
def list_freezes(
    include_ended: Annotated[
        bool, typer.Option("--all", help="Also the lifted and ended freezes, newest first.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the active freezes, oldest first.

    Examples:

    \b
      opsconsole freeze list
      opsconsole freeze list --all --json
    """
    views = service().freezes(include_ended=include_ended)
    if as_json:
        output.emit_json([v.to_dict() for v in views])
        return
    if not views:
        output.line("no freeze is active" if not include_ended else "no freezes")
        return
    output.table(
        None,
        ["ID", "FREEZES", "REASON", "BY", "SINCE", "UNTIL", "STATUS"],
        [
            [
                v.id,
                v.target,
                v.reason,
                v.created_by,
                output.ago(v.created_at),
                output.ago(v.until) if v.until else "lifted",
                v.status if v.status != "lifted" else f"lifted by {v.lifted_by}",
            ]
            for v in views
        ],
    )


@freeze_app.command("lift", cls=Command)
def lift(
    freeze_id: Annotated[
        str, typer.Argument(metavar="ID", help="The freeze's id (`freeze list`).")
    ],
    reason: Annotated[
        str,
        typer.Option(metavar="TEXT", help="Optional; kept in the audit trail."),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """End a freeze now (admin role); its jobs may be claimed again.

    Examples:

    \b
      opsconsole freeze lift 3 --reason "move done"
    """
    if not freeze_id.isdigit() or len(freeze_id) > 12:
        raise InvalidParams(f"a freeze id is a number (`freeze list`), not '{freeze_id[:20]}'")
    view = service().lift_freeze(int(freeze_id), reason=reason)
    _print(view, as_json, "lifted")


def _print(view: FreezeView, as_json: bool, what: str) -> None:
    if as_json:
        output.emit_json(view.to_dict())
        return
    end = f" until {view.until:%Y-%m-%d %H:%M}Z" if view.until and what == "frozen" else ""
    output.line(f"freeze {view.id}: {view.target} {what}{end}: {view.reason}")


def register(app: Any) -> None:
    app.add_typer(freeze_app, name="freeze")
