"""Terraform instance commands: ``instances list|show|destroy``, and how a plan is printed.

The plan's printing lives here (``print_plan``) and is shared with ``jobs show``, so a plan
reads the same wherever it appears. Exit codes: 0 done; 2 bad input, an ambiguous name, an
instance already destroyed or being destroyed; 3 no such instance; 4 the caller may not
submit jobs of the instance's template.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

if TYPE_CHECKING:
    from opsconsole.core.approval_detail import PlanView
    from opsconsole.core.instance_ops import InstanceView

instances_app = typer.Typer(
    help="Terraform instances: outputs, state, destroy.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="Instance name, or TEMPLATE/NAME when several templates use the name.",
        show_default=False,
        autocompletion=complete.instance_names,
    ),
]


def _value(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _outputs(outputs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in outputs.items()) or "-"


@instances_app.command("list", cls=Command)
def list_instances(
    template: Annotated[
        str | None,
        typer.Option(
            metavar="TEMPLATE",
            help="Only instances of this template.",
            show_default=False,
            autocompletion=complete.template_names,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List Terraform instances.

    Each with its status, last job and its state, outputs, state serial and the digest of
    the last plan applied.

    Sensitive outputs show as ***. The plan digest is the sha256 of the last plan applied.

    Examples:

    \b
      opsconsole instances list
      opsconsole instances list --template web_app --json
    """
    views = service().instances(template)
    if as_json:
        output.emit_json([v.to_dict() for v in views])
        return
    if not views:
        output.line("no instance yet" + (f" of template '{template}'" if template else ""))
        return
    output.table(
        None,
        ["TEMPLATE", "INSTANCE", "STATUS", "LAST JOB", "SERIAL", "PLAN", "OUTPUTS", "PROBLEM"],
        [
            (
                v.template,
                v.name,
                output.styled_state(v.status),
                f"{v.last_job} {v.last_job_state or ''}".strip() if v.last_job else "-",
                "-" if v.serial is None else v.serial,
                (v.plan_hash or "-")[:12],
                _outputs(v.outputs),
                v.problem or "",
            )
            for v in views
        ],
    )


@instances_app.command("show", cls=Command)
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """Show one instance.

    Its outputs, resources, its last plan and the jobs that worked on it.

    Examples:

    \b
      opsconsole instances show shop
      opsconsole instances show web_app/shop --json
    """
    view = service().instance(name)
    if as_json:
        output.emit_json(view.to_dict())
        return
    _detail(view)


def _detail(view: InstanceView) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("instance", view.ref),
        ("status", output.styled_state(view.status)),
        ("last job", f"{view.last_job} ({view.last_job_state})" if view.last_job else "-"),
        ("state serial", "-" if view.serial is None else view.serial),
        ("applied plan", view.plan_hash or "-"),
        ("updated", f"{view.updated_at:%Y-%m-%d %H:%M:%S}Z ({output.ago(view.updated_at)})"),
    ]
    if view.problem:
        rows.append(("problem", Text(output.visible(view.problem), style="red")))
    for k, v in view.outputs.items():
        rows.append((f"output {k}", _value(v)))
    # one resource per row: an address is never cut or run together with the next
    for i, address in enumerate(view.resources or ["-"]):
        rows.append(("resources" if i == 0 else "", address))
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else output.plain(value))
    output.rows_out(grid)
    if view.plan is not None:
        print_plan(view.plan, title=f"last plan (job {view.plan.job_id})")
    output.table(
        "jobs",
        ["JOB", "STATE", "KIND", "BY", "SUBMITTED"],
        [
            (
                j.id,
                output.styled_state(j.state.value),
                "destroy" if "destroy" in j.tags else "apply",
                j.submitted_by,
                f"{j.created_at:%Y-%m-%d %H:%M:%S}Z",
            )
            for j in view.history or ()
        ],
    )


def print_plan(plan: PlanView, *, title: str = "plan") -> None:
    """A plan as an approver reads it: counts on top, one coloured line per change."""
    from rich.text import Text

    from opsconsole.core.approval_detail import ACTION_STYLES, SIGNS

    head = Text(f"{title}: ", style="bold")
    head.append(f"+{plan.add}", style="green")
    head.append(f" ~{plan.change}", style="yellow")
    head.append(f" -{plan.destroy}", style="red")
    if plan.replace:
        head.append(f" ±{plan.replace}", style="magenta")
    head.append(f"  sha256 {plan.short_hash}  {plan.status}")
    output.console().print(head)
    if plan.malformed:
        output.line("  the stored plan summary is malformed: read the job's log", style="red")
    for r in plan.changes:
        line = Text(f"  {SIGNS.get(r.action, '?'):>3} ", style=ACTION_STYLES.get(r.action, ""))
        line.append(output.visible(r.address), style=ACTION_STYLES.get(r.action, ""))
        line.append(f"  ({r.action})", style="dim")
        output.console().print(line)
    if plan.destroys:
        output.line(f"  this plan destroys {len(plan.destroys)} resource(s)", style="bold red")
    for name, out in plan.outputs.items():
        sensitive = " (sensitive)" if out.get("sensitive") else ""
        output.line(f"  output {name}: {out.get('action', '?')}{sensitive}", style="dim")


@instances_app.command("destroy", cls=Command)
def destroy(
    name: NameArg,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            metavar="KEY=VALUE",
            help="A secret parameter of the instance's template, again (KEY=@FILE reads it "
            "from a file, KEY=@- from stdin); asked for, unechoed, on a terminal.",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="Why; kept in the audit trail.", show_default=False),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask to type the instance's name.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Request the gated destroy of an instance.

    A job plans the destroy, waits for an approver to see that plan, then applies exactly it.

    The job uses the parameters of the instance's last job; secret parameters are dropped
    when a job ends, so give them again with -p (asked for on a terminal). It is always
    gated: a template with no approval policy gets one approver for its destroy. On a
    terminal you type the instance's name to confirm; in scripts pass --yes.

    Examples:

    \b
      opsconsole instances destroy shop
      opsconsole instances destroy web_app/shop -p token=@token.txt --yes --json
    """
    import sys

    from opsconsole.cli.jobs import fill_secrets, parse_params, warn_clear_secrets
    from opsconsole.core.errors import InvalidParams

    params = parse_params(param or [])
    svc = service()
    view, _, needed = svc.destroy_params(name)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidParams(
                f"destroying {view.ref} needs a typed confirmation: run it on a terminal, "
                "or pass --yes; nothing submitted"
            )
        typed = typer.prompt(
            f'destroy {view.ref}? type "{view.name}" to confirm',
            default="",
            show_default=False,
            err=True,
        )
        if typed.strip() != view.name:
            raise InvalidParams(f'the confirmation does not match "{view.name}"; nothing submitted')
    fill_secrets(params, needed)
    job = svc.destroy_instance(name, params=params.values, reason=reason or "")
    warn_clear_secrets(params, needed, needed)
    if as_json:
        output.emit_json({**job.to_dict(), "instance": view.ref})
        return
    output.job_summary(job)
    output.line(
        f"destroy of {view.ref} requested as job {job.id}: it plans the destroy, then awaits "
        f"an approval of that plan (opsconsole jobs show {job.id})"
    )


def register(app: Any) -> None:
    app.add_typer(instances_app, name="instances")
