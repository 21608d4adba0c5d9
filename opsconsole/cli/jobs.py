"""Job commands: ``submit`` and ``jobs list|show|cancel|retry|wait|after|priority``
(``jobs hosts`` lives in ``hosts.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.exit_codes import ExitCode
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service
from opsconsole.core.errors import InvalidParams

if TYPE_CHECKING:
    from opsconsole.core.views import JobView

jobs_app = typer.Typer(help="List, inspect, cancel, retry and wait for jobs.", no_args_is_help=True)


def _job_arg(which: Literal["any", "live", "finished"]) -> Any:
    """The job argument; Tab offers the jobs ``which`` (any, live, finished) it can act on."""
    return typer.Argument(
        metavar="JOB",
        help="Job id or a unique prefix of it.",
        show_default=False,
        autocompletion=complete.job_ids(which),
    )


JobArg = Annotated[str, _job_arg("any")]
LiveJobArg = Annotated[str, _job_arg("live")]


PARAM_HELP = (
    "A parameter; repeat for each. KEY=@FILE reads the value from FILE (KEY=@- from stdin), "
    "for any parameter; KEY=@@TEXT is the literal @TEXT. A required secret left out is asked "
    "for, unechoed, on a terminal."
)


@dataclass
class Params:
    """Parameters as typed, with the names whose value came from a file or stdin."""

    values: dict[str, str] = field(default_factory=dict)
    from_files: set[str] = field(default_factory=set)


def parse_params(pairs: list[str]) -> Params:
    """``KEY=VALUE`` pairs; ``@FILE`` / ``@-`` read the value, ``@@`` escapes a literal ``@``.

    One rule for every parameter, secret or not, so that ``@`` never means a file for one
    parameter and literal text for another.
    """
    out = Params()
    stdin_used = None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = pair if len(pair) <= 40 else pair[:40] + "…"
            raise InvalidParams(f"-p expects KEY=VALUE, got '{shown}'")
        if key in out.values:
            raise InvalidParams(f"parameter '{key}' given twice")
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@"):
            source = value[1:]
            if not source:
                raise InvalidParams(
                    f"parameter '{key}': '@' needs a file name (@FILE, @- for stdin, "
                    "@@TEXT for a literal @TEXT)"
                )
            if source == "-":
                if stdin_used is not None:
                    raise InvalidParams(
                        f"parameters '{stdin_used}' and '{key}' both read stdin (@-): "
                        "give one of them a file"
                    )
                stdin_used = key
            value = _read_value(key, source)
            out.from_files.add(key)
        out.values[key] = value
    return out


def warn_clear_secrets(params: Params, secrets: list[str], required: list[str]) -> None:
    """A secret typed on the command line is in the shell's history: say so, once each
    (after the command worked, so that a refusal stays one line)."""
    for name in secrets:
        if name in params.values and name not in params.from_files:
            ask = ", or leave it out to be asked without echo" if name in required else ""
            output.warn(
                f"secret parameter '{name}' was given on the command line, where shell history "
                f"and `ps` can keep it: use -p {name}=@FILE or -p {name}=@- (stdin){ask}"
            )


def fill_secrets(params: Params, required: list[str]) -> None:
    """A required secret left out is asked for, unechoed, when stdin is a terminal."""
    import sys

    missing = [name for name in required if name not in params.values]
    if missing and sys.stdin.isatty():
        import getpass

        for name in missing:
            params.values[name] = getpass.getpass(f"{name} (secret, not echoed): ")


def ask_confirmation(template: str, values: dict[str, Any]) -> str | None:
    """On a terminal, what the operator types for a template with ``confirm:``; None when the
    template asks nothing or there is no terminal (then the service refuses: --confirm)."""
    import sys

    expected = service().confirmation(template, values)
    if expected is None or not sys.stdin.isatty():
        return None
    typed: str = typer.prompt(
        f'type "{expected}" to confirm', default="", show_default=False, err=True
    )
    return typed


def _read_value(name: str, source: str) -> str:
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


FAILURE_LOG_LINES = 10
"""Log lines shown on stderr under a waited-for job that did not succeed."""


def _finish_wait(view: JobView, timeout: str | None = None) -> None:
    """Exit with what the wait found; say why on stderr when it is not a success."""
    from opsconsole.core.states import FINAL

    if view.state not in FINAL:
        output.note(
            f"gave up waiting after {timeout}: job {view.id} is still {view.state.value} "
            f"(wait again: opsconsole jobs wait {view.id})"
        )
        raise typer.Exit(ExitCode.WAIT_TIMEOUT)
    if view.state.value == "succeeded":
        raise typer.Exit(ExitCode.OK)
    output.failure(view, service().log_tail(view.id, FAILURE_LOG_LINES))
    raise typer.Exit(ExitCode.JOB_FAILED)


def wait_and_finish(view: JobView, as_json: bool) -> None:
    """``--wait`` for a job just submitted: print it, wait for its end, exit with how it
    ended (the same as ``submit --wait``)."""
    if not as_json and output.is_terminal():
        output.job_summary(view)
    final = _wait(view.id, None, as_json, first=view)
    if as_json:
        output.emit_json(final.to_dict())
    else:
        output.job_summary(final)
    _finish_wait(final)


def _wait(job_id: str, timeout: float | None, as_json: bool, *, first: JobView) -> JobView:
    """Wait for the job's end; Ctrl-C leaves it running and says how to follow or cancel it."""
    try:
        _warn_without_workers(first)
        return _wait_for(job_id, timeout, as_json)
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("\n")
        output.note(
            f"stopped waiting; job {job_id} keeps running (Ctrl-C does not cancel it). "
            f"Follow it: opsconsole logs -f {job_id}; cancel it: opsconsole jobs cancel {job_id}"
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _wait_for(job_id: str, timeout: float | None, as_json: bool) -> JobView:
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
    if view.state.value in ("queued", "scheduled") and not any(
        w.alive for w in service().workers()
    ):
        output.warn("no live worker on this store (start one: `opsconsole worker`)")


def _timeout_seconds(timeout: str | None) -> float | None:
    if timeout is None:
        return None
    from opsconsole.core.catalog import parse_duration

    return parse_duration(timeout)


def submit(
    template: Annotated[
        str,
        typer.Argument(
            metavar="TEMPLATE",
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
            metavar="KEY=VALUE",
            help=PARAM_HELP,
            show_default=False,
            autocompletion=complete.param_names,
        ),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            metavar="PRIORITY",
            help="low, normal, high, critical or 0-100.",
            show_default=False,
            autocompletion=complete.priorities,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="Run at this ISO 8601 time (no zone: local time); a past time runs now, "
            "with a warning.",
            show_default=False,
        ),
    ] = None,
    in_: Annotated[
        str | None,
        typer.Option(
            "--in",
            metavar="DURATION",
            help="Run after this delay (30s, 10m, 2h, 1d).",
            show_default=False,
        ),
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="JOB",
            help="Run only after this job succeeds; repeatable.",
            show_default=False,
            autocompletion=complete.job_ids("any"),
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(metavar="N", help="Automatic retries after a failure.", show_default=False),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Stop the job after this long (e.g. 10m).", show_default=False
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="TAG", help="Tag; repeatable.", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Preview: runners change nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait for the job; exit 0 only if it succeeds, else say why on stderr.",
        ),
    ] = False,
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm",
            metavar="VALUE",
            help="For a template with confirm: the rendered value (e.g. production); asked "
            "for on a terminal, required in scripts.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job from a template.

    A template with `confirm:` asks you to type its rendered value (e.g. the environment)
    on a terminal; in scripts pass --confirm VALUE. A missing or wrong value exits 2 and
    submits nothing.

    Examples:

    \b
      opsconsole submit hello -p name=ops --wait
      opsconsole submit deploy-app -p app=shop -p version=1.4.2 -p token=@token.txt
      opsconsole submit rotate-logs -p files=/var/log/a.log,/var/log/b.log --in 10m
    """
    from opsconsole.core.service import SubmitRequest

    params = parse_params(param or [])
    secret = [p for p in service().template(template).params if p.secret]
    secret_names = [p.name for p in secret]
    required = [p.name for p in secret if p.required and p.default is None]
    fill_secrets(params, required)
    if confirm is None:
        confirm = ask_confirmation(template, params.values)
    run_at = parse_at(at) if at else None
    req = SubmitRequest(
        template=template,
        params=params.values,
        priority=priority,
        run_at=run_at,
        run_in=in_,
        after=tuple(after or ()),
        retries=retries,
        timeout=timeout,
        tags=tuple(tag or ()),
        dry_run=dry_run,
        confirm=confirm,
    )
    view = service().submit(req)
    warn_clear_secrets(params, secret_names, required)
    if run_at is not None and run_at <= view.created_at:
        output.warn(f"--at {at} is in the past: job {view.id} runs now")
    if not wait:
        if as_json:
            output.emit_json(view.to_dict())
        else:
            output.job_summary(view)
        return
    if not as_json and output.is_terminal():
        output.job_summary(view)
    final = _wait(view.id, None, as_json, first=view)
    if as_json:
        output.emit_json(final.to_dict())
    else:
        output.job_summary(final)
    _finish_wait(final)


@jobs_app.command("list", cls=Command)
def list_jobs(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only this state; repeatable.",
            show_default=False,
            autocompletion=complete.states,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            metavar="TEMPLATE",
            help="Only this template.",
            show_default=False,
            autocompletion=complete.template_names,
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(metavar="TAG", help="Only jobs with this tag.", show_default=False)
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(metavar="TEAM", help="Only jobs of this team.", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Only jobs created within this duration (e.g. 2h).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(metavar="N", help="Page size (default 50).", show_default=False)
    ] = None,
    page: Annotated[int, typer.Option(metavar="N", help="Page number, from 1.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first, one page at a time.

    Piped, the rows are plain text and the page note goes to stderr.

    Examples:

    \b
      opsconsole jobs list --state running --state queued
      opsconsole jobs list --template deploy-app --since 24h --json
      opsconsole jobs list --team web --state queued

    A queued job that a freeze holds says so in its STATE: `queued (frozen: REASON ...)`.
    """
    from opsconsole.core.service import ListRequest

    svc = service()
    result = svc.list_jobs(
        ListRequest(
            states=tuple(state or ()),
            template=template,
            tag=tag,
            team=team,
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
                output.styled_state(j.state.value)
                if j.frozen is None
                else output.styled_state(j.state.value) + f" ({output.visible(j.frozen)})",
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
        page_note = f"page {result.page} of {result.pages} ({result.total} jobs)"
        if output.is_terminal():
            output.line(page_note, style="dim")
        elif result.pages > 1:  # a pipe gets rows only; the person is told there is more
            output.note(page_note)


@jobs_app.command("show", cls=Command)
def show(job: JobArg, as_json: JsonOpt = False) -> None:
    """Show one job: parameters, outcome, audit trail, plan.

    A Terraform job also shows its latest plan (what its apply changes).

    Secret parameters show as ***.

    Examples:

    \b
      opsconsole jobs show j7k2m9
      opsconsole jobs show j7k --json
    """
    view = service().get(job, with_events=True)
    plan = service().job_plan(view.id)
    if as_json:
        output.emit_json({**view.to_dict(), **({"plan": plan.to_dict()} if plan else {})})
        return
    output.job_detail(view)
    if plan is not None:
        from opsconsole.cli.instances import print_plan

        print_plan(plan)


StateFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--state",
        metavar="STATE",
        help="Act on every job in this state; repeatable.",
        show_default=False,
        autocompletion=complete.states,
    ),
]
TemplateFilter = Annotated[
    str | None,
    typer.Option(
        "--template",
        metavar="TEMPLATE",
        help="Act on every matching job of this template.",
        show_default=False,
        autocompletion=complete.template_names,
    ),
]
TagFilter = Annotated[
    str | None,
    typer.Option(
        "--tag", metavar="TAG", help="Act on every matching job with this tag.", show_default=False
    ),
]
SinceFilter = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DURATION",
        help="Only jobs created within this duration (as `jobs list --since`).",
        show_default=False,
    ),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit",
        metavar="N",
        help="Act on up to N matching jobs (default 100); more matches are refused.",
        show_default=False,
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Act on every match without asking (scripts).")
]


@dataclass
class BulkFilter:
    """The filter options of ``jobs cancel`` and ``jobs retry``: given, they act on all matches."""

    states: list[str] | None
    template: str | None
    tag: str | None
    since: str | None
    limit: int | None

    def given(self) -> bool:
        return bool(self.states or self.template or self.tag or self.since)


def _bulk_or_one(verb: str, job: str | None, f: BulkFilter) -> bool:
    """True for a bulk action; a JOB with filters, or neither, is one usage error."""
    if job is not None and f.given():
        raise InvalidParams(
            f"give a JOB or filters (--state, --template, --tag, --since), not both: "
            f"`jobs {verb} JOB` acts on one job, filters act on every match"
        )
    if job is None and not f.given():
        raise InvalidParams(
            f"give a JOB to {verb}, or filters (--state, --template, --tag, --since) to "
            f"{verb} every match"
        )
    if job is not None and f.limit is not None:
        raise InvalidParams("--limit applies to filters, not to one JOB")
    return job is None


def _bulk(verb: str, f: BulkFilter, yes: bool, as_json: bool, reason: str = "") -> None:
    """Select, confirm (a terminal, or --yes), act on each match, summarise.

    Exit 0 when every match was acted on (or none matched); 1 when some were skipped, or
    the operator said no at the prompt.
    """
    import sys

    from opsconsole.core.bulk import DEFAULT_BULK_LIMIT, BulkRequest
    from opsconsole.core.states import Verb

    svc = service()
    req = BulkRequest(
        verb=Verb(verb),
        states=tuple(f.states or ()),
        template=f.template,
        tag=f.tag,
        since=f.since,
        limit=DEFAULT_BULK_LIMIT if f.limit is None else f.limit,
        reason=reason,
    )
    ids = svc.bulk_select(req)
    if not ids:
        if as_json:
            output.emit_json({"action": verb, "acted": 0, "skipped": 0, "jobs": []})
        else:
            output.note(f"no jobs match: nothing to {verb}")
        return
    n = len(ids)
    what = f"{n} job{'' if n == 1 else 's'}"
    if not yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise InvalidParams(
                f"{what} match: pass --yes to {verb} them (no terminal to confirm on)"
            )
        shown = ", ".join(ids[:10]) + (", ..." if n > 10 else "")
        output.line(f"{what} match: {shown}")
        if not typer.confirm(f"{verb.capitalize()} {what}?", default=False):
            output.note(f"nothing {'cancelled' if verb == 'cancel' else 'retried'}")
            raise typer.Exit(ExitCode.JOB_FAILED)
    result = svc.bulk_act(req.verb, ids, reason=reason)
    if as_json:
        output.emit_json(result.to_dict())
    else:
        output.line(result.summary())
    if result.skipped:
        raise typer.Exit(ExitCode.JOB_FAILED)


@jobs_app.command("cancel", cls=Command)
def cancel(
    job: Annotated[str | None, _job_arg("live")] = None,
    reason: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="Why; kept in the audit trail.", show_default=False),
    ] = None,
    state: StateFilter = None,
    template: TemplateFilter = None,
    tag: TagFilter = None,
    since: SinceFilter = None,
    limit: LimitOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a job, or every job a filter matches.

    A job that has not started is cancelled at once. A running job's processes get SIGTERM,
    then SIGKILL after kill_grace; it then ends cancelled.

    With filters instead of JOB, every match is cancelled, one audited event each; the
    count is confirmed on a terminal (--yes in scripts). Exit 1 if some were skipped
    (they had moved on since the selection).

    Examples:

    \b
      opsconsole jobs cancel j7k2m9 --reason "wrong version"
      opsconsole jobs cancel --state queued --template deploy-app --yes
    """
    f = BulkFilter(state, template, tag, since, limit)
    if _bulk_or_one("cancel", job, f):
        _bulk("cancel", f, yes, as_json, reason=reason or "")
        return
    assert job is not None
    view = service().cancel(job, reason=reason or "")
    _print(view, as_json)
    if not as_json and view.state.value == "running":
        grace = service().settings.kill_grace
        output.line(
            f"cancellation requested: the worker sends the job's processes SIGTERM, then "
            f"SIGKILL after {grace:g}s (kill_grace) if they are still there; the job then ends "
            f"cancelled (watch it: opsconsole jobs wait {view.id})"
        )


@jobs_app.command("retry", cls=Command)
def retry(
    job: Annotated[str | None, _job_arg("finished")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            metavar="SECRET=VALUE",
            help="A secret again (SECRET=@FILE, SECRET=@- for stdin): secrets are dropped when "
            "a job ends; left out, they are asked for on a terminal.",
            show_default=False,
        ),
    ] = None,
    state: StateFilter = None,
    template: TemplateFilter = None,
    tag: TagFilter = None,
    since: SinceFilter = None,
    limit: LimitOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Retry a failed job, or every job a filter matches.

    Works on failed, timed out, cancelled, interrupted and partial jobs. With filters, a job
    whose secrets must be given again is skipped (retry it alone, with -p).

    Examples:

    \b
      opsconsole jobs retry j7k2m9
      opsconsole jobs retry j7k2m9 -p token=@token.txt
      opsconsole jobs retry --state failed --since 1h --yes
    """
    f = BulkFilter(state, template, tag, since, limit)
    if _bulk_or_one("retry", job, f):
        if param:
            raise InvalidParams("-p applies to one JOB; a bulk retry takes no parameters")
        _bulk("retry", f, yes, as_json)
        return
    assert job is not None
    params = parse_params(param or [])
    current = service().get(job)
    if current.can_retry:  # the job's secrets were dropped when it ended: ask again
        masked = [k for k, v in current.params.items() if v == "***"]
        fill_secrets(params, masked)
    view = service().retry(job, params=params.values)
    warn_clear_secrets(params, list(params.values), list(params.values))
    _print(view, as_json)


@jobs_app.command("wait", cls=Command)
def wait_cmd(
    job: JobArg,
    timeout: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Give up after this long (e.g. 10m): exit 124.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a job to end.

    Exit 0 if it succeeded, 1 if it ended otherwise (why, on stderr), 124 if --timeout
    expired first, 130 on Ctrl-C (the job keeps running).

    Examples:

    \b
      opsconsole jobs wait j7k2m9 --timeout 10m
    """
    job_id = service().resolve(job)
    final = _wait(job_id, _timeout_seconds(timeout), as_json, first=service().get(job_id))
    _print(final, as_json)
    _finish_wait(final, timeout)


@jobs_app.command("after", cls=Command)
def after_cmd(
    job: LiveJobArg,
    others: Annotated[
        list[str],
        typer.Argument(
            metavar="OTHER",
            help="Jobs it must wait for.",
            show_default=False,
            autocompletion=complete.job_ids("any"),
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Hold a job that has not started until other jobs succeed.

    Cycles are refused.
    """
    _print(service().add_dependencies(job, others), as_json)


@jobs_app.command("priority", cls=Command)
def priority_cmd(
    job: LiveJobArg,
    priority: Annotated[
        str,
        typer.Argument(
            metavar="PRIORITY",
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
    from opsconsole.cli import hosts

    hosts.register(jobs_app)
    app.command("submit", cls=Command)(submit)
    app.add_typer(jobs_app, name="jobs")
