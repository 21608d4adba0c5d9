"""The Terraform plan in the approval prompt (``a``) and the instances view (``I``).

Instance rows and plans are seeded as the Terraform runner writes them
(``instance_support``); the destroy goes through ``OpsService.destroy_instance``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from instance_support import DESTROY_PLAN, HASH, applied, planned, terraform_catalog
from rich.text import Text
from support import sql, submitted_by
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from tui_support import NARROW, drive, notes, plain, until

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.approval import ApprovalScreen, ApprovalsScreen
from opsconsole.tui.screens.dialogs import PromptScreen
from opsconsole.tui.screens.instances import InstancesScreen

S = JobState


@pytest.fixture
def fleet(clocked: OpsService, catalog: Path) -> dict[str, str]:
    terraform_catalog(catalog)
    clocked.reload_catalog()
    made = {}
    for template, params in (
        ("web_app", {"app_name": "shop", "token": "t0k3n"}),
        ("api_service", {"name": "billing"}),
    ):
        job = clocked.submit(SubmitRequest(template, params=params)).id
        name = params.get("app_name") or params["name"]
        applied(
            clocked,
            job,
            template,
            name,
            outputs={"url": f"http://{name}.local", "db_password": "***"},
        )
        made[name] = job
    return made


def gated_plan(clocked: OpsService, summary: dict | None = None) -> str:
    job = submitted_by(clocked, SubmitRequest("api_service", params={"name": "new"}), "alice")
    planned(clocked, job, "api_service", "new", summary)
    return job


async def prompt_on(pilot: Pilot[None], job: str) -> ApprovalScreen:
    app = pilot.app
    assert isinstance(app, OpsConsole)
    await pilot.press("G")
    view = await until(
        pilot, lambda: app.screen if isinstance(app.screen, ApprovalsScreen) else None
    )
    await until(pilot, lambda: bool(view.query("#view-table")), what="the view composed")
    table = view.query_one("#view-table", DataTable)
    await until(pilot, lambda: job in [str(r.key.value) for r in table.ordered_rows])
    table.move_cursor(row=table.get_row_index(job))
    await pilot.press("a")
    prompt = await until(
        pilot,
        lambda: app.screen if isinstance(app.screen, ApprovalScreen) else None,
        timeout=10,
        what="the approval prompt",
    )
    # pushed is not yet composed: wait for its widgets
    await until(pilot, lambda: bool(prompt.query("#plan")), what="the plan composed")
    return prompt


def test_the_prompt_shows_the_plan_coloured_with_the_counts_on_top(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    job = gated_plan(clocked)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        prompt = await prompt_on(pilot, job)
        content = prompt.query_one("#plan", Static).content
        assert isinstance(content, Text)
        lines = content.plain.splitlines()
        assert lines[0] == f"Plan +2 ~1 -1 ±1 for new  sha256 {HASH[:12]}  pending"
        assert lines[1] == "! deletes 2 resource(s)"
        assert lines[2:7] == [
            "  + terraform_data.web",
            "  + terraform_data.dns",
            "  ~ terraform_data.config",
            "  - terraform_data.old_cache",
            "-/+ terraform_data.lb  (delete, then create)",
        ]
        assert "terraform_data.keep" not in content.plain
        assert "output admin_password: create (sensitive)" in content.plain

        def style_of(word: str) -> str:
            start = content.plain.index(word)
            return " ".join(str(s.style) for s in content.spans if s.start <= start < s.end)

        assert "green" in style_of("terraform_data.web")
        assert "yellow" in style_of("terraform_data.config")
        assert "red" in style_of("terraform_data.old_cache")
        assert "red" in style_of("! deletes")
        # the digest under the plan is the one approving records
        assert clocked.approval_detail(job).digest in plain(
            prompt.query_one("#facts", Static).content, width=200
        )

    drive(app, script)


def test_a_destroy_plan_is_called_out_and_the_long_plan_scrolls_at_80x24(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    many = {
        **DESTROY_PLAN,
        "destroy": 40,
        "resources": [
            {"address": f"terraform_data.node[{i}]", "action": "delete"} for i in range(40)
        ],
    }
    job = clocked.destroy_instance("billing").id
    with clocked.db.write() as conn:
        sql(conn, "UPDATE jobs SET submitted_by = 'alice' WHERE id = ?", (job,))
    planned(clocked, job, "api_service", "billing", many)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        prompt = await prompt_on(pilot, job)
        text = prompt.query_one("#plan", Static).content
        assert isinstance(text, Text)
        assert text.plain.splitlines()[:2] == [
            f"Destroy plan +0 ~0 -40 for billing  sha256 {HASH[:12]}  pending",
            "! DESTROYS instance billing: 40 resource(s) deleted",
        ]
        scroll = prompt.query_one("#what-runs")
        await until(pilot, lambda: scroll.max_scroll_y > 0, what="a scrollable prompt")
        assert prompt.query_one("#approve").region.bottom <= 24  # the buttons stay on screen
        scroll.focus()
        await pilot.press("end")
        await until(pilot, lambda: scroll.scroll_y == scroll.max_scroll_y, what="scrolled")

    drive(app, script, size=NARROW)


def test_the_approvals_view_shows_plan_counts(clocked: OpsService, fleet: dict[str, str]) -> None:
    job = gated_plan(clocked)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("G")
        view = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ApprovalsScreen) else None
        )
        await until(pilot, lambda: bool(view.query("#view-table")), what="the view composed")
        table = view.query_one("#view-table", DataTable)
        await until(pilot, lambda: table.row_count > 0)
        assert str(table.get_row(job)[-1]) == "+2 ~1 -1 ±1"

    drive(app, script)


# -- the instances view ---------------------------------------------------------------


async def open_instances(pilot: Pilot[None]) -> InstancesScreen:
    app = pilot.app
    await pilot.press("I")
    view = await until(
        pilot, lambda: app.screen if isinstance(app.screen, InstancesScreen) else None
    )
    await until(pilot, lambda: bool(view.query("#view-table")), what="the view composed")
    table = view.query_one("#view-table", DataTable)
    await until(pilot, lambda: table.row_count >= 2, what="instance rows")
    return view


def test_the_view_lists_instances_and_details_the_selected_one(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_instances(pilot)
        table = view.query_one("#view-table", DataTable)
        assert [str(r.key.value) for r in table.ordered_rows] == [
            "api_service/billing",
            "web_app/shop",
        ]
        detail = view.query_one("#instance-detail", Static)
        await until(pilot, lambda: "api_service/billing" in plain(detail.content))
        table.focus()
        await pilot.press("down")
        await until(pilot, lambda: "web_app/shop" in plain(detail.content), what="shop shown")
        text = plain(detail.content)
        assert "url = http://shop.local" in text and "db_password = ***" in text
        assert "terraform_data.dns" in text

    drive(app, script)


def test_colon_instances_opens_the_view(clocked: OpsService, fleet: dict[str, str]) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("colon")
        prompt = await until(
            pilot,
            lambda: (
                app.screen
                if isinstance(app.screen, PromptScreen) and app.screen.query(Input)
                else None
            ),
        )
        prompt.query_one(Input).value = "instances"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InstancesScreen), what="the view")

    drive(app, script)


def test_d_requests_a_gated_destroy_after_the_typed_name_and_the_secret(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        view = await open_instances(pilot)
        table = view.query_one("#view-table", DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("web_app/shop"))
        # a wrong name submits nothing
        await pilot.press("d")
        await until(
            pilot,
            lambda: isinstance(app.screen, PromptScreen) and bool(app.screen.query(Input)),
            what="the question",
        )
        app.screen.query_one(Input).value = "shp"
        await pilot.press("enter")
        await until(pilot, lambda: any("does not match" in n for n in notes(app)))
        assert not [j for j in clocked.instance("shop").history or () if "destroy" in j.tags]
        # the right name, then the secret again
        await pilot.press("d")
        await until(
            pilot,
            lambda: isinstance(app.screen, PromptScreen) and bool(app.screen.query(Input)),
            what="the question",
        )
        app.screen.query_one(Input).value = "shop"
        await pilot.press("enter")
        secret = await until(
            pilot,
            lambda: (
                app.screen if isinstance(app.screen, PromptScreen) and app.screen.password else None
            ),
            what="the secret's prompt",
        )
        secret.query_one(Input).value = "t0k3n"
        await pilot.press("enter")
        await until(
            pilot, lambda: any("destroy of web_app/shop requested" in n for n in notes(app))
        )
        [job] = [j for j in clocked.instance("shop").history or () if "destroy" in j.tags]
        from opsconsole.core.store import queries

        row, _ = queries.get(clocked.db, job.id)
        assert row["spec"]["terraform"]["destroy"] is True
        assert clocked.box.open(row["secret_blob"]) == {"token": "t0k3n"}

    drive(app, script)
