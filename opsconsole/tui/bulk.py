"""The console's bulk keys: act on every row a pane's filter shows, and open the audit view.

A mixin of the app. The rows acted on are exactly those the focused pane shows under its
``/`` filter, confirmed by count, and the action is the service's ``bulk_act``: the same
per-job verbs, events and skip rules as ``jobs cancel --state ...`` on the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.core.states import Verb
from opsconsole.core.text import visible
from opsconsole.tui.messages import JobsChanged
from opsconsole.tui.screens.audit import AuditScreen
from opsconsole.tui.screens.dialogs import ConfirmScreen

if TYPE_CHECKING:
    from textual.app import App

    from opsconsole.core.bulk import BulkResult
    from opsconsole.core.service import OpsService
    from opsconsole.core.views import JobView
    from opsconsole.tui.feed import Feed
    from opsconsole.tui.widgets.job_table import JobTable

    _Base = App[None]
else:
    _Base = object


class BulkActions(_Base):
    service: OpsService
    feed: Feed

    if TYPE_CHECKING:

        def focused_table(self) -> JobTable | None: ...

        def call(self, action: str, fn: object, on_ok: object = None) -> None: ...

    def action_cancel_shown(self) -> None:
        self._act_on_shown(Verb.CANCEL)

    def action_retry_shown(self) -> None:
        self._act_on_shown(Verb.RETRY)

    def action_show_audit(self) -> None:
        self.push_screen(AuditScreen())

    def _act_on_shown(self, verb: Verb) -> None:
        table = self.focused_table()
        key = "C" if verb == Verb.CANCEL else "R"
        if table is None or not table.filter_text:
            self.notify(
                f"{key} acts on every row a filter shows: / filters the pane first",
                severity="warning",
                markup=False,
            )
            return
        ids = [str(row.key.value) for row in table.ordered_rows]
        if not ids:
            self.notify(f"no rows match '{visible(table.filter_text)}'", markup=False)
            return
        n = len(ids)
        jobs = f"{n} job{'' if n == 1 else 's'}"
        question = (
            f"{verb.value.capitalize()} the {jobs} shown in {table.kind} "
            f"(filter: {visible(table.filter_text)})?"
        )

        def act() -> tuple[BulkResult, list[JobView]]:
            # off the UI thread: the action and the read of what it changed
            result = self.service.bulk_act(verb, ids)
            return result, self.service.jobs_by_id([o.job for o in result.outcomes])

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.call(verb.value, act, self._bulk_done)

        self.push_screen(
            ConfirmScreen(question, yes=f"{verb.value.capitalize()} {jobs}", no="Keep them"),
            confirmed,
        )

    def _bulk_done(self, done: tuple[BulkResult, list[JobView]]) -> None:
        result, changed = done
        self.notify(
            visible(result.summary()),
            severity="warning" if result.skipped else "information",
            markup=False,
            timeout=10,
        )
        self.post_message(JobsChanged(changed))
        self.feed.poke()
