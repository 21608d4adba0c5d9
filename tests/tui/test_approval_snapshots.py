"""What governance looks like on screen: the approval prompt, the header's approvals count
and the audit view, on seeded jobs, a stopped clock and a fixed secret key (the digest an
approval binds depends on it).

Update with ``pytest tests/tui/test_approval_snapshots.py --snapshot-update`` only after
looking at the differences (the HTML report pytest-textual-snapshot writes on failure).
"""

from __future__ import annotations

import base64
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import write_template
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Static
from tui_support import NARROW, WIDE, until

from opsconsole.config import Settings, load_settings
from opsconsole.core.secrets import MASK
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.approval import ApprovalScreen
from opsconsole.tui.screens.audit import AuditScreen
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.status_bar import StatusBar

S = JobState
KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
RESTART = """description: Restart a service (someone approves it first)
runner: shell
command: [systemctl, restart, '{{ unit }}']
params:
  unit: {type: string, required: true}
  token: {type: string, secret: true, required: false}
approval:
  required: 2
  approvers: ["group:root", "user:daemon"]
  expires: 4h
"""


@pytest.fixture
def settings(home: Path, migrated_db: Path) -> Settings:
    """The store and the catalog in the working directory (the header shows its path)."""
    shutil.copyfile(migrated_db, Path.cwd() / "opsconsole.db")
    templates = Path.cwd() / "catalog" / "templates"
    templates.mkdir(parents=True)
    write_template(Path("catalog"), "restart", RESTART)
    write_template(
        Path("catalog"),
        "hotfix",
        "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {type: string}\n"
        "approval: {required: 1}\n",
    )
    write_template(
        Path("catalog"),
        "glass",
        "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {type: string}\n"
        "approval: {required: 1, break_glass: true}\n",
    )
    write_template(
        Path("catalog"),
        "echo",
        "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {type: string}\n",
    )
    return load_settings(
        home=home, catalog=Path("catalog"), db="sqlite:///opsconsole.db", secret_key=KEY
    )


def ask(service: OpsService, put: Any, job_id: str, template: str, **kw: Any) -> str:
    """A job awaiting approval with a fixed id, as ``submit`` would store it."""
    params = dict(kw.pop("params"))
    secrets = kw.pop("secrets", {})
    spec = service.current_catalog().get(template).raw
    put(
        job_id,
        S.AWAITING_APPROVAL,
        template=template,
        spec=spec,
        params={**params, **dict.fromkeys(secrets, MASK)},
        secret_blob=service.box.seal(secrets),
        gate_round=1,
        approval_expires_at=service.now() + timedelta(hours=4),
        **kw,
    )
    return job_id


@pytest.fixture
def gated(clocked: OpsService, put: Any) -> list[str]:
    """Two restarts awaiting approval (one with a secret, one with a right-to-left override
    in a parameter), a queued echo, a failed run."""
    ids = [
        ask(
            clocked,
            put,
            "a7pq2k",
            "restart",
            params={"unit": "nginx.service"},
            secrets={"token": "s3cret-value"},
            submitted_by="alice",
            age=600,
        ),
        ask(
            clocked,
            put,
            "b3xw9m",
            "restart",
            params={"unit": "db\u202e.service"},
            submitted_by="bob",
            age=300,
        ),
    ]
    put("e1q2w3", age=60, params={"word": "hello"})
    put("f4r5t6", S.FAILED, ended=120, exit_code=1)
    return ids


async def loaded(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, OpsConsole)
    await until(pilot, lambda: app.ready, what="the first load")
    footer = app.query_one(Footer)
    await until(pilot, lambda: len(footer.query("FooterKey")) > 0, timeout=20, what="keys")
    tables = [t for t in app.query(JobTable) if t.row_count]
    await until(
        pilot,
        lambda: all(t.virtual_size.height >= t.row_count + 1 for t in tables),
        timeout=20,
        what="column widths",
    )


def test_header_counts_approvals_at_80_columns(
    clocked: OpsService, gated: list[str], snap_compare: Any
) -> None:
    """80x24, the queue first: `approval 2` in reverse, the rows saying 0/2 approvals."""
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        status = app.query_one(StatusBar)
        await until(pilot, lambda: "approval 2" in str(status.content), what="the count")
        await pilot.pause()

    assert snap_compare(app, terminal_size=NARROW, run_before=run_before)


def test_approval_prompt(clocked: OpsService, gated: list[str], snap_compare: Any) -> None:
    """The prompt on the oldest request: what will run, secrets masked, the digest."""
    app = OpsConsole(clocked, embed=False, start_feed=False)
    job = gated[0]

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        queue = app.query_one("#queue", JobTable)
        queue.focus()
        await until(pilot, lambda: queue.has_focus, what="the queue focused")
        queue.move_cursor(row=queue.get_row_index(job))
        await until(pilot, lambda: app.selected_job() == job, what="the job selected")
        await pilot.press("a")
        prompt = await until(
            pilot,
            lambda: app.screen if isinstance(app.screen, ApprovalScreen) else None,
            timeout=10,
        )
        await until(pilot, lambda: prompt.query_one("#facts", Static).size.height > 0)
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_audit_view(clocked: OpsService, gated: list[str], put: Any, snap_compare: Any) -> None:
    """A: submissions, an approval with its comment, a rejection with its reason."""
    fix = [
        ask(clocked, put, job, "hotfix", params={"word": word}, submitted_by="carol")
        for job, word in (("h1k2m3", "one"), ("h4n5p6", "two"))
    ]
    clocked.approve(fix[0], comment="change ticket CHG-1042 checked")
    clocked.reject(fix[1], reason="not during the sale")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("A")
        audit = await until(
            pilot, lambda: app.screen if isinstance(app.screen, AuditScreen) else None
        )
        table = audit.query_one("#view-table", DataTable)
        await until(pilot, lambda: table.row_count >= 5, timeout=10, what="audit rows")
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_break_glass_banner(
    clocked: OpsService, gated: list[str], put: Any, snap_compare: Any
) -> None:
    """A break-glass run nobody reviewed yet: a banner under the header, in every console."""
    job = ask(clocked, put, "g7h8j9", "glass", params={"word": "now"}, submitted_by="carol")
    clocked.break_glass(job, reason="site down, INC-4411")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        banner = app.query_one("#review-banner", Static)
        await until(pilot, lambda: "INC-4411" in str(banner.content), what="the banner")
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
