"""What a Terraform approval and the instances view look like: the plan in the approval
prompt (wide, and at 80x24 where it scrolls) and the instances view, on seeded rows, a
stopped clock and a fixed secret key (the digest shown depends on it).

Update with ``pytest tests/tui/test_instance_snapshots.py --snapshot-update`` only after
looking at the differences (the HTML report pytest-textual-snapshot writes on failure).
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from instance_support import DESTROY_PLAN, applied, planned, terraform_catalog
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_support import NARROW, WIDE, plain, until

from opsconsole.config import Settings, load_settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.approval import ApprovalScreen
from opsconsole.tui.screens.instances import InstancesScreen

KEY = base64.urlsafe_b64encode(b"k" * 32).decode()


@pytest.fixture
def settings(home: Path, migrated_db: Path) -> Settings:
    """The store and the catalog in the working directory (the header shows its path)."""
    shutil.copyfile(migrated_db, Path.cwd() / "opsconsole.db")
    (Path.cwd() / "catalog" / "templates").mkdir(parents=True)
    terraform_catalog(Path("catalog"))
    return load_settings(
        home=home, catalog=Path("catalog"), db="sqlite:///opsconsole.db", secret_key=KEY
    )


def fixed(service: OpsService, job: str, new_id: str, who: str = "alice") -> str:
    """Give a job a fixed id and submitter, so the snapshot does not change run to run."""
    with service.db.write() as conn:
        conn.exec_driver_sql(
            "UPDATE jobs SET id = ?, submitted_by = ? WHERE id = ?", (new_id, who, job)
        )
    return new_id


@pytest.fixture
def fleet(clocked: OpsService) -> dict[str, str]:
    made = {}
    for n, (template, params) in enumerate(
        (
            ("web_app", {"app_name": "shop", "size": "3", "token": "t0k3n"}),
            ("web_app", {"app_name": "blog", "token": "t0k3n"}),
            ("api_service", {"name": "billing", "lb": "true"}),
        )
    ):
        job = clocked.submit(SubmitRequest(template, params=params)).id
        job = fixed(clocked, job, f"t{n}k2m9", "carol")
        name = params.get("app_name") or params["name"]
        applied(
            clocked,
            job,
            template,
            name,
            serial=n + 2,
            outputs={"url": f"https://{name}.example.internal", "db_password": "***"},
            problem="errored.tfstate kept: resolve it before the next apply"
            if name == "blog"
            else None,
        )
        made[name] = job
    return made


async def prompt(pilot: Pilot[None], job: str) -> None:
    app = pilot.app
    assert isinstance(app, OpsConsole)
    await until(pilot, lambda: app.ready, what="the first load")
    app.open_approval(job)
    screen = await until(
        pilot,
        lambda: app.screen if isinstance(app.screen, ApprovalScreen) else None,
        timeout=10,
    )
    # pushed is not yet composed: wait for the plan to be there and laid out
    await until(
        pilot,
        lambda: any(w.size.height > 0 for w in screen.query("#plan").results(Static)),
        what="the plan laid out",
    )
    await pilot.pause()


def test_plan_approval(clocked: OpsService, fleet: dict[str, str], snap_compare: Any) -> None:
    """A plan awaiting approval: counts on top, + green, ~ yellow, - red, -/+ replace."""
    job = clocked.submit(SubmitRequest("api_service", params={"name": "payments"})).id
    job = fixed(clocked, job, "p4n7q2")
    planned(clocked, job, "api_service", "payments")
    app = OpsConsole(clocked, embed=False, start_feed=False)
    assert snap_compare(app, terminal_size=WIDE, run_before=lambda p: prompt(p, job))


def test_destroy_plan_at_80_columns(
    clocked: OpsService, fleet: dict[str, str], snap_compare: Any
) -> None:
    """A destroy at 80x24: called out in red, the buttons still on screen."""
    job = fixed(clocked, clocked.destroy_instance("billing").id, "d3s7r0")
    planned(clocked, job, "api_service", "billing", DESTROY_PLAN)
    app = OpsConsole(clocked, embed=False, start_feed=False)
    assert snap_compare(app, terminal_size=NARROW, run_before=lambda p: prompt(p, job))


def test_instances_view(clocked: OpsService, fleet: dict[str, str], snap_compare: Any) -> None:
    """I: every instance, the selected one's outputs and resources below."""
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.ready, what="the first load")
        await pilot.press("I")
        view = await until(
            pilot, lambda: app.screen if isinstance(app.screen, InstancesScreen) else None
        )
        await until(pilot, lambda: bool(view.query("#instance-detail")), what="composed")
        table = view.query_one("#view-table", DataTable)
        await until(pilot, lambda: table.row_count == 3, what="instance rows")
        table.focus()
        table.move_cursor(row=table.get_row_index("web_app/blog"))
        detail = view.query_one("#instance-detail", Static)
        await until(pilot, lambda: "web_app/blog" in plain(detail.content), what="blog shown")
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
