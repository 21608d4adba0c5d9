"""The submit form: pick a template, fill a form generated from its parameter schema.

Choices become selects, booleans switches, secrets password inputs. Validation is the
service's own (``OpsService.validate``), so the form shows the CLI's messages, next to the
field they name; while the operator types, a required field not yet touched is not called
missing (only Submit says so). With no template to offer, the form says why. A template
with ``confirm:`` shows the resolved parameters on Submit and asks for the rendered value;
the service refuses a wrong one and the form stays, saying so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Switch

from opsconsole.core.clock import parse_datetime
from opsconsole.core.errors import OpsError
from opsconsole.core.service import SubmitRequest
from opsconsole.core.text import visible
from opsconsole.core.views import JobView, ParamView, TemplateView

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsole

PRIORITIES = [
    ("default", ""),
    ("low", "low"),
    ("normal", "normal"),
    ("high", "high"),
    ("critical", "critical"),
]
_PARAM = re.compile(r"parameter '([^']+)'")
_MISSING = re.compile(r"missing required parameter '([^']+)'")


def field_id(name: str) -> str:
    return "p-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


class SubmitScreen(ModalScreen[JobView | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "submit", "Submit"),
    ]

    def __init__(
        self,
        templates: list[TemplateView],
        *,
        selected: str | None = None,
        problems: list[str] | None = None,
    ) -> None:
        """``problems``: the catalog's, shown when they leave nothing to submit."""
        super().__init__()
        self.templates = {t.name: t for t in templates}
        self.selected = selected if selected in self.templates else None
        self.problems = problems or []
        self.busy = False
        self.touched: set[str] = set()
        """Fields the operator has changed: only these may be called missing while typing."""
        self.attempted = False
        """Submit was pressed: from then on every problem is shown."""

    @property
    def ops(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form", id="submit-dialog"):
            yield Label("Submit a job", classes="title")
            if not self.templates:
                yield Label(self._why_empty(), id="no-templates", markup=False, classes="error")
            yield Select(
                [
                    (visible(f"{t.name} — {t.description}")[:70], t.name)
                    for t in self.templates.values()
                ],
                prompt="template",
                id="template",
                value=self.selected or Select.NULL,
            )
            # not a Tab stop of its own: Tab goes from field to field
            yield VerticalScroll(id="fields", can_focus=False)
            with Horizontal(classes="row"):
                yield Select(PRIORITIES, value="", id="priority", allow_blank=False)
                yield Input(placeholder="run at: now | in 10m | 2026-05-01T14:30", id="run-at")
            with Horizontal(classes="row"):
                yield Input(placeholder="after jobs (ids, comma-separated)", id="after")
                yield Label("dry run", classes="switch-label")
                yield Switch(id="dry-run")
            with Vertical(id="confirm-box"):
                yield Label("", id="confirm-params", markup=False)
                yield Label("", id="confirm-prompt", markup=False)
                yield Input(placeholder="type the value shown above", id="confirm")
            yield Label("", id="form-error", markup=False, classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Submit (ctrl+s)", id="submit", variant="primary")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def _why_empty(self) -> str:
        if not self.problems:
            return "No templates to submit: the catalog has no template files."
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return visible(
            f"No templates to submit: {self.problems[0]}{more}. "
            "Esc, then T lists the catalog and its problems."
        )

    async def on_mount(self) -> None:
        self.query_one("#confirm-box").display = False
        if self.selected:
            await self._build(self.selected)
        self.query_one("#template", Select).focus()

    @on(Select.Changed, "#template")
    async def _template_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.selected:
            self.selected = event.value
            await self._build(event.value)

    async def _build(self, name: str) -> None:
        box = self.query_one("#fields", VerticalScroll)
        await box.remove_children()
        self.touched.clear()
        tpl = self.templates[name]
        widgets: list[Any] = []
        for p in tpl.params:
            mark = " *" if p.required else ""
            hint = f"  {p.description}" if p.description else ""
            widgets.append(
                Label(
                    visible(f"{p.name} ({p.type}{', secret' if p.secret else ''}){mark}{hint}"),
                    markup=False,
                    classes="field-label",
                )
            )
            widgets.append(self._widget(p))
            widgets.append(Label("", id=field_id(p.name) + "-error", markup=False, classes="error"))
        if not tpl.params:
            widgets.append(Label("This template takes no parameters.", classes="dim"))
        await box.mount_all(widgets)
        self.query_one("#form-error", Label).update("")

    @staticmethod
    def _widget(p: ParamView) -> Any:
        wid = field_id(p.name)
        if p.type == "choice":
            return Select(
                [(c, c) for c in p.choices],
                id=wid,
                value=p.default or Select.NULL,
                allow_blank=not p.required or p.default is None,
            )
        if p.type == "boolean":
            return Switch(value=bool(p.default), id=wid)
        default = "" if p.default is None or p.secret else p.default
        if isinstance(default, list):
            default = ",".join(str(x) for x in default)
        placeholder = p.pattern or ("comma-separated" if p.type == "list" else p.type)
        if p.min is not None or p.max is not None:
            lo = "" if p.min is None else f"{p.min:g}"
            hi = "" if p.max is None else f"{p.max:g}"
            placeholder = f"{p.type} {lo}..{hi}"
        return Input(value=str(default), placeholder=placeholder, password=p.secret, id=wid)

    # -- building and checking the request ---------------------------------------------------

    def request(self) -> SubmitRequest:
        if not self.selected:
            from opsconsole.core.errors import InvalidParams

            raise InvalidParams("pick a template")
        tpl = self.templates[self.selected]
        params: dict[str, Any] = {}
        for p in tpl.params:
            w = self.query_one(f"#{field_id(p.name)}")
            if isinstance(w, Switch):
                params[p.name] = w.value
            elif isinstance(w, Select):
                if isinstance(w.value, str):
                    params[p.name] = w.value
            elif isinstance(w, Input) and w.value != "":
                params[p.name] = w.value
        when = self.query_one("#run-at", Input).value.strip()
        run_at = run_in = None
        if when and when != "now":
            if when.startswith("in "):
                run_in = when[3:].strip()
            elif when[0].isdigit() and not re.match(r"^\d{4}-", when):
                run_in = when
            else:
                run_at = parse_datetime(when)
        after = tuple(
            a.strip() for a in self.query_one("#after", Input).value.split(",") if a.strip()
        )
        priority = self.query_one("#priority", Select).value
        return SubmitRequest(
            template=self.selected,
            params=params,
            run_at=run_at,
            run_in=run_in,
            after=after,
            priority=priority if isinstance(priority, str) and priority else None,
            dry_run=self.query_one("#dry-run", Switch).value,
            confirm=self.query_one("#confirm", Input).value if self.confirming else None,
        )

    @property
    def confirming(self) -> bool:
        """The typed confirmation is on screen: the next Submit sends what was typed."""
        return bool(self.query_one("#confirm-box").display)

    def ask_confirmation(self, asked: tuple[str, dict[str, Any]] | None) -> None:
        """Show what will run and ask for the rendered value; None: nothing to confirm."""
        if asked is None:
            return
        expected, params = asked
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "no parameters"
        self.query_one("#confirm-params", Label).update(
            visible(f"{self.selected} will run with: {shown}")
        )
        self.query_one("#confirm-prompt", Label).update(visible(f'type "{expected}" to confirm:'))
        box = self.query_one("#confirm-box")
        box.display = True
        self.query_one("#confirm", Input).value = ""
        self.query_one("#confirm", Input).focus()

    def show_error(self, message: str) -> None:
        message = visible(message)
        for label in self.query(".error"):
            if isinstance(label, Label):
                label.update("")
        m = _PARAM.search(message)
        if m and self.selected:
            try:
                self.query_one(f"#{field_id(m.group(1))}-error", Label).update(message)
                return
            except Exception:
                pass
        self.query_one("#form-error", Label).update(message)

    @on(Input.Changed)
    @on(Switch.Changed)
    @on(Select.Changed)
    def _changed(self, event: Any) -> None:
        control = getattr(event, "control", None)
        if control is not None and control.id == "template":
            self.query_one("#confirm-box").display = False
            return
        if control is not None and control.id == "confirm":
            return  # the live check skips the confirmation: typing it changes nothing there
        if (
            control is not None
            and control.id != "confirm"
            and self.confirming
            and self.app.focused is control
        ):  # the operator changed what was confirmed: confirm again
            self.query_one("#confirm-box").display = False
        if control is not None and self.selected and self.app.focused is control:
            # the operator's own edit: a widget set up by the form has not the focus
            for p in self.templates[self.selected].params:
                if field_id(p.name) == control.id:
                    self.touched.add(p.name)
        if self.selected:
            self.ops.call(
                "validate",
                self._validate,
                lambda _ok: self.show_error(""),
                on_error=self._live_error,
                quiet=True,
                group="validate",
            )

    def _live_error(self, message: str) -> None:
        """A check while typing: a field not yet touched is not missing, only empty."""
        m = _MISSING.search(message)
        untouched = m is not None and m.group(1) not in self.touched
        self.show_error("" if untouched and not self.attempted else message)

    def _validate(self) -> bool:
        req = self.app.call_from_thread(self.request)
        self.ops.service.validate(req)
        return True

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        if self.busy:
            return
        self.attempted = True
        try:
            req = self.request()
        except OpsError as exc:
            self.show_error(str(exc))
            return
        self.busy = True

        def send() -> None:
            self.ops.call(
                "submit", lambda: self.ops.service.submit(req), done, on_error=failed, quiet=True
            )

        def checked(asked: tuple[str, dict[str, Any]] | None) -> None:
            if asked is None:
                send()
                return
            self.busy = False
            self.ask_confirmation(asked)

        def done(view: JobView) -> None:
            self.busy = False
            self.dismiss(view)

        def failed(message: str) -> None:
            self.busy = False
            self.show_error(message)

        if self.confirming:
            send()
        else:
            self.ops.call("confirm", lambda: self._asked(req), checked, on_error=failed, quiet=True)

    def _asked(self, req: SubmitRequest) -> tuple[str, dict[str, Any]] | None:
        """The value to type and the resolved parameters, or None when none is asked."""
        service = self.ops.service
        expected = service.confirmation(req.template, req.params)
        if expected is None:
            return None
        service.validate(req)  # every other problem first, next to its field
        return expected, service.resolved_params(req.template, req.params)
