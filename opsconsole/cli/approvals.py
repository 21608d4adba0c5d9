"""Approval commands: ``approvals list``, ``approve JOB [--break-glass --reason]`` and
``reject JOB --reason``.

The caller is the OS account running the command: there is no flag to approve as someone
else. Exit codes: 0 done; 2 bad input or a job that is not awaiting approval; 3 no such
job; 4 the caller may not decide (their own job, not a listed approver, a template that
does not allow break-glass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

if TYPE_CHECKING:
    from rich.text import Text

    from opsconsole.core.approval_detail import PlanView

approvals_app = typer.Typer(help="Jobs waiting for an approval.", no_args_is_help=True)

JobArg = Annotated[
    str,
    typer.Argument(
        metavar="JOB",
        help="Job id or a unique prefix of it.",
        show_default=False,
        autocompletion=complete.job_ids("live"),
    ),
]


@approvals_app.command("list", cls=Command)
def list_approvals(as_json: JsonOpt = False) -> None:
    """List the jobs awaiting approval, oldest first.

    Examples:

    \b
      opsconsole approvals list
      opsconsole approvals list --json
    """
    from opsconsole.core.views import iso

    requests = service().approval_requests()
    plans = service().plans_of([r.job.id for r in requests])
    if as_json:
        output.emit_json(
            [
                {
                    **r.job.to_dict(),
                    "round": r.round,
                    "approvals": r.approvals,
                    "required": r.required,
                    "approvers": list(r.approvers),
                    "expires_at": iso(r.expires_at) if r.expires_at else None,
                    "self_approval": r.self_approval,
                    "plan": plans[r.job.id].to_dict() if r.job.id in plans else None,
                }
                for r in requests
            ]
        )
        return
    if not requests:
        output.line("no job is awaiting approval")
        return
    output.table(
        None,
        [
            "JOB",
            "TEMPLATE",
            "BY",
            "APPROVALS",
            "APPROVERS",
            "EXPIRES",
            *(["PLAN"] if plans else []),
        ],
        [
            [
                r.job.id,
                r.job.template,
                r.job.submitted_by,
                f"{r.approvals}/{r.required}",
                ", ".join(r.approvers) or ("anyone" if r.self_approval else "anyone else"),
                output.ago(r.expires_at) if r.expires_at else "-",
                *([plan_counts(plans.get(r.job.id))] if plans else []),
            ]
            for r in requests
        ],
    )


def plan_counts(plan: PlanView | None) -> Text | str:
    """``+2 ~0 -1`` in Terraform's colours (a destroy in bold red): the plan at a glance."""
    if plan is None:
        return "-"
    from rich.text import Text

    t = Text()
    t.append(f"+{plan.add}", style="green")
    t.append(f" ~{plan.change}", style="yellow")
    t.append(f" -{plan.destroy}", style="bold red" if plan.destroy else "red")
    if plan.replace:
        t.append(f" ±{plan.replace}", style="magenta")
    return t


def approve(
    job: JobArg,
    comment: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="Optional; kept in the audit trail.", show_default=False),
    ] = None,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass",
            help="Emergency: run it now without approvals (operator role; the template must "
            "allow it); needs --reason, and another person must acknowledge the review.",
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT", help="With --break-glass: why (required).", show_default=False
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a job awaiting approval (as you, the OS account).

    Once the template's required number of people approved, the job is queued (or scheduled
    for its run time, or waits for its dependencies). Exit 4 when you may not approve it.

    With --break-glass (on a template with approval.break_glass: true) an operator runs the
    job now without approvals; the job is marked break-glass, every console shows a banner
    and a review waits for another approver: `opsconsole reviews ack ID --comment TEXT`.

    Examples:

    \b
      opsconsole approve j7k2m9
      opsconsole approve j7k --comment "checked the change ticket"
      opsconsole approve j7k --break-glass --reason "site down, INC-4411"
    """
    from opsconsole.core.errors import InvalidParams

    if break_glass:
        if comment:
            raise InvalidParams("--break-glass takes --reason TEXT, not --comment")
        view, review = service().break_glass(job, reason=reason or "")
        if as_json:
            output.emit_json({**view.to_dict(), "review": review})
            return
        output.job_summary(view)
        output.line(
            f"break-glass: review {review} awaits another person's acknowledgement "
            f"(opsconsole reviews ack {review} --comment TEXT)"
        )
        return
    if reason is not None:
        raise InvalidParams("--reason goes with --break-glass; an approval takes --comment TEXT")
    view = service().approve(job, comment=comment or "")
    _print(view, as_json)


def reject(
    job: JobArg,
    reason: Annotated[
        str,
        typer.Option(metavar="TEXT", help="Why (required); kept in the audit trail."),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject a job awaiting approval, with a reason.

    The job ends rejected; the reason is kept in the audit trail.

    Examples:

    \b
      opsconsole reject j7k2m9 --reason "not during the sale"
    """
    view = service().reject(job, reason=reason)
    _print(view, as_json)


def _print(view: Any, as_json: bool) -> None:
    if as_json:
        output.emit_json(view.to_dict())
    else:
        output.job_summary(view)


def register(app: Any) -> None:
    app.add_typer(approvals_app, name="approvals")
    app.command("approve", cls=Command)(approve)
    app.command("reject", cls=Command)(reject)
