"""``logs`` and ``events``: read a job's log and the event stream, optionally following."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command
from opsconsole.cli.session import service
from opsconsole.core.errors import InvalidParams

POLL = 0.25
BATCH = 5000


def logs(
    job: Annotated[
        str,
        typer.Argument(
            metavar="JOB",
            help="Job id or a unique prefix.",
            show_default=False,
            autocompletion=complete.job_ids("any"),
        ),
    ],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing until the job ends.")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option(
            "-n", "--tail", metavar="N", help="Only the last N lines.", show_default=False
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Print control and bidi characters as they are, not escaped."),
    ] = False,
) -> None:
    """Print a job's log.

    The log is read from the store, so this works for a job on any worker. Ctrl-C stops
    following, never the job.

    Examples:

    \b
      opsconsole logs j7k2m9 --follow
      opsconsole logs j7k -n 50
    """
    svc = service()
    job_id = svc.resolve(job)
    if tail is not None and tail < 0:
        raise InvalidParams("--tail must be >= 0")
    cursor = 0
    if tail is not None:
        lines = svc.log_tail(job_id, tail) if tail else []
        output.log_lines(lines, raw=raw)
        cursor = lines[-1].seq if lines else _last_seq(job_id)
    else:
        cursor = _print_from(job_id, 0, raw)
    if not follow:
        return
    try:
        _follow(job_id, cursor, raw)
    except KeyboardInterrupt:
        output.stopped_following(job_id)


def _follow(job_id: str, cursor: int, raw: bool) -> None:
    """Print new lines until the job is final (its last lines included)."""
    from opsconsole.core.states import FINAL

    changed = threading.Event()
    stop = service().on_change(changed.set)
    try:
        while True:
            final = service().get(job_id).state in FINAL
            cursor = _print_from(job_id, cursor, raw)
            if final:
                return
            changed.wait(POLL)
            changed.clear()
    finally:
        stop()


def _last_seq(job_id: str) -> int:
    last = service().log_tail(job_id, 1)
    return last[-1].seq if last else 0


def _print_from(job_id: str, cursor: int, raw: bool) -> int:
    svc = service()
    while True:
        lines = svc.logs_since(job_id, cursor, limit=BATCH)
        if not lines:
            return cursor
        output.log_lines(lines, raw=raw)
        cursor = lines[-1].seq
        if len(lines) < BATCH:
            return cursor


def events(
    job: Annotated[
        str | None,
        typer.Option(
            "--job",
            metavar="JOB",
            help="Only this job's events.",
            show_default=False,
            autocompletion=complete.job_ids("any"),
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new events.")
    ] = False,
    limit: Annotated[
        int, typer.Option(metavar="N", help="How many recent events to start with.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the event stream: the audit trail of every job.

    Examples:

    \b
      opsconsole events --follow
      opsconsole events --job j7k2m9 --json
    """
    svc = service()
    job_id = svc.resolve(job) if job else None
    recent = svc.recent_events(max(limit, 0), job=job_id)
    cursor = recent[-1].id if recent else svc.last_event_id()
    _print_events(recent, as_json, cursor)
    if not follow:
        return
    changed = threading.Event()  # set by the store's notifications (PostgreSQL)
    stop = svc.on_change(changed.set)
    try:
        while True:
            batch = svc.events_since(cursor, job=job_id, limit=1000)
            cursor = _print_events(batch, as_json, cursor)
            if not batch:
                changed.wait(POLL)
                changed.clear()
    finally:
        stop()


def _print_events(batch: list[Any], as_json: bool, cursor: int) -> int:
    if not batch:
        return cursor
    if as_json:
        for e in batch:
            output.emit_json(e.to_dict())
    else:
        from rich.text import Text

        for e in batch:
            t = Text(f"{e.ts:%Y-%m-%d %H:%M:%S}Z  {output.visible(e.job_id)}  ")
            t.append(f"{e.kind:<16}", style=output.STATE_STYLES.get(e.state or "", ""))
            t.append(output.visible(f" {e.actor}  {e.message}"))
            output.console().print(t)
    return batch[-1].id


def register(app: Any) -> None:
    app.command("logs", cls=Command)(logs)
    app.command("events", cls=Command)(events)
