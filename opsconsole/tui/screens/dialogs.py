"""Small modal dialogs: confirm, prompt, the quit question. Each returns a typed result.

Each has a footer of its own: the keys shown are the dialog's, not the screen's behind it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label

from opsconsole.core.text import visible


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no before anything destructive; Escape or n says no."""

    BINDINGS = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(visible(self.question, multiline=True), markup=False, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (n)", id="no", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PromptScreen(ModalScreen[str | None]):
    """One line of input; Enter returns it, Escape returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "submit", "OK")]

    def __init__(
        self, question: str, *, value: str = "", placeholder: str = "", password: bool = False
    ) -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder
        self.password = password

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(visible(self.question, multiline=True), markup=False, classes="question")
            yield Input(
                value=self.value, placeholder=self.placeholder, password=self.password, id="answer"
            )
            yield Label("", id="error", markup=False, classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_submit(self) -> None:
        self.dismiss(self.query_one(Input).value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuitScreen(ModalScreen[str]):
    """Quitting while the embedded pool runs jobs: wait for them, cancel them, or stay."""

    BINDINGS = [
        Binding("escape,s", "answer('stay')", "Stay"),
        Binding("w", "answer('wait')", "Wait"),
        Binding("c", "answer('cancel')", "Cancel them"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"The embedded worker pool is running {self.running} job(s).\n"
                "Quitting now would stop them.",
                markup=False,
                classes="question",
            )
            with Horizontal(classes="buttons"):
                yield Button("Wait for them (w)", id="wait", variant="primary")
                yield Button("Cancel them (c)", id="cancel", variant="error")
                yield Button("Stay (s)", id="stay")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_answer(self, value: str) -> None:
        self.dismiss(value)
