"""The instances view (``I``, ``:instances``): Terraform instances, their outputs and
resources, and the request of a gated destroy (``d``).

The same reads as ``opsconsole instances list`` (``OpsService.instances``), refreshed on the
feed's ticks like the other views. ``d`` asks the operator to type the instance's name (as
``submit --confirm`` does), then any secret parameter again (unechoed), then calls
``OpsService.destroy_instance``: the destroy is a job that plans, then waits for an
approver; nothing is deleted from this screen.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.widgets import DataTable, Static

from opsconsole.core.instance_ops import InstanceView
from opsconsole.core.text import STATE_STYLES, ago, visible
from opsconsole.core.views import JobView
from opsconsole.tui.screens.dialogs import PromptScreen
from opsconsole.tui.screens.views import TableView

STATUS_STYLES = {
    "applied": "green",
    "applying": "cyan",
    "destroying": "yellow",
    "destroyed": "dim",
    "errored": "bold red",
    "new": "",
}


def _value(value: Any) -> str:
    return visible(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def instance_detail(view: InstanceView, now: Any) -> Table:
    """The selected instance: outputs (sensitive ones already masked), resources, problem."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Instance", Text(visible(view.ref), style="bold"))
    state = f" ({view.last_job_state})" if view.last_job_state else ""
    grid.add_row("Last job", Text(f"{view.last_job or '-'}{state}, {ago(view.updated_at, now)}"))
    grid.add_row("Applied plan", Text(view.plan_hash or "-"))
    if view.problem:
        grid.add_row("Problem", Text(visible(view.problem), style="bold red"))
    outputs = "\n".join(f"{visible(k)} = {_value(v)}" for k, v in view.outputs.items())
    grid.add_row("Outputs", Text(outputs or "(none)"))
    grid.add_row("Resources", Text("\n".join(visible(r) for r in view.resources) or "(none)"))
    return grid


class InstancesScreen(TableView):
    """Every Terraform instance, live; the selected one's outputs and resources below."""

    TITLE = "Instances: Terraform instances and what their last apply left (d: destroy)"
    COLUMNS = ("TEMPLATE", "INSTANCE", "STATUS", "LAST JOB", "SERIAL", "PLAN", "UPDATED")
    DETAIL = "instance"
    BINDINGS = [*TableView.BINDINGS, Binding("d", "destroy", "Destroy")]

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, InstanceView] = {}

    def reload(self) -> None:
        self.ops.call("instances", self.ops.service.instances, self.show, group="view")

    def show(self, views: list[InstanceView]) -> None:
        now = self.ops.service.now()
        selected = self.selected
        self.views = {v.ref: v for v in views}
        self.table.clear()
        for v in views:
            job = Text(v.last_job or "-")
            if v.last_job_state:
                job.append(f" {v.last_job_state}", style=STATE_STYLES.get(v.last_job_state, ""))
            self.table.add_row(
                Text(visible(v.template)),
                Text(visible(v.name), style="bold"),
                Text(v.status, style=STATUS_STYLES.get(v.status, "")),
                job,
                Text("-" if v.serial is None else str(v.serial)),
                Text((v.plan_hash or "-")[:12]),
                Text(ago(v.updated_at, now)),
                key=v.ref,
            )
        if not views:
            self.table.add_row(Text("no instance yet", style="dim"), *[""] * 6)
        elif selected in self.views:
            self.table.move_cursor(row=self.table.get_row_index(selected))
        self.describe()

    @property
    def selected(self) -> str | None:
        """``TEMPLATE/NAME`` of the cursor row (None on the empty placeholder)."""
        if not self.table.row_count:
            return None
        key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    @on(DataTable.RowHighlighted, "#view-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.describe()

    def describe(self) -> None:
        """Show the selected instance's detail (from the rows already read: no I/O)."""
        view = self.views.get(self.selected or "")
        pane = self.query_one("#instance-detail", Static)
        if view is None:
            pane.update(Text("no instance selected", style="dim"))
        else:
            pane.update(instance_detail(view, self.ops.service.now()))

    def action_destroy(self) -> None:
        ref = self.selected
        if ref is None:
            self.notify("no instance selected", severity="warning", markup=False)
            return
        self.ops.call(
            "destroy",
            lambda: self.ops.service.destroy_params(ref),
            lambda got: self._confirm(ref, got[0], got[2]),
        )

    def _confirm(self, ref: str, view: InstanceView, needed: list[str]) -> None:
        question = (
            f"Destroy instance {ref}?\n"
            "This submits a job that plans the destroy; an approver sees that plan before "
            f'anything is deleted. Type "{view.name}" to confirm:'
        )

        def typed(answer: str | None) -> None:
            if answer is None:
                return
            if answer.strip() != view.name:
                self.notify(
                    f'the confirmation does not match "{visible(view.name)}": nothing submitted',
                    severity="warning",
                    markup=False,
                )
                return
            self._ask_secrets(ref, list(needed), {})

        self.app.push_screen(PromptScreen(question, placeholder=view.name), typed)

    def _ask_secrets(self, ref: str, needed: list[str], given: dict[str, str]) -> None:
        """Each secret parameter again, unechoed (a job's secrets are dropped when it ends)."""
        if not needed:
            self.ops.call(
                "destroy",
                lambda: self.ops.service.destroy_instance(ref, params=given),
                lambda job: self._requested(ref, job),
            )
            return
        name = needed[0]

        def answered(value: str | None) -> None:
            if value is None:
                self.notify("destroy not requested", markup=False)
                return
            self._ask_secrets(ref, needed[1:], {**given, name: value})

        self.app.push_screen(
            PromptScreen(
                f"{name} (secret parameter of the last job, needed again):", password=True
            ),
            answered,
        )

    def _requested(self, ref: str, job: JobView) -> None:
        self.notify(
            f"destroy of {visible(ref)} requested as job {job.id}: it plans the destroy, "
            "then awaits an approval of that plan",
            markup=False,
            timeout=8,
        )
        self.ops.feed.poke()
        self.reload()
