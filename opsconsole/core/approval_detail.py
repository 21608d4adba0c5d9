"""What an approver is asked to approve: the one read behind the console's approval prompt.

Everything the decision is bound to, in one snapshot: the template, the command it renders
(secrets masked), the parameters, the targets, who asked and when, the expiry, how many
approvals the round has, the digest an approval given now would record, and for a
Terraform job the plan it would apply (``PlanView``: counts, resource changes, outputs, its
hash). Read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.core.catalog import render, render_argv, template_from_dict
from opsconsole.core.errors import InvalidTransition, OpsError
from opsconsole.core.secrets import MASK
from opsconsole.core.states import JobState
from opsconsole.core.store import approvals as approval_store
from opsconsole.core.store import plans as plan_store
from opsconsole.core.store import queries
from opsconsole.core.views import JobView, iso

if TYPE_CHECKING:
    from opsconsole.core.approvals import ApprovalsMixin
    from opsconsole.core.store.db import Database


ACTIONS = ("create", "update", "delete", "replace", "read", "no-op")
"""A planned resource change, as the plan summary names it (``core/store/plans.py``)."""
SIGNS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<=", "no-op": " "}
"""How each action is marked, as Terraform's own plan output marks it."""
ACTION_STYLES = {
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "replace": "magenta",
    "read": "cyan",
    "no-op": "dim",
}
"""A plan's actions in Terraform's own colours (+ create green, ~ update yellow, - delete
red), the same in both faces."""
SHORT_HASH = 12


@dataclass(frozen=True)
class ResourceChange:
    address: str
    action: str


@dataclass(frozen=True)
class PlanView:
    """A saved Terraform plan as an approver reads it: what the apply would change.

    Built from the summary the runner stored; a summary that is not the documented shape
    reads as ``malformed`` rather than as an empty (harmless-looking) plan.
    """

    job_id: str
    attempt: int
    round: int
    hash: str
    status: str
    """pending | applied | stale | discarded | failed"""
    add: int
    change: int
    destroy: int
    replace: int
    resources: tuple[ResourceChange, ...]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: datetime | None = None
    malformed: bool = False

    @property
    def short_hash(self) -> str:
        return self.hash[:SHORT_HASH]

    @property
    def counts(self) -> str:
        """``+2 ~0 -1`` (and ``±1`` when something is replaced): the plan at a glance."""
        text = f"+{self.add} ~{self.change} -{self.destroy}"
        return f"{text} ±{self.replace}" if self.replace else text

    @property
    def destroys(self) -> tuple[ResourceChange, ...]:
        """Resources the apply deletes (a replace deletes too): what an approver must see."""
        return tuple(r for r in self.resources if r.action in ("delete", "replace"))

    @property
    def changes(self) -> tuple[ResourceChange, ...]:
        """The resource changes worth listing: no-ops and reads left out."""
        return tuple(r for r in self.resources if r.action not in ("no-op", "read"))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PlanView:
        summary = row["summary"]
        malformed = not isinstance(summary, dict)
        data: dict[str, Any] = summary if isinstance(summary, dict) else {}

        def count(key: str) -> int:
            nonlocal malformed
            value = data.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                malformed = True
                return 0
            return value

        resources: list[ResourceChange] = []
        items = data.get("resources", [])
        if not isinstance(items, list):
            malformed, items = True, []
        for item in items:
            address = item.get("address") if isinstance(item, dict) else None
            action = item.get("action") if isinstance(item, dict) else None
            if not isinstance(address, str) or action not in ACTIONS:
                malformed = True
                continue
            resources.append(ResourceChange(address, str(action)))
        outputs = data.get("outputs", {})
        if not isinstance(outputs, dict):
            malformed, outputs = True, {}
        return cls(
            job_id=row["job_id"],
            attempt=int(row["attempt"]),
            round=int(row["round"]),
            hash=str(row["hash"]),
            status=str(row["status"]),
            add=count("add"),
            change=count("change"),
            destroy=count("destroy"),
            replace=count("replace"),
            resources=tuple(resources),
            outputs={
                str(k): (dict(v) if isinstance(v, dict) else {"action": str(v)})
                for k, v in outputs.items()
            },
            created_at=row.get("created_at"),
            malformed=malformed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "attempt": self.attempt,
            "round": self.round,
            "hash": self.hash,
            "status": self.status,
            "add": self.add,
            "change": self.change,
            "destroy": self.destroy,
            "replace": self.replace,
            "counts": self.counts,
            "resources": [{"address": r.address, "action": r.action} for r in self.resources],
            "outputs": self.outputs,
            "created_at": iso(self.created_at),
            "malformed": self.malformed,
        }


def job_plan(db: Database, job_id: str) -> PlanView | None:
    """The newest plan of a job (whatever its status), or None when it has none."""
    row = plan_store.latest(db, job_id)
    return PlanView.from_row(row) if row is not None else None


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
    plan: PlanView | None = None
    """Terraform: the saved plan the apply would run (None before the plan, or another
    runner)."""
    destroy: bool = False
    """Terraform: the job plans and applies the instance's destruction."""
    instance: str | None = None
    """Terraform: the instance the job plans for (its name pattern rendered)."""
    runs: str = ""
    """What the template runs, in one line (a playbook, a module, a Terraform module)."""
    extravars: dict[str, str] = field(default_factory=dict)
    """Ansible: the variables the play gets, rendered, secrets shown as the mask."""


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
        extravars = (
            {k: render(v, shown) for k, v in tpl.ansible.extravars.items()}
            if tpl.ansible is not None
            else {}
        )
    except OpsError as exc:  # the worker would refuse it too: say so, do not hide it
        command, env, extravars = (f"(cannot render: {exc})",), {}, {}
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
        runs=tpl.what_runs(),
        extravars=extravars,
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
        plan=job_plan(service.db, job_id) if tpl.terraform is not None else None,
        destroy=tpl.terraform is not None and tpl.terraform.destroy,
        instance=_instance(tpl.terraform.instance, shown) if tpl.terraform is not None else None,
    )


def _instance(pattern: str, values: Mapping[str, Any]) -> str:
    try:
        return render(pattern, values)
    except OpsError as exc:
        return f"(cannot render: {exc})"
