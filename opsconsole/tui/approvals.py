"""The console's approval keys: ``a`` on the selected job, and the approvals view.

A mixin of the app. The prompt opens only on a job awaiting approval (any other job's ``a``
says why in a notification, as every job action does); what it shows is read off the UI
thread (``OpsService.approval_detail``) and the decision goes to ``OpsService.approve`` or
``reject``, whose refusals (exit 4 on the command line) come back as one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.core.text import visible
from opsconsole.tui.messages import JobsChanged
from opsconsole.tui.screens.approval import ApprovalScreen, ApprovalsScreen, Decision
from opsconsole.tui.screens.views import TableView

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from textual.app import App

    from opsconsole.core.approval_detail import ApprovalDetail
    from opsconsole.core.service import OpsService
    from opsconsole.core.views import JobView
    from opsconsole.tui.feed import Feed

    _Base = App[None]
else:
    _Base = object


class ApprovalActions(_Base):
    service: OpsService
    feed: Feed

    if TYPE_CHECKING:

        def call(
            self, action: str, fn: Callable[[], Any], on_ok: Callable[[Any], Any] | None = None
        ) -> None: ...
        def selected_job(self) -> str | None: ...
        def why_not(self, action: str, job: str | None = None) -> str | None: ...

    def action_approve(self) -> None:
        job = self.selected_job()
        reason = self.why_not("approve", job)
        if reason is not None or job is None:
            self.notify(visible(reason or "no job selected"), severity="warning", markup=False)
            return
        self.open_approval(job)

    def open_approval(self, job: str) -> None:
        """Read what ``job`` would run, then ask; the decision acts on exactly ``job``."""

        def opened(detail: ApprovalDetail) -> None:
            def answered(decision: Decision | None) -> None:
                if decision is not None:
                    self.decide(detail.job.id, decision)

            self.push_screen(ApprovalScreen(detail, self.service.now()), answered)

        self.call("approve", lambda: self.service.approval_detail(job), opened)

    def decide(self, job: str, decision: Decision) -> None:
        if decision.verb == "approve":
            self.call(
                "approve",
                lambda: self.service.approve(job, comment=decision.text),
                self._decided("approved"),
            )
        elif decision.verb == "break_glass":
            # run now; the review another approver must acknowledge opens with it
            self.call(
                "break glass",
                lambda: self.service.break_glass(job, reason=decision.text)[0],
                self._decided("broke the glass on"),
            )
        else:
            self.call(
                "reject",
                lambda: self.service.reject(job, reason=decision.text),
                self._decided("rejected"),
            )

    def _decided(self, verb: str) -> Callable[[JobView], None]:
        def done(view: JobView) -> None:
            self.notify(f"{verb} {view.id}: it is {view.state.value}", markup=False)
            self.post_message(JobsChanged([view]))
            self.feed.poke()
            if isinstance(self.screen, TableView):  # the approvals view: its row is decided
                self.screen.on_feed_tick()

        return done

    def action_show_approvals(self) -> None:
        self.push_screen(ApprovalsScreen())
