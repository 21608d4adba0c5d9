"""What an approver is asked to approve: the one read behind the console's approval prompt.

Everything the decision is bound to, in one snapshot: the template, the command it renders
(secrets masked), the parameters, the targets, who asked and when, the expiry, how many
approvals the round has, and the digest an approval given now would record. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.core.catalog import render, render_argv, template_from_dict
from opsconsole.core.errors import InvalidTransition, OpsError
from opsconsole.core.secrets import MASK
from opsconsole.core.states import JobState
from opsconsole.core.store import approvals as approval_store
from opsconsole.core.store import queries
from opsconsole.core.views import JobView

if TYPE_CHECKING:
    from opsconsole.core.approvals import ApprovalsMixin


@dataclass(frozen=True)
class ApprovalDetail:
    """A job awaiting approval, as the approver sees it before deciding."""

    job: JobView
    runner: str
    command: tuple[str, ...]
    """The rendered argv (shell), secrets shown as the mask; empty for a python handler."""
    handler: str | None
    env: dict[str, str]
    targets: Any
    round: int
    approvals: int
    required: int
    approved_by: tuple[str, ...]
    approvers: tuple[str, ...]
    self_approval: bool
    expires_at: datetime | None
    digest: str
    break_glass: bool = False
    """The template lets an operator run it now, with a reason, leaving a review."""


def approval_detail(service: ApprovalsMixin, ref: str) -> ApprovalDetail:
    """The snapshot of job ``ref``; InvalidTransition when it is not awaiting approval."""
    job_id = queries.resolve(service.db, ref)
    row, after = queries.get(service.db, job_id)
    view = JobView.from_row(row, depends_on=after)
    tpl = template_from_dict(row["spec"])
    if tpl.approval is None:
        raise InvalidTransition(f"{job_id} ({row['template']}) asks for no approval")
    if view.state != JobState.AWAITING_APPROVAL:
        raise InvalidTransition(f"{job_id} is {view.state.value}, not awaiting approval")
    shown = {name: view.params.get(name) for name in tpl.params} | view.params
    for name in tpl.secret_names():
        if shown.get(name) not in (None, ""):
            shown[name] = MASK
    try:
        command = tuple(render_argv(tpl.command, shown)) if tpl.command else ()
        env = {k: render(v, shown) for k, v in tpl.env.items()}
    except OpsError as exc:  # the worker would refuse it too: say so, do not hide it
        command, env = (f"(cannot render: {exc})",), {}
    round_ = int(row["gate_round"])
    given = [
        d["actor"]
        for d in approval_store.decisions(service.db, job_id)
        if d["round"] == round_ and d["decision"] == "approve"
    ]
    return ApprovalDetail(
        job=view,
        runner=tpl.runner,
        command=command,
        handler=tpl.handler,
        env=env,
        targets=(row["spec"] or {}).get("targets"),
        round=round_,
        approvals=len(given),
        required=tpl.approval.required,
        approved_by=tuple(given),
        approvers=tpl.approval.approvers,
        self_approval=tpl.approval.self_approval,
        expires_at=row["approval_expires_at"],
        digest=service.digest_of(row),
        break_glass=tpl.approval.break_glass,
    )
