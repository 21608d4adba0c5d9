"""The approval prompt (``a``) and the approvals view (``G``, ``:approvals``).

The prompt shows exactly what an approval binds: the template, the command it renders or
the handler it calls, the parameters (secrets masked, unsafe characters escaped), the
targets, who asked and when, the expiry, the approvals so far and the digest; for a
Terraform job, the plan its apply runs (``plan_text``: counts on top, one coloured line per
resource change, destroys called out), the whole prompt scrolling when it is long. It returns
the operator's decision; the app makes the call, so a refusal (not an approver, one's own
job) comes back as the service's one line.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from opsconsole.core.approval_detail import ACTION_STYLES, SIGNS, ApprovalDetail, PlanView
from opsconsole.core.approvals import ApprovalRequest
from opsconsole.core.text import ago, visible
from opsconsole.tui.screens.views import TableView

REASON_NEEDED = "a reason is required to reject: type it above (^r again to reject)"
GLASS_REASON_NEEDED = (
    "a reason is required to break the glass: type it above (^g again to run it now)"
)


@dataclass(frozen=True)
class Decision:
    """The operator's answer: ``approve`` with an optional comment, ``reject`` with a reason."""

    verb: str
    text: str


def _when(ts: datetime | None, now: datetime) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S} ({ago(ts, now)})" if ts is not None else "never"


def _value(value: Any) -> str:
    if value is None:
        return "(not set)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return visible(text)


def what_runs(detail: ApprovalDetail, now: datetime) -> Table:
    """The facts of the request as a two-column grid: every value shown escaped."""
    job = detail.job
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, value: str, style: str = "") -> None:
        grid.add_row(label, Text(value, style=style))

    row("Template", f"{visible(job.template)} ({detail.runner})", "bold")
    if detail.handler:
        row("Handler", visible(detail.handler))
    if detail.command:
        row("Command", shlex.join(visible(a) for a in detail.command))
    elif not detail.handler and detail.runs:
        row("Runs", visible(detail.runs))
    if detail.extravars:
        row("Variables", "\n".join(f"{k} = {visible(v)}" for k, v in detail.extravars.items()))
    for k, v in detail.env.items():
        row("Env", f"{visible(k)}={visible(v)}")
    params = [f"{visible(k)} = {_value(v)}" for k, v in job.params.items()]
    row("Parameters", "\n".join(params) or "(none)")
    if detail.targets:
        row("Targets", _value(detail.targets))
    row("Asked by", f"{visible(job.submitted_by)}, {_when(job.created_at, now)}")
    row("Expires", _when(detail.expires_at, now))
    given = f" (by {visible(', '.join(detail.approved_by))})" if detail.approved_by else ""
    row("Approvals", f"{detail.approvals} of {detail.required}{given}")
    who = visible(", ".join(detail.approvers)) or "anyone with the approver role"
    own = "" if detail.self_approval else "; not the submitter"
    row("Approvers", f"{who}{own}")
    row("Digest", detail.digest)
    return grid


def plan_counts(plan: PlanView) -> Text:
    """``+2 ~0 -1`` (``±1`` for replacements) in the actions' colours."""
    counts = Text()
    counts.append(f"+{plan.add}", style="bold green")
    counts.append(f" ~{plan.change}", style="bold yellow")
    counts.append(f" -{plan.destroy}", style="bold red")
    if plan.replace:
        counts.append(f" ±{plan.replace}", style="bold magenta")
    return counts


def plan_text(detail: ApprovalDetail) -> Text:
    """The plan an approval lets the apply run: what an approver must read before deciding.

    Counts first, then a destroy warning, then one line per change (address escaped),
    then the outputs it sets; no-ops are left out. Never markup: addresses come from
    the module.
    """
    plan = detail.plan
    out = Text()
    if plan is None:
        out.append("No plan yet: ", style="bold yellow")
        out.append("the job plans first; its plan is shown here when it asks again.")
        return out
    what = "Destroy plan" if detail.destroy else "Plan"
    out.append(f"{what} ", style="bold")
    out.append_text(plan_counts(plan))
    instance = f" for {visible(detail.instance)}" if detail.instance else ""
    out.append(f"{instance}  sha256 {plan.short_hash}  {plan.status}", style="dim")
    if plan.malformed:
        out.append("\n! the stored plan summary is malformed: read the job's log", style="bold red")
    if detail.destroy:
        out.append(
            f"\n! DESTROYS instance {visible(detail.instance or '')}: "
            f"{len(plan.destroys)} resource(s) deleted",
            style="bold red",
        )
    elif plan.destroys:
        out.append(f"\n! deletes {len(plan.destroys)} resource(s)", style="bold red")
    changes = plan.changes
    if not changes:
        out.append("\nNo changes.", style="dim")
    for r in changes:
        style = ACTION_STYLES.get(r.action, "")
        out.append(f"\n{SIGNS.get(r.action, '?'):>3} ", style=f"bold {style}")
        out.append(visible(r.address), style=style)
        if r.action == "replace":
            out.append("  (delete, then create)", style="dim")
    for name, o in plan.outputs.items():
        sensitive = " (sensitive)" if o.get("sensitive") else ""
        out.append(f"\n    output {visible(name)}: {o.get('action', '?')}{sensitive}", style="dim")
    return out


class ApprovalScreen(ModalScreen[Decision | None]):
    """Approve (comment optional) or reject (reason required) one job awaiting approval."""

    BINDINGS = [
        Binding("ctrl+o", "decide('approve')", "Approve"),
        Binding("ctrl+r", "decide('reject')", "Reject"),
        Binding("ctrl+g", "decide('break_glass')", "Break glass"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, detail: ApprovalDetail, now: datetime) -> None:
        super().__init__()
        self.detail = detail
        self.now = now

    def compose(self) -> ComposeResult:
        job = self.detail.job
        plan = " plan" if self.detail.runner == "terraform" else ""
        with Vertical(classes=f"dialog wide approval{plan}"):
            yield Label(
                f"Job {job.id} awaits approval: this is exactly what will run",
                markup=False,
                classes="title",
            )
            with VerticalScroll(id="what-runs"):
                if self.detail.runner == "terraform":
                    yield Static(plan_text(self.detail), id="plan")
                yield Static(what_runs(self.detail, self.now), id="facts")
            yield Input(
                placeholder="comment (optional to approve) / reason (required to reject)",
                id="text",
            )
            yield Label("", id="error", markup=False, classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Approve (^o)", id="approve", variant="success")
                yield Button("Reject (^r)", id="reject", variant="error")
                if self.detail.break_glass:
                    yield Button("Break glass (^g)", id="break_glass", variant="warning")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Break glass is offered only where the template allows it."""
        if action == "decide" and parameters == ("break_glass",):
            return self.detail.break_glass
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.action_decide(event.button.id or "")

    def action_decide(self, verb: str) -> None:
        field = self.query_one("#text", Input)
        text = field.value.strip()
        if verb in ("reject", "break_glass") and not text:
            needed = REASON_NEEDED if verb == "reject" else GLASS_REASON_NEEDED
            self.query_one("#error", Label).update(needed)
            field.focus()
            return
        self.dismiss(Decision(verb, text))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ApprovalsScreen(TableView):
    """Every job awaiting approval, oldest first, live; ``a`` opens the prompt on the row."""

    TITLE = "Approvals: jobs waiting at their gate, oldest first (a: approve or reject)"
    COLUMNS = (
        "JOB",
        "TEMPLATE",
        "ASKED BY",
        "ASKED",
        "APPROVALS",
        "APPROVERS",
        "EXPIRES",
        "PLAN",
    )
    BINDINGS = [*TableView.BINDINGS, Binding("a", "decide", "Approve/reject")]

    def reload(self) -> None:
        def read() -> tuple[list[ApprovalRequest], dict[str, PlanView]]:
            requests = self.ops.service.approval_requests()
            return requests, self.ops.service.plans_of([r.job.id for r in requests])

        self.ops.call("approvals", read, lambda got: self.show(*got), group="view")

    def show(
        self, requests: list[ApprovalRequest], plans: dict[str, PlanView] | None = None
    ) -> None:
        plans = plans or {}
        now = self.ops.service.now()
        selected = self.selected
        self.table.clear()
        for r in requests:
            self.table.add_row(
                Text(r.job.id),
                Text(visible(r.job.template)),
                Text(visible(r.job.submitted_by)),
                Text(ago(r.job.created_at, now)),
                Text(f"{r.approvals}/{r.required}"),
                Text(visible(", ".join(r.approvers)) or "anyone"),
                Text(ago(r.expires_at, now) if r.expires_at else "never"),
                plan_counts(plans[r.job.id]) if r.job.id in plans else Text("-", style="dim"),
                key=r.job.id,
            )
        if not requests:
            self.table.add_row(Text("no job is awaiting approval", style="dim"), *[""] * 7)
        elif selected is not None and selected in {r.job.id for r in requests}:
            self.table.move_cursor(row=self.table.get_row_index(selected))

    @property
    def selected(self) -> str | None:
        """The job on the cursor row (None on the empty placeholder)."""
        if not self.table.row_count:
            return None
        key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def action_decide(self) -> None:
        job = self.selected
        if job is None:
            self.notify("no job is awaiting approval", severity="warning", markup=False)
            return
        self.ops.open_approval(job)
