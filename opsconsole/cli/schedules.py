"""Schedule commands: ``schedules add|list|show|pause|resume|remove|run|run-missed|skip-to-now``.

Each is one ``OpsService`` call rendered by ``output``. Times print in the schedule's own zone
(the zone its cron is read in), with UTC beside them. Exit codes: 0 done; 1 ``run --wait``:
the job did not succeed; 2 bad input (a bad cron field, zone, duration or parameter, a name
taken, a template schedule removed by hand); 3 no such schedule or template; 4 the caller may
not submit jobs of the schedule's template.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

if TYPE_CHECKING:
    from datetime import datetime

    from opsconsole.core.schedules import FireView, ScheduleView

schedules_app = typer.Typer(
    help="Recurring jobs, and the ledger of every fire.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The schedule's name (see `schedules list`).",
        show_default=False,
        autocompletion=complete.schedule_names,
    ),
]

FIRE_STYLES = {"fired": "green", "missed": "red", "skipped": "yellow"}


def _local(ts: datetime | None, tz: str) -> str:
    """``2026-03-29 03:30 CEST (01:30Z)``: the schedule's wall clock, then UTC."""
    if ts is None:
        return "-"
    from zoneinfo import ZoneInfo

    local = ts.astimezone(ZoneInfo(tz))
    if tz == "UTC":
        return f"{local:%Y-%m-%d %H:%M:%S}Z"
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({ts:%H:%M:%S}Z)"


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _when(view: ScheduleView) -> str:
    return f"cron {view.cron} {view.tz}" if view.cron else f"every {view.every}"


def _last(view: ScheduleView) -> str:
    if not view.last_job:
        return "-"
    return f"{view.last_job} {view.last_job_state or ''}".strip()


@schedules_app.command("add", cls=Command)
def add(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A new schedule's name.", show_default=False)
    ],
    template: Annotated[
        str,
        typer.Option(
            metavar="TEMPLATE",
            help="The template each fire submits (see `templates list`).",
            show_default=False,
            autocompletion=complete.template_names,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            metavar="KEY=VALUE",
            help="A parameter of each job; repeatable. KEY=@FILE reads the value from a file "
            "(@- stdin): use it for secrets, which are kept sealed.",
            show_default=False,
            autocompletion=complete.param_names,
        ),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            metavar="EXPR",
            help='A crontab expression ("30 2 * * *", "*/15 * * * mon-fri", "@daily"): '
            "day of week 0 and 7 are Sunday.",
            show_default=False,
        ),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            metavar="ZONE",
            help="The IANA zone the cron's times are in (default UTC), e.g. Europe/Berlin.",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Fire at this interval instead (15m, 1h).", show_default=False
        ),
    ] = None,
    jitter: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Delay each fire's job by a random time up to this (the ledger keeps the "
            "fire time).",
            show_default=False,
        ),
    ] = None,
    catchup: Annotated[
        str,
        typer.Option(
            metavar="latest|all|skip",
            help="Fire times found already past (after downtime): run the newest one, each, "
            "or none. All are in the ledger.",
        ),
    ] = "latest",
    overlap: Annotated[
        str,
        typer.Option(
            metavar="skip|queue|allow",
            help="While the last fire's job is still live: skip this fire, queue it after "
            "that job, or run it anyway.",
        ),
    ] = "skip",
    as_json: JsonOpt = False,
) -> None:
    """Add a schedule: a template on a cron or interval.

    Give exactly one of --cron and --every. Each fire time gets a ledger row: fired (with
    its job), missed or skipped (with the reason).

    Examples:

    \b
      opsconsole schedules add rotate --template rotate-logs --cron "30 2 * * *" \\
          --tz Europe/Berlin
      opsconsole schedules add usage --template usage-limits -p enforce=false \\
          --every 1h --jitter 5m
    """
    from opsconsole.cli.jobs import fill_secrets, parse_params, warn_clear_secrets
    from opsconsole.core.schedules import ScheduleRequest

    params = parse_params(param or [])
    secret = [p for p in service().template(template).params if p.secret]
    required = [p.name for p in secret if p.required and p.default is None]
    fill_secrets(params, required)
    view = service().add_schedule(
        ScheduleRequest(
            name=name,
            template=template,
            params=params.values,
            cron=cron,
            tz=tz,
            every=every,
            jitter=jitter,
            catchup=catchup,
            overlap=overlap,
        )
    )
    warn_clear_secrets(params, [p.name for p in secret], required)
    if as_json:
        output.emit_json(view.to_dict())
        return
    output.line(
        f"schedule {view.name}: {view.template} {_when(view)}; "
        f"next fire {_local(view.next_fire_at, view.tz)}"
    )


@schedules_app.command("list", cls=Command)
def list_schedules(as_json: JsonOpt = False) -> None:
    """List schedules: next fire, last job and its state.

    Examples:

    \b
      opsconsole schedules list
      opsconsole schedules list --json
    """
    views = service().schedules()
    if as_json:
        output.emit_json([v.to_dict() for v in views])
        return
    if not views:
        output.line("no schedules (add one: opsconsole schedules add NAME --template T ...)")
        return
    output.table(
        None,
        ["NAME", "TEMPLATE", "WHEN", "NEXT FIRE", "LAST JOB", "STATE", "ORIGIN"],
        [
            (
                v.name,
                v.template,
                _when(v),
                "paused" if v.paused else _local(v.next_fire_at, v.tz),
                v.last_job or "-",
                output.styled_state(v.last_job_state) if v.last_job_state else "-",
                v.origin,
            )
            for v in views
        ],
    )


@schedules_app.command("show", cls=Command)
def show(
    name: NameArg,
    limit: Annotated[
        int, typer.Option(metavar="N", help="Ledger rows to show, newest first.", min=1)
    ] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show a schedule: its next 5 fires and its ledger.

    Fire times print in the schedule's zone, with UTC beside them.

    The ledger lists every fire time, newest first: fired (with the job and its state),
    missed (the store or every worker was down, or it was paused) or skipped (overlap, a
    freeze, the catch-up policy), with the reason.

    Examples:

    \b
      opsconsole schedules show nightly-rotate
      opsconsole schedules show nightly-rotate --limit 100 --json
    """
    detail = service().schedule(name, ledger=limit)
    if as_json:
        output.emit_json(detail.to_dict())
        return
    from rich.table import Table

    v = detail.view
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("schedule", v.name),
        ("template", v.template),
        ("when", _when(v)),
        ("params", ", ".join(f"{k}={_text(val)}" for k, val in v.params.items()) or "-"),
        ("jitter", v.jitter or "-"),
        ("catch-up", v.catchup),
        ("overlap", v.overlap),
        ("state", "paused" if v.paused else "active"),
        ("origin", v.origin),
        ("created by", v.created_by),
        ("last job", _last(v)),
    ]
    for i, t in enumerate(detail.next_fires):
        rows.append(("next fires" if i == 0 else "", _local(t, v.tz)))
    for label, value in rows:
        grid.add_row(label, output.plain(value))
    output.rows_out(grid)
    _ledger(detail.ledger, v.tz)


def _ledger(fires: list[FireView], tz: str) -> None:
    from rich.text import Text

    if not fires:
        output.line("ledger: no fire yet")
        return
    output.table(
        "ledger",
        ["FIRE TIME", "STATUS", "JOB", "JOB STATE", "REASON"],
        [
            (
                _local(f.fire_at, tz),
                Text(f.status, style=FIRE_STYLES.get(f.status, "")),
                f.job_id or "-",
                output.styled_state(f.job_state) if f.job_state else "-",
                f.reason or "-",
            )
            for f in fires
        ],
    )


@schedules_app.command("pause", cls=Command)
def pause(name: NameArg, as_json: JsonOpt = False) -> None:
    """Stop firing a schedule until it is resumed.

    The fire times that pass meanwhile are recorded missed ("paused") on resume.

    Examples:

    \b
      opsconsole schedules pause nightly-rotate
    """
    _print(service().pause_schedule(name), as_json, "paused")


@schedules_app.command("resume", cls=Command)
def resume(name: NameArg, as_json: JsonOpt = False) -> None:
    """Fire a paused schedule again from now.

    The fire times that passed while it was paused are recorded missed ("paused") and not
    run; `schedules run-missed` runs them on purpose.

    Examples:

    \b
      opsconsole schedules resume nightly-rotate
    """
    _print(service().resume_schedule(name), as_json, "resumed")


@schedules_app.command("remove", cls=Command)
def remove(name: NameArg, as_json: JsonOpt = False) -> None:
    """Remove a schedule; its ledger stays as history.

    A schedule declared by a template's schedule: block goes when the template stops
    declaring it.

    Examples:

    \b
      opsconsole schedules remove nightly-rotate
    """
    _print(service().remove_schedule(name), as_json, "removed")


@schedules_app.command("run", cls=Command)
def run(
    name: NameArg,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait for the job; exit 0 only if it succeeds, else say why on stderr."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fire a schedule now, whatever its times.

    The ledger records the fire as "run by YOU"; the next fire times do not change.

    Examples:

    \b
      opsconsole schedules run nightly-rotate --wait
    """
    from opsconsole.cli.jobs import wait_and_finish

    view = service().run_schedule(name)
    if wait:
        wait_and_finish(view, as_json)
        return
    if as_json:
        output.emit_json(view.to_dict())
    else:
        output.job_summary(view)


@schedules_app.command("run-missed", cls=Command)
def run_missed(name: NameArg, as_json: JsonOpt = False) -> None:
    """Run the fires the ledger lists as missed.

    A job for each fire missed while the store or every worker was down, oldest first;
    each ledger row becomes fired, with its job. Fires missed while the schedule was
    paused are left alone (pausing was the choice).

    Examples:

    \b
      opsconsole schedules run-missed nightly-rotate
    """
    views = service().run_missed(name)
    if as_json:
        output.emit_json([v.to_dict() for v in views])
        return
    if not views:
        output.line(f"schedule {name}: no missed fire to run")
        return
    for v in views:
        output.job_summary(v)


@schedules_app.command("skip-to-now", cls=Command)
def skip_to_now(name: NameArg, as_json: JsonOpt = False) -> None:
    """Skip the fire times that are due, and fire from now on.

    Each is recorded in the ledger as skipped, with who skipped it.

    Examples:

    \b
      opsconsole schedules skip-to-now nightly-rotate
    """
    count = service().skip_to_now(name)
    if as_json:
        output.emit_json({"schedule": name, "skipped": count})
        return
    output.line(f"schedule {name}: {count} fire time(s) skipped")


def _print(view: ScheduleView, as_json: bool, what: str) -> None:
    if as_json:
        output.emit_json(view.to_dict())
        return
    nxt = (
        ""
        if view.paused or what == "removed"
        else f"; next fire {_local(view.next_fire_at, view.tz)}"
    )
    output.line(f"schedule {view.name} {what}{nxt}")


def register(app: Any) -> None:
    app.add_typer(schedules_app, name="schedules")
