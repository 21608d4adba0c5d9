"""The selected job: the one row the operator is on, and every action taken on a job.

The only place that decides which job an action acts on: the focused table's cursor row,
or, while the log pane has the focus, the job whose log it shows. The log tail follows that
job, only its row looks selected, and an action that cannot apply to it is left out of the
footer and, when its key is pressed anyway, says why in a notification (never a dialog).
A mixin of ``OpsConsole``; store calls go through ``OpsConsole.call`` (a thread worker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.dom import NoScreen
from textual.events import DescendantFocus
from textual.screen import ModalScreen
from textual.widgets import DataTable

from opsconsole.core.secrets import MASK
from opsconsole.core.states import JobState
from opsconsole.core.text import visible
from opsconsole.core.views import JobView
from opsconsole.tui import actions
from opsconsole.tui.actions import refusal
from opsconsole.tui.messages import JobsChanged
from opsconsole.tui.screens.dialogs import ConfirmScreen, PromptScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.submit import SubmitScreen
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView

if TYPE_CHECKING:
    from textual.app import App
    from textual.widget import Widget

    from opsconsole.core.service import OpsService
    from opsconsole.tui.feed import Feed

    AppBase = App[None]
else:
    AppBase = object

S = JobState
TABLES = ("queue", "running", "history")
PANE_TITLES = {"queue": "Queue", "running": "Running", "history": "History", "log": "Log"}


class Selection(AppBase):
    """Needs the app's ``service``, ``feed``, ``call``, ``activate`` and the log tail's
    ``show_log`` and ``update_log_title``."""

    service: OpsService
    feed: Feed
    log_job: str | None
    focus_wanted: Widget | None
    allowed: tuple[str, ...] = ()
    """The job actions the footer offers now; the footer is redrawn when this changes."""

    if TYPE_CHECKING:

        def call(self, action: str, fn: Callable[[], Any], on_ok: Any = None) -> None: ...
        def activate(self, pane: str) -> None: ...
        def show_log(self, job_id: str | None) -> None: ...
        def update_log_title(self) -> None: ...

    # -- which job ------------------------------------------------------------------------

    def table(self, name: str) -> JobTable:
        return self.query_one(f"#{name}", JobTable)

    def known(self, job_id: str) -> JobView | None:
        """The job as the tables last showed it (None when no table holds it)."""
        for name in TABLES:
            v = self.table(name).views.get(job_id)
            if v is not None:
                return v
        return None

    def focused_table(self) -> JobTable | None:
        focused = self.focused
        return focused if isinstance(focused, JobTable) else None

    def selected_job(self) -> str | None:
        """The focused table's cursor row; on the log pane (or anywhere else), its job."""
        table = self.focused_table()
        if table is not None:
            return table.selected_id
        return self.log_job

    def why_not(self, action: str, job: str | None = None) -> str | None:
        """Why ``action`` cannot act on ``job`` (default: the selected job) now."""
        if action not in actions.ON_JOB:
            return None
        job = job or self.selected_job()
        if job is None:
            table = self.focused_table()
            where = f": {PANE_TITLES[table.kind]} is empty" if table is not None else ""
            return f"no job selected{where}"
        view = self.known(job)
        return refusal(action, view) if view is not None else None

    def in_front(self, table: JobTable) -> bool:
        """Is ``table`` the pane the operator is on: the one just activated, else focused?"""
        wanted = self.focus_wanted
        return table.has_focus if wanted is None else table is wanted

    def select(self, job_id: str) -> None:
        """Put the cursor on ``job_id`` in whichever pane holds it, and go to that pane."""
        for name in TABLES:
            table = self.table(name)
            if job_id in table.views:
                self.activate(name)
                table.move_cursor(row=table.get_row_index(job_id))
                self.show_log(job_id)
                return

    def selection_moved(self) -> None:
        """The focus, a cursor or a job changed: the log follows, the footer and rows too."""
        if not self.is_running:  # shutting down: the widgets may be gone
            return
        if self.screen is not self.screen_stack[0]:  # a view or dialog is in front
            self.allowed = ("?",)  # unknown: redraw the footer once the main screen is back
            return
        table = self.focused_table()
        if table is not None and table.selected_id and table.selected_id != self.log_job:
            self.show_log(table.selected_id)
        log_focused = isinstance(self.focused, LogView)
        for name in TABLES:
            t = self.table(name)
            # on the log pane, the row its job came from stays marked (dimmed)
            t.set_class(log_focused and t.selected_id == self.log_job, "-origin")
        allowed = tuple(a for a in sorted(actions.ON_JOB) if self.why_not(a) is None)
        if allowed != self.allowed:
            self.allowed = allowed
            self.refresh_bindings()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if not self.is_running or not event.widget.is_attached:  # shutting down
            return
        try:
            screen = event.widget.screen
        except NoScreen:  # removed while the event was on its way
            return
        if screen is self.screen_stack[0]:
            self.selection_moved()

    def on_job_table_selected(self, msg: JobTable.Selected) -> None:
        if msg.job_id and self.in_front(msg.table):
            self.show_log(msg.job_id)
        self.selection_moved()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, JobTable):
            self.action_detail()

    # -- what the footer offers -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Registry keys belong to the main screen; a job action only when it applies."""
        if action in actions.BY_NAME and self.screen_stack and self.is_running:
            screen = self.screen
            if screen is not self.screen_stack[0] and not isinstance(screen, ModalScreen):
                return False
            if self.why_not(action) is not None:
                return False
        return True

    def action_refused(self, action: str) -> None:
        """The key of an action that does not apply now: say why, ask nothing."""
        reason = self.why_not(action)
        if reason is not None:
            self.notify(visible(reason), severity="warning", markup=False)

    async def attempt(self, action: str) -> None:
        """Run a registry action (the command palette); one that cannot apply says why."""
        if not await self.run_action(action):
            self.action_refused(action)

    # -- the actions ----------------------------------------------------------------------

    def action_submit(self) -> None:
        def opened(found: tuple[list[Any], list[str]]) -> None:
            templates, problems = found
            self.push_screen(SubmitScreen(templates, problems=problems), self.submitted)

        def load() -> tuple[list[Any], list[str]]:
            return self.service.templates(), self.service.catalog_problems()

        self.call("templates", load, opened)

    def submitted(self, view: JobView | None) -> None:
        """The form closed on a new job: it becomes the selected job."""
        if view is None:
            return
        self.notify(f"submitted {view.id} ({view.template}): {view.state.value}", markup=False)
        for name in TABLES:
            self.table(name).upsert([view])
        self.select(view.id)
        self.feed.poke()

    def action_cancel(self, job_id: str | None = None) -> None:
        job = job_id or self.selected_job()
        reason = self.why_not("cancel", job)
        if reason is not None or job is None:
            self.notify(visible(reason or "no job selected"), severity="warning", markup=False)
            return
        known = self.known(job)
        what = f"{job} ({known.template}, {known.state.value})" if known else job

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.call("cancel", lambda: self.service.cancel(job), self.cancelled)

        self.push_screen(
            ConfirmScreen(f"Cancel job {visible(what)}?", yes="Cancel job", no="Keep it"),
            confirmed,
        )

    def cancelled(self, view: JobView) -> None:
        """A pending job is cancelled at once; a running one only once its worker stops it."""
        if view.state == S.RUNNING:
            grace = self.service.settings.kill_grace
            self.notify(
                f"cancellation of {view.id} requested: its worker stops it (TERM, then KILL "
                f"after {grace:g}s) and it moves to History as cancelled",
                markup=False,
                timeout=10,
            )
        else:
            self.notify(f"cancel: {view.id} is {view.state.value}", markup=False)
        self.post_message(JobsChanged([view]))
        self.feed.poke()

    def acted(self, verb: str) -> Callable[[JobView], None]:
        def done(view: JobView) -> None:
            self.notify(f"{verb}: {view.id} is {view.state.value}", markup=False)
            self.post_message(JobsChanged([view]))
            self.feed.poke()

        return done

    def action_retry(self, job_id: str | None = None) -> None:
        job = job_id or self.selected_job()
        reason = self.why_not("retry", job)
        if reason is not None or job is None:
            self.notify(visible(reason or "no job selected"), severity="warning", markup=False)
            return

        def got(view: JobView) -> None:
            reason = refusal("retry", view)
            if reason is not None:
                self.notify(visible(reason), severity="warning", markup=False)
                return
            secrets = [k for k, v in view.params.items() if v == MASK]
            self.ask_secrets(view.id, secrets, {})

        self.call("retry", lambda: self.service.get(job), got)

    def ask_secrets(self, job: str, names: list[str], given: dict[str, str]) -> None:
        if not names:
            self.call("retry", lambda: self.service.retry(job, params=given), self.acted("retry"))
            return

        def answered(value: str | None) -> None:
            if value is None:
                return
            self.ask_secrets(job, names[1:], {**given, names[0]: value})

        self.push_screen(
            PromptScreen(
                f"Secret '{names[0]}' for the retry of {job} (secrets are dropped when a job ends)",
                password=True,
            ),
            answered,
        )

    def action_detail(self) -> None:
        job = self.selected_job()
        if job is None:
            self.action_refused("detail")
            return
        self.push_screen(JobScreen(job))

    def action_follow(self) -> None:
        job = self.selected_job()
        if job is None:
            self.action_refused("follow")
            return
        if job != self.log_job:
            self.show_log(job)
        view = self.query_one(LogView)
        view.action_follow()
        if self.screen.has_class("narrow"):
            self.activate("log")
        view.focus()
        self.update_log_title()

    def action_priority(self) -> None:
        job = self.selected_job()
        reason = self.why_not("priority", job)
        known = self.known(job) if job else None
        if job is None or known is None or reason is not None:
            self.notify(
                visible(reason or "select a job in the queue to change its priority"),
                severity="warning",
                markup=False,
            )
            return

        def answered(value: str | None) -> None:
            if value:
                self.call(
                    "priority",
                    lambda: self.service.set_priority(job, value.strip()),
                    self.acted("priority"),
                )

        self.push_screen(
            PromptScreen(
                f"Priority of {job} (low, normal, high, critical, 0-100)", value=str(known.priority)
            ),
            answered,
        )
