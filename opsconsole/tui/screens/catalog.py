"""``T``: the catalog as the console sees it: every template, and every problem in full.

The banner on the main screen shows the first problem; this is where all of them are
listed, each with its file, line and reason. Opening it (or ``r``) reads the catalog from
disk again, so a fixed file clears the banner without a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from opsconsole.core.text import visible
from opsconsole.core.views import TemplateView

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsole


def problems_text(catalog: str, problems: list[str]) -> Text:
    """Where the catalog is, and each problem on a line of its own."""
    text = Text(f"catalog {visible(catalog)}\n", style="bold")
    if not problems:
        text.append("no problems: every template file loaded", style="green")
        return text
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    text.append(f"{count} (a template with a problem cannot be submitted):\n", style="bold")
    for problem in problems:
        text.append(f"  {visible(problem)}\n", style="red")
    return text


class CatalogScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "reload", "Read again"),
    ]

    @property
    def ops(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(classes="view"):
            yield Static(Text("Templates", style="bold"), classes="view-title")
            yield Static("", id="catalog-problems", classes="view-title")
            yield DataTable(id="view-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("TEMPLATE", "RUNNER", "PARAMETERS", "DESCRIPTION")
        self.action_reload()

    def action_reload(self) -> None:
        service = self.ops.service

        def load() -> tuple[list[TemplateView], list[str]]:
            service.reload_catalog()
            return service.templates(), service.catalog_problems()

        self.ops.call("templates", load, self.show, group="view")

    def show(self, found: tuple[list[TemplateView], list[str]]) -> None:
        templates, problems = found
        self.query_one("#catalog-problems", Static).update(
            problems_text(str(self.ops.service.settings.catalog), problems)
        )
        self.ops.show_catalog_problems(problems)
        table: DataTable[Any] = self.query_one(DataTable)
        table.clear()
        for t in templates:
            params = ", ".join(p.name + ("*" if p.required else "") for p in t.params)
            table.add_row(
                Text(visible(t.name)),
                Text(visible(t.runner)),
                Text(visible(params) or "-"),
                Text(visible(t.description)),
            )
        if not templates:
            table.add_row(Text("no template is loaded", style="dim"), "", "", "")
