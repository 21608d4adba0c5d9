"""``?``: every key, read from the same registry as the bindings and the footer."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from opsconsole.tui.actions import ACTIONS, SCHEDULE_ACTIONS, key_label

GROUPS = {
    "jobs": "Jobs",
    "log": "Log tail",
    "views": "Views",
    "schedules": "In the Schedules view (D)",
    "app": "App",
}
LOG_KEYS = [
    ("End / G", "follow the log again"),
    ("Home / g", "top of the log"),
    ("PgUp / PgDn", "scroll (older lines load from the store)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        text = Text()
        for group, title in GROUPS.items():
            text.append(f"{title}\n", style="bold underline")
            for a in (*ACTIONS, *SCHEDULE_ACTIONS):
                if a.group == group:
                    text.append(f"  {key_label(a.key):>7}  ", style="bold")
                    text.append(a.description + "\n")
            if group == "log":
                for key, desc in LOG_KEYS:
                    text.append(f"  {key:>7}  ", style="bold")
                    text.append(desc + "\n")
            text.append("\n")
        text.append(
            "Ctrl+P opens the command palette with every action. Mouse works too.", style="dim"
        )
        with VerticalScroll(classes="dialog wide"):
            yield Static(text, id="help-text")
        yield Footer()
