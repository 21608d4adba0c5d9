"""`opsconsole checks list|show`: the recurring checks' statuses, for people and monitoring.

``checks list`` exits like a Nagios plugin, so cron or a monitoring system can run it as one:
0 every check is ok (or there is none), 1 the worst is warning, 2 critical, 3 unknown
(critical outranks warning, which outranks unknown). ``checks show`` exits 0, or 3 for a
check that never ran. Errors keep the usual codes (``cli/exit_codes.py``: a usage error is
also 2, an unreachable store 5), with one line on stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

if TYPE_CHECKING:
    from rich.text import Text

    from opsconsole.core.checks import CheckDetail, CheckView

checks_app = typer.Typer(
    help="Recurring checks: their status, since when, last output.",
    no_args_is_help=True,
)

STATUS_EXIT = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
"""``checks list``'s exit code for the worst status: the Nagios plugin codes."""

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="Check name: its schedule's name, or its template's for a check run by hand.",
        show_default=False,
        autocompletion=complete.check_names,
    ),
]


def styled_status(status: str) -> Text:
    from rich.text import Text

    from opsconsole.core.text import CHECK_STYLES

    return Text(status.upper() if status != "ok" else "ok", style=CHECK_STYLES.get(status, ""))


def _latency(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:g} ms"


def _strip(view: CheckView, width: int = 20) -> str:
    """The last results as one letter each, oldest first (what a sparkline shows, in text)."""
    letters = {"ok": ".", "warning": "w", "critical": "C", "unknown": "?"}
    return "".join(letters.get(r.status, "?") for r in view.recent[-width:])


@checks_app.command("list", cls=Command)
def list_checks(as_json: JsonOpt = False) -> None:
    """List checks: status, since when, last output, last run.

    Exits 0 only when every check is ok; else 1 (worst is warning), 2 (critical) or
    3 (unknown), as a Nagios plugin does, for cron and monitoring.

    Examples:

    \b
      opsconsole checks list
      opsconsole checks list --json | jq -r '.checks[] | select(.status != "ok") | .name'
    """
    from opsconsole.core.checks import overall

    views = service().checks()
    worst = overall(views)
    if as_json:
        output.emit_json({"status": worst, "checks": [v.to_dict() for v in views]})
    elif not views:
        output.line("no check yet (a check appears when its first job ends)")
    else:
        output.table(
            None,
            ["CHECK", "STATUS", "SINCE", "LAST RUN", "LATENCY", "RECENT", "OUTPUT"],
            [
                (
                    v.name,
                    styled_status(v.status),
                    output.ago(v.since),
                    f"{output.ago(v.last_at)} ({v.last_job or '-'})",
                    _latency(v.latency_ms),
                    _strip(v),
                    v.output,
                )
                for v in views
            ],
        )
    raise typer.Exit(STATUS_EXIT.get(worst, 3))


@checks_app.command("show", cls=Command)
def show(
    name: NameArg,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=500, help="Results to list.")
    ] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show one check and its recent results, newest first.

    Examples:

    \b
      opsconsole checks show web-health
      opsconsole checks show web-health -n 50 --json
    """
    detail = service().check(name, limit=limit)
    if as_json:
        output.emit_json(detail.to_dict())
        return
    _detail(detail)


def _detail(detail: CheckDetail) -> None:
    from rich.table import Table

    view = detail.view
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("check", view.name),
        ("template", view.template),
        ("status", styled_status(view.status)),
        ("since", f"{view.since:%Y-%m-%d %H:%M:%S}Z ({output.ago(view.since)})"),
        ("last run", f"{view.last_at:%Y-%m-%d %H:%M:%S}Z (job {view.last_job or '-'})"),
        ("latency", _latency(view.latency_ms)),
        ("output", view.output or "-"),
    ]
    for label, value in rows:
        grid.add_row(label, value if not isinstance(value, str) else output.plain(value))
    output.rows_out(grid)
    output.table(
        "results",
        ["AT", "STATUS", "LATENCY", "JOB", "OUTPUT"],
        [
            (
                f"{r.at:%Y-%m-%d %H:%M:%S}Z",
                styled_status(r.status),
                _latency(r.latency_ms),
                r.job_id or "-",
                r.output,
            )
            for r in detail.results
        ],
    )


def register(app: Any) -> None:
    app.add_typer(checks_app, name="checks")
