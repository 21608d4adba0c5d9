"""Job commands: ``submit`` and ``jobs list|show|cancel|retry|wait|after|priority``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.exit_codes import ExitCode
from opsconsole.cli.session import service
from opsconsole.core.errors import InvalidParams

if TYPE_CHECKING:
    from opsconsole.core.views import JobView

jobs_app = typer.Typer(help="List, inspect, cancel, retry and wait for jobs.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _job_arg(which: str) -> Any:
    """The job argument; Tab offers the jobs ``which`` (any, live, finished) it can act on."""
    return typer.Argument(
        help="Job id or a unique prefix of it.",
        show_default=False,
        autocompletion=complete.job_ids(which),
    )


JobArg = Annotated[str, _job_arg("any")]
LiveJobArg = Annotated[str, _job_arg("live")]
DoneJobArg = Annotated[str, _job_arg("finished")]


def parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = pair if len(pair) <= 40 else pair[:40] + "…"
            raise InvalidParams(f"-p expects KEY=VALUE, got '{shown}'")
        if key in out:
            raise InvalidParams(f"parameter '{key}' given twice")
        out[key] = value
    return out


def fill_secrets(params: dict[str, str], secrets: list[str], required: list[str]) -> None:
    """Secrets without the screen or shell history: ``-p token=@FILE`` reads a file
    (``@-``: stdin), and a required secret left out is asked for, unechoed, on a terminal."""
    import sys

    for name in secrets:
        value = params.get(name)
        if value is not None and value.startswith("@"):
            params[name] = _read_secret(name, value[1:])
    missing = [name for name in required if name not in params]
    if missing and sys.stdin.isatty():
        import getpass

        for name in missing:
            params[name] = getpass.getpass(f"{name} (secret, not echoed): ")


def _read_secret(name: str, source: str) -> str:
    import sys

    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise InvalidParams(f"parameter '{name}': cannot read {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidParams(f"parameter '{name}': {source} is not UTF-8 text") from None
    return text.rstrip("\r\n")


def parse_at(text: str) -> datetime:
    from opsconsole.core.clock import parse_datetime

    return parse_datetime(text)


def _finish_wait(view: JobView) -> None:
    raise typer.Exit(ExitCode.OK if view.state.value == "succeeded" else ExitCode.JOB_FAILED)


def _wait(job_id: str, timeout: float | None, as_json: bool) -> JobView:
    svc = service()
    if as_json or not output.is_terminal():
        return svc.wait(job_id, timeout=timeout)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.fields[job]}"),
        TextColumn("{task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=output.console(),
        transient=True,
    ) as progress:
        task = progress.add_task("job", total=100, job=job_id, state="", step="")

        def update(v: JobView) -> None:
            # Progress fields go through markup
            step = output.visible(v.step or "").replace("[", "(")
            progress.update(task, completed=v.progress or 0, state=v.state.value, step=step[:60])

        return svc.wait(job_id, timeout=timeout, on_update=update)


def _warn_without_workers(view: JobView) -> None:
    """Waiting on a queue nobody serves would hang silently: say so once."""
    import sys

    if view.state.value in ("queued", "scheduled") and not any(
        w.alive for w in service().workers()
    ):
        sys.stderr.write(
            "opsconsole: warning: no live worker on this store (start one: `opsconsole worker`)\n"
        )


def _timeout_seconds(timeout: str | None) -> float | None:
    if timeout is None:
        return None
    from opsconsole.core.catalog import parse_duration

    return parse_duration(timeout)


def submit(
    template: Annotated[
        str,
        typer.Argument(
            help="Template name (see `templates list`).",
            show_default=False,
            autocompletion=complete.template_names,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            help="KEY=VALUE; repeat for each parameter. Secrets: KEY=@FILE (@- for stdin), "
            "or leave them out to be asked on a terminal.",
            autocompletion=complete.param_names,
        ),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            help="low, normal, high, critical or 0-100.",
            show_default=False,
            autocompletion=complete.priorities,
        ),
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Run at this ISO 8601 time.", show_default=False)
    ] = None,
    in_: Annotated[
        str | None,
        typer.Option("--in", help="Run after this delay (30s, 10m, 2h, 1d).", show_default=False),
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            help="Run only after this job succeeds; repeatable.",
            autocompletion=complete.job_ids("any"),
        ),
    ] = None,
    retries: Annotated[
        int | None, typer.Option(help="Retries after a failure.", show_default=False)
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(help="Stop the job after this long (e.g. 10m).", show_default=False),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag; repeatable.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Preview: runners change nothing.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the job; exit 0 only if it succeeds.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job from a template."""
    from opsconsole.core.service import SubmitRequest

    params = parse_params(param or [])
    secret = [p for p in service().template(template).params if p.secret]
    fill_secrets(
        params,
        [p.name for p in secret],
        [p.name for p in secret if p.required and p.default is None],
    )
    req = SubmitRequest(
        template=template,
        params=params,
        priority=priority,
        run_at=parse_at(at) if at else None,
        run_in=in_,
        after=tuple(after or ()),
        retries=retries,
        timeout=timeout,
        tags=tuple(tag or ()),
        dry_run=dry_run,
    )
    view = service().submit(req)
    if not wait:
        if as_json:
            output.emit_json(view.to_dict())
        else:
            output.job_summary(view)
        return
    if not as_json and output.is_terminal():
        output.job_summary(view)
    _warn_without_workers(view)
    final = _wait(view.id, None, as_json)
    if as_json:
        output.emit_json(final.to_dict())
    else:
        output.job_summary(final)
    _finish_wait(final)


@jobs_app.command("list")
def list_jobs(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", help="Only this state; repeatable.", autocompletion=complete.states
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help="Only this template.", show_default=False, autocompletion=complete.template_names
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Only jobs with this tag.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only jobs created within this duration (e.g. 2h).", show_default=False),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Page size (default 50).", show_default=False)
    ] = None,
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first, one page at a time."""
    from opsconsole.core.service import ListRequest

    svc = service()
    result = svc.list_jobs(
        ListRequest(
            states=tuple(state or ()),
            template=template,
            tag=tag,
            since=since,
            page=page,
            page_size=svc.settings.page_size if limit is None else limit,
        )
    )
    if as_json:
        output.emit_json(result.to_dict())
        return
    now = svc.now()
    output.table(
        None,
        ["ID", "TEMPLATE", "STATE", "PRI", "CREATED", "DURATION", "EXIT", "TAGS"],
        [
            (
                j.id,
                j.template,
                output.styled_state(j.state.value),
                j.priority,
                output.ago(j.created_at, now),
                output.ago(j.run_at, now)
                if j.state.value == "scheduled"
                else output.fmt_duration(j.duration_s),
                "" if j.exit_code is None else j.exit_code,
                ",".join(j.tags),
            )
            for j in result.jobs
        ],
    )
    if result.pages > 1 or not result.jobs:
        output.line(f"page {result.page} of {result.pages} ({result.total} jobs)", style="dim")


@jobs_app.command("show")
def show(job: JobArg, as_json: JsonOpt = False) -> None:
    """Show one job: parameters (secrets masked), outcome and its audit trail."""
    view = service().get(job, with_events=True)
    if as_json:
        output.emit_json(view.to_dict())
    else:
        output.job_detail(view)


@jobs_app.command("cancel")
def cancel(
    job: LiveJobArg,
    reason: Annotated[
        str | None, typer.Option(help="Why; kept in the audit trail.", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a job: at once if it waits, by stopping its processes if it runs."""
    view = service().cancel(job, reason=reason or "")
    _print(view, as_json)


@jobs_app.command("retry")
def retry(
    job: DoneJobArg,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            help="Secret KEY=VALUE (or KEY=@FILE) again: secrets are dropped when a job ends.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a new attempt of a failed, timed out, cancelled, interrupted or partial job."""
    params = parse_params(param or [])
    current = service().get(job)
    if current.can_retry:  # the job's secrets were dropped when it ended: ask again
        masked = [k for k, v in current.params.items() if v == "***"]
        fill_secrets(params, masked, masked)
    view = service().retry(job, params=params)
    _print(view, as_json)


@jobs_app.command("wait")
def wait_cmd(
    job: JobArg,
    timeout: Annotated[
        str | None, typer.Option(help="Give up after this long (e.g. 10m).", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a job to end; exit 0 if it succeeded, 1 otherwise (also on timeout)."""
    job_id = service().resolve(job)
    _warn_without_workers(service().get(job_id))
    final = _wait(job_id, _timeout_seconds(timeout), as_json)
    _print(final, as_json)
    _finish_wait(final)


@jobs_app.command("after")
def after_cmd(
    job: LiveJobArg,
    others: Annotated[
        list[str],
        typer.Argument(
            help="Jobs it must wait for.",
            show_default=False,
            autocompletion=complete.job_ids("any"),
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Hold a job that has not started until other jobs succeed (cycles are refused)."""
    _print(service().add_dependencies(job, others), as_json)


@jobs_app.command("priority")
def priority_cmd(
    job: LiveJobArg,
    priority: Annotated[
        str,
        typer.Argument(
            help="low, normal, high, critical or 0-100.",
            show_default=False,
            autocompletion=complete.priorities,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Change the priority of a job that has not started."""
    _print(service().set_priority(job, priority), as_json)


def _print(view: JobView, as_json: bool) -> None:
    if as_json:
        output.emit_json(view.to_dict())
    else:
        output.job_summary(view)


def register(app: Any) -> None:
    app.command("submit")(submit)
    app.add_typer(jobs_app, name="jobs")
