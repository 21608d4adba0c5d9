"""Job detail: parameters, events (the audit trail), attempts, error, result, dependencies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from opsconsole.core.text import STATE_STYLES, duration, visible
from opsconsole.core.views import JobView
from opsconsole.tui.actions import refusal

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsole


def _plain(value: Any) -> Text:
    if value is None:
        return Text("-", style="dim")
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    return Text(visible(value))


def detail_table(v: JobView) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("job", _plain(f"{v.id}  {v.template}"))
    t.add_row("state", Text(v.state.value, style=STATE_STYLES.get(v.state.value, "")))
    t.add_row("priority", Text(str(v.priority)))
    t.add_row("attempts", Text(f"{v.attempts} (automatic retries allowed: {v.max_retries})"))
    t.add_row("submitted", _plain(f"{v.created_at:%Y-%m-%d %H:%M:%S}Z by {v.submitted_by}"))
    t.add_row("run at", Text(f"{v.run_at:%Y-%m-%d %H:%M:%S}Z"))
    if v.started_at:
        t.add_row("started", _plain(f"{v.started_at:%Y-%m-%d %H:%M:%S}Z on {v.worker or '-'}"))
    if v.finished_at:
        t.add_row(
            "finished", Text(f"{v.finished_at:%Y-%m-%d %H:%M:%S}Z  ({duration(v.duration_s)})")
        )
    if v.progress is not None or v.step:
        t.add_row("progress", _plain(f"{v.progress or 0}% {v.step or ''}"))
    t.add_row("depends on", _plain(", ".join(v.depends_on) or None))
    if v.concurrency_key:
        t.add_row("lock", _plain(v.concurrency_key))
    if v.tags:
        t.add_row("tags", _plain(", ".join(v.tags)))
    if v.dry_run:
        t.add_row("dry run", Text("yes", style="yellow"))
    if v.exit_code is not None:
        t.add_row("exit code", Text(str(v.exit_code)))
    for name, value in v.params.items():
        t.add_row(f"param {name}", _plain(value))
    t.add_row("result", _plain(v.result))
    if v.error:
        message = visible(str(v.error.get("message", "")), multiline=True)
        t.add_row("error", Text(message, style="red"))
        if v.error.get("kind"):
            t.add_row("error kind", _plain(v.error.get("kind")))
    if v.log_dropped:
        t.add_row("log", Text(f"{v.log_lines} lines, {v.log_dropped} truncated", style="yellow"))
    can = [a for a, ok in (("cancel (c)", v.can_cancel), ("retry (r)", v.can_retry)) if ok]
    t.add_row("actions", Text(", ".join(can) or "-"))
    return t


class JobScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("c", "cancel", "Cancel job"),
        Binding("c", "refused('cancel')", show=False),
        Binding("r", "retry", "Retry job"),
        Binding("r", "refused('retry')", show=False),
        Binding("l", "log", "Log"),
        Binding("H", "hosts", "Hosts"),
        Binding("H", "refused('hosts')", show=False),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.job_view: JobView | None = None

    @property
    def ops(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="job-detail"):
            yield Static(Text(f"loading {self.job_id}…", style="dim"), id="job-fields")
            yield Static(Text("events", style="bold"), classes="section")
            yield DataTable(id="job-events", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#job-events", DataTable)
        table.add_columns("WHEN", "EVENT", "STATE", "ATTEMPT", "BY", "MESSAGE")
        self.reload()

    def reload(self) -> None:
        self.ops.call(
            "load job", lambda: self.ops.service.get(self.job_id, with_events=True), self.show
        )

    def show(self, v: JobView) -> None:
        self.job_view = v
        self.refresh_bindings()
        self.query_one("#job-fields", Static).update(detail_table(v))
        table = self.query_one("#job-events", DataTable)
        table.clear()
        for e in v.events or ():
            table.add_row(
                Text(f"{e.ts:%m-%d %H:%M:%S}"),
                Text(e.kind),
                Text(e.state or "", style=STATE_STYLES.get(e.state or "", "")),
                Text("" if e.attempt is None else str(e.attempt)),
                Text(visible(e.actor)),
                Text(visible(e.message)),
            )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel and retry are offered only when they apply to this job."""
        if action in ("cancel", "retry", "hosts") and self.job_view is not None:
            return refusal(action, self.job_view) is None
        return action != "hosts"  # offered once the job is known to be an Ansible job

    def action_refused(self, action: str) -> None:
        reason = refusal(action, self.job_view) if self.job_view is not None else None
        if reason is not None:
            self.notify(visible(reason), severity="warning", markup=False)

    def on_jobs_changed(self, job_ids: set[str]) -> None:
        if self.job_id in job_ids:
            self.reload()

    def action_cancel(self) -> None:
        self.ops.action_cancel(self.job_id)

    def action_retry(self) -> None:
        self.ops.action_retry(self.job_id)

    def action_hosts(self) -> None:
        self.ops.action_hosts(self.job_id)

    def action_log(self) -> None:
        self.app.pop_screen()
        self.ops.show_log(self.job_id)
