"""``audit``: who did what to which job, newest first, one keyset page at a time."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service


def audit(
    since: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="Only events within this duration (e.g. 1h)."),
    ] = None,
    actor: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only what this account did.")
    ] = None,
    job: Annotated[
        str | None,
        typer.Option(
            metavar="JOB",
            help="Only this job (id or unique prefix).",
            autocompletion=complete.job_ids("any"),
        ),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            metavar="ACTION",
            help="Only this action: a verb (cancel, retry, approve, ...) or an event kind.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="Events per page.")] = 50,
    before: Annotated[
        int | None,
        typer.Option(
            metavar="EVENT",
            help="The next (older) page: the event id the previous page named.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the audit trail: every action on every job, newest first.

    Shows the time, who acted, the action, the job, the state it left the job in and the
    message or reason. Progress ticks are not audit and never appear. No command edits or
    deletes the trail.

    Examples:

    \b
      opsconsole audit --since 1h
      opsconsole audit --actor alice --action cancel --json
      opsconsole audit --job j7k2m9
    """
    from opsconsole.core.audit import AuditRequest

    page = service().audit(
        AuditRequest(since=since, actor=actor, job=job, action=action, before=before, limit=limit)
    )
    if as_json:
        output.emit_json(page.to_dict())
        return
    output.table(
        None,
        ["TIME", "BY", "ACTION", "JOB", "STATE", "MESSAGE"],
        [
            (
                f"{e.ts:%Y-%m-%d %H:%M:%S}Z",
                e.actor or "-",
                e.kind,
                e.job_id,
                output.styled_state(e.state or ""),
                e.message,
            )
            for e in page.events
        ],
    )
    if not page.events:
        output.note("no events match")
    elif page.next_before is not None:
        output.note(f"older events: opsconsole audit --before {page.next_before} (same filters)")


def register(app: Any) -> None:
    app.command("audit", cls=Command)(audit)
