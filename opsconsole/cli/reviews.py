"""Break-glass review commands: ``reviews list`` and ``reviews ack ID --comment TEXT``.

A break-glass run waits for another person with the approver role to acknowledge it; the
caller is the OS account running the command. Exit codes: 0 done; 2 bad input or a review
acknowledged already; 3 no such review; 4 the caller may not acknowledge it (they broke
the glass, or lack the approver role).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsconsole.cli import output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

reviews_app = typer.Typer(
    help="Break-glass runs another person must acknowledge.", no_args_is_help=True
)


@reviews_app.command("list", cls=Command)
def list_reviews(
    include_acked: Annotated[
        bool, typer.Option("--all", help="Include the acknowledged reviews.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List break-glass reviews awaiting acknowledgement, oldest first.

    Examples:

    \b
      opsconsole reviews list
      opsconsole reviews list --all --json
    """
    reviews = service().reviews(include_acked=include_acked)
    if as_json:
        output.emit_json([r.to_dict() for r in reviews])
        return
    if not reviews:
        output.line("no break-glass review" + (" yet" if include_acked else " is open"))
        return
    output.table(
        None,
        ["ID", "JOB", "TEMPLATE", "BROKEN BY", "WHEN", "REASON", "ACKED BY"],
        [
            [
                r.id,
                r.job_id,
                r.template or "-",
                r.broken_by,
                output.ago(r.created_at),
                r.reason,
                r.acked_by or "-",
            ]
            for r in reviews
        ],
    )


@reviews_app.command("ack", cls=Command)
def ack(
    review: Annotated[
        int, typer.Argument(metavar="ID", help="The id from reviews list.", show_default=False)
    ],
    comment: Annotated[
        str,
        typer.Option(metavar="TEXT", help="What you checked (required); kept in the audit trail."),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a break-glass run (as you; not the person who broke the glass).

    Examples:

    \b
      opsconsole reviews ack 3 --comment "checked INC-4411, the restart was right"
    """
    view = service().ack_review(review, comment=comment)
    if as_json:
        output.emit_json(view.to_dict())
        return
    output.line(f"review {view.id} of job {view.job_id} acknowledged by {view.acked_by}")


def register(app: Any) -> None:
    app.add_typer(reviews_app, name="reviews")
