"""The approval prompt (``a``), the approvals view (``G``) and the header's approvals count."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from support import submitted_by, write_template
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Static
from tui_support import NARROW, drive, label_text, notes, plain, until

from opsconsole.core.identity import os_user
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.approval import (
    GLASS_REASON_NEEDED,
    REASON_NEEDED,
    ApprovalScreen,
    ApprovalsScreen,
)
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.status_bar import StatusBar

S = JobState
GATED = """description: Restart a service, once someone approves
runner: shell
command: [systemctl, restart, '{{ unit }}']
params:
  unit: {type: string, required: true}
  token: {type: string, secret: true, required: false}
approval:
  required: %(required)d
  expires: 4h
  self_approval: false
"""


@pytest.fixture
def gated(templates: Path) -> str:
    write_template(templates, "restart", GATED % {"required": 1})
    return "restart"


def ask(service: OpsService, template: str, who: str = "alice", **params: str) -> str:
    """A job awaiting approval that ``who`` (not this process's user) asked for."""
    return submitted_by(service, SubmitRequest(template, params=params), who)


async def open_prompt(pilot: Pilot[None], job: str) -> ApprovalScreen:
    app = pilot.app
    assert isinstance(app, OpsConsole)
    queue = app.query_one("#queue", JobTable)
    queue.focus()
    await until(pilot, lambda: queue.has_focus, what="the queue focused")
    queue.move_cursor(row=queue.get_row_index(job))
    await until(pilot, lambda: app.selected_job() == job, what=f"{job} selected")
    await pilot.press("a")
    return await until(
        pilot,
        lambda: app.screen if isinstance(app.screen, ApprovalScreen) else None,
        timeout=10,
        what="the approval prompt",
    )


def facts(screen: ApprovalScreen) -> str:
    return plain(screen.query_one("#facts", Static).content, width=200)


def test_approve_with_a_comment_after_seeing_what_will_run(clocked: OpsService, gated: str) -> None:
    job = ask(clocked, gated, unit="nginx.service")
    digest = clocked.approval_detail(job).digest
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = app.query_one("#queue", JobTable)
        when = str(queue.get_cell(job, "when"))
        assert when == "0/1 approvals"  # the queue row says what it waits for
        prompt = await open_prompt(pilot, job)
        shown = facts(prompt)
        assert "restart (shell)" in shown
        assert "systemctl restart nginx.service" in shown
        assert "unit = nginx.service" in shown
        assert "token = (not set)" in shown
        assert "alice, 2026-01-01 12:00:00" in shown
        assert "2026-01-01 16:00:00 (in 4h00m)" in shown  # the expiry
        assert "0 of 1" in shown
        assert digest in shown
        prompt.query_one("#text", Input).value = "checked the change ticket"
        await pilot.press("ctrl+o")
        await until(pilot, lambda: clocked.get(job).state == S.QUEUED, timeout=10, what="approved")
        await until(pilot, lambda: any(f"approved {job}" in n for n in notes(app)))

    drive(app, script)
    [decision] = clocked.approval_decisions(job)
    assert (decision["decision"], decision["actor"], decision["comment"]) == (
        "approve",
        os_user(),
        "checked the change ticket",
    )
    assert decision["digest"] == digest


def test_reject_needs_a_reason_and_the_form_says_so_in_place(
    clocked: OpsService, gated: str
) -> None:
    job = ask(clocked, gated, unit="db.service")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        prompt = await open_prompt(pilot, job)
        await pilot.press("ctrl+r")  # no reason typed
        await pilot.pause()
        assert app.screen is prompt  # still open, nothing decided
        assert label_text(prompt.query_one("#error", Label)) == REASON_NEEDED
        assert clocked.get(job).state == S.AWAITING_APPROVAL
        prompt.query_one("#text", Input).value = "   "  # blank is no reason either
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is prompt
        prompt.query_one("#text", Input).value = "not during the sale"
        await pilot.press("ctrl+r")
        await until(
            pilot, lambda: clocked.get(job).state == S.REJECTED, timeout=10, what="rejected"
        )

    drive(app, script)
    [decision] = clocked.approval_decisions(job)
    assert (decision["decision"], decision["comment"]) == ("reject", "not during the sale")


def test_secrets_are_masked_and_unsafe_characters_escaped(clocked: OpsService, gated: str) -> None:
    job = ask(clocked, gated, unit="web\u202e\x1b[31m.service", token="hunter2-secret")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        prompt = await open_prompt(pilot, job)
        shown = facts(prompt)
        assert "hunter2" not in shown
        assert "token = ***" in shown
        assert "unit = web\\u202e\\x1b[31m.service" in shown
        assert "systemctl restart 'web\\u202e\\x1b[31m.service'" in shown
        assert "\u202e" not in shown and "\x1b" not in shown
        screen_text = "".join(str(getattr(w, "content", "")) for w in prompt.query("Static, Label"))
        assert "hunter2" not in screen_text

    drive(app, script)


def test_a_job_that_is_not_awaiting_approval_says_why_without_a_dialog(
    clocked: OpsService, gated: str
) -> None:
    plain_job = clocked.submit(SubmitRequest("echo", params={"word": "hi"})).id
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        queue = app.query_one("#queue", JobTable)
        queue.focus()
        await until(pilot, lambda: app.selected_job() == plain_job, what="the job selected")
        await pilot.press("a")
        await until(pilot, lambda: notes(app), what="a notification")
        assert notes(app) == [
            f"{plain_job} is queued: only a job awaiting approval can be approved or rejected"
        ]
        assert not isinstance(app.screen, ApprovalScreen)

    drive(app, script)


def test_a_refused_approval_is_one_line_in_a_notification(clocked: OpsService, gated: str) -> None:
    """This process's user asked for the job: the four-eyes rule refuses its approval."""
    job = clocked.submit(SubmitRequest(gated, params={"unit": "x.service"})).id
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await open_prompt(pilot, job)
        await pilot.press("ctrl+o")
        await until(pilot, lambda: notes(app), timeout=10, what="the refusal")
        [note] = notes(app)
        assert note == (
            f"approve: {os_user()} submitted job {job} and may not approve it "
            "(the template does not allow self-approval)"
        )
        assert not isinstance(app.screen, ApprovalScreen)

    drive(app, script)
    assert clocked.get(job).state == S.AWAITING_APPROVAL


def header(app: OpsConsole) -> Text:
    content = app.query_one(StatusBar).content
    assert isinstance(content, Text)
    return content


def eye_catching(text: Text, words: str) -> bool:
    """Is ``words`` in ``text`` drawn in reverse colours?"""
    start = text.plain.find(words)
    if start < 0:
        return False
    return any(
        "reverse" in str(span.style) and span.start <= start and span.end >= start + len(words)
        for span in text.spans
    )


def test_the_header_counts_approvals_in_reverse_and_follows_them_live(
    clocked: OpsService, gated: str
) -> None:
    first = ask(clocked, gated, unit="a.service")
    ask(clocked, gated, unit="b.service")
    app = OpsConsole(clocked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        assert eye_catching(header(app), "awaiting approval 2"), header(app).plain
        await pilot.resize_terminal(*NARROW)
        await until(
            pilot,
            lambda: eye_catching(header(app), "approval 2"),
            what="the 80-column header",
        )
        assert len(header(app).plain) <= 80
        clocked.approve(first)  # elsewhere (the CLI, another console): the feed brings it
        await until(
            pilot,
            lambda: eye_catching(header(app), "approval 1"),
            timeout=15,
            what="the count going down",
        )

    drive(app, script)


def test_the_approvals_view_lists_requests_and_a_opens_the_prompt_on_its_row(
    clocked: OpsService, gated: str
) -> None:
    first = ask(clocked, gated, unit="a.service")
    second = ask(clocked, gated, unit="b.service")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("colon")
        await pilot.pause()
        app.screen.query_one(Input).value = "approvals"
        await pilot.press("enter")
        view = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ApprovalsScreen) else None
        )
        table = view.query_one("#view-table", DataTable)
        await until(pilot, lambda: table.row_count == 2, what="two requests")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(2)]
        assert sorted(r[0] for r in rows) == sorted([first, second])  # same age: by id
        assert [r[2:5] for r in rows] == [["alice", "0s ago", "0/1"]] * 2
        lower = rows[1][0]
        await pilot.press("down", "a")
        prompt = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ApprovalScreen) else None
        )
        assert prompt.detail.job.id == lower  # the row the cursor is on, always
        await pilot.press("ctrl+o")
        await until(pilot, lambda: clocked.get(lower).state == S.QUEUED, timeout=10)
        await until(pilot, lambda: table.row_count == 1, timeout=10, what="the view updated")
        other = ({first, second} - {lower}).pop()
        assert clocked.get(other).state == S.AWAITING_APPROVAL

    drive(app, script)


def test_break_glass_from_the_prompt_needs_a_reason_and_opens_a_review(
    clocked: OpsService, templates: Path
) -> None:
    write_template(templates, "urgent", GATED % {"required": 1} + "  break_glass: true\n")
    write_template(templates, "restart", GATED % {"required": 1})
    urgent, plain_gate = (
        ask(clocked, "urgent", unit="web.service"),
        ask(clocked, "restart", unit="db"),
    )
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        prompt = await open_prompt(pilot, plain_gate)  # its template does not allow it
        assert not prompt.query("#break_glass")
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert app.screen is prompt and clocked.get(plain_gate).state == S.AWAITING_APPROVAL
        await pilot.press("escape")
        prompt = await open_prompt(pilot, urgent)
        assert prompt.query("#break_glass")
        await pilot.press("ctrl+g")  # no reason typed
        await pilot.pause()
        assert app.screen is prompt
        assert label_text(prompt.query_one("#error", Label)) == GLASS_REASON_NEEDED
        prompt.query_one("#text", Input).value = "site down, INC-4411"
        await pilot.press("ctrl+g")
        await until(pilot, lambda: clocked.get(urgent).state == S.QUEUED, timeout=10)

    drive(app, script)
    [review] = clocked.open_reviews()
    assert (review.job_id, review.broken_by, review.reason) == (
        urgent,
        os_user(),
        "site down, INC-4411",
    )
