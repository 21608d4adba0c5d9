"""Catalog problems on screen: a banner on the main screen, every problem under ``T``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets._footer import FooterKey
from tui_support import drive, label_text, plain, until

from opsconsole.core.service import OpsService
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.catalog import CatalogScreen


def test_broken_templates_are_a_banner_and_t_lists_them_all(
    clocked: OpsService, templates: Path
) -> None:
    broken = templates / "templates" / "backup.yaml"
    broken.write_text("name: backup\nrunner: [shell\n")
    (templates / "templates" / "old.yaml").write_text("name: old\nrunner: telnet\n")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#catalog-banner", Static)
        assert banner.has_class("-visible")
        text = label_text(banner)
        assert text.startswith("catalog: 2 problems: ") and "backup.yaml:3: " in text
        assert text.endswith("(and 1 more)  (T: templates)")

        await pilot.press("T")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, CatalogScreen) else None
        )
        problems = screen.query_one("#catalog-problems", Static)
        await until(pilot, lambda: "2 problems" in plain(problems.content), what="the list")
        listed = plain(problems.content, width=1000)
        for problem in clocked.catalog_problems():
            assert problem in listed
        assert "old.yaml" in listed and "backup.yaml" in listed
        table: DataTable[Any] = screen.query_one(DataTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert names == ["deploy", "echo"]
        # the footer in front is this view's: back and read again, not the main screen's
        keys = {k.action for k in screen.query(FooterKey)} - {"command_palette"}
        assert keys == {"app.pop_screen", "reload"}

        # the operator fixes the files and reads the catalog again: the banner goes
        broken.unlink()
        (templates / "templates" / "old.yaml").unlink()
        await pilot.press("r")
        await until(pilot, lambda: "no problems" in plain(problems.content), what="re-read")
        await until(pilot, lambda: not banner.has_class("-visible"), what="the banner gone")

    drive(app, script)


def test_a_sound_catalog_shows_no_banner(clocked: OpsService, templates: Path) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#catalog-banner", Static)
        assert not banner.has_class("-visible") and not label_text(banner)

    drive(app, script)
