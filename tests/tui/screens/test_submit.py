"""The submit form: fields from the template's schema, the CLI's own messages, a real submit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Label, Select, Switch
from tui_support import drive, label_text, notes, until

from opsconsole.config import Settings
from opsconsole.core.secrets import MASK
from opsconsole.core.service import OpsService
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.submit import SubmitScreen
from opsconsole.tui.widgets.job_table import JobTable


def cli_error(settings: Settings, *args: str) -> str:
    """The one error line the CLI prints for ``opsconsole ARGS``."""
    base = ["--home", str(settings.home), "--db", settings.db, "--catalog", str(settings.catalog)]
    done = subprocess.run(
        [sys.executable, "-m", "opsconsole", *base, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stdout
    [line] = done.stderr.splitlines()
    return line.removeprefix("opsconsole: error: ")


def test_the_form_follows_the_schema_and_speaks_like_the_cli(
    clocked: OpsService, settings: Settings, templates: Path
) -> None:
    expected = cli_error(settings, "submit", "deploy", "-p", "env=prod", "-p", "count=abc")
    assert "parameter 'count'" in expected
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        assert sorted(form.templates) == ["deploy", "echo"]
        form.query_one("#template", Select).value = "deploy"
        await until(pilot, lambda: form.query("#p-count"), what="the deploy fields")

        env = form.query_one("#p-env", Select)
        assert [str(label) for label, _ in env._options if _ != Select.NULL] == ["dev", "prod"]
        assert isinstance(form.query_one("#p-verbose"), Switch)
        token = form.query_one("#p-token", Input)
        assert token.password
        count = form.query_one("#p-count", Input)
        assert count.value == "1"

        env.value = "prod"
        count.value = "abc"
        error = form.query_one("#p-count-error", Label)
        await until(pilot, lambda: label_text(error), what="the validation message")
        assert label_text(error) == expected
        assert label_text(form.query_one("#form-error", Label)) == ""

        await pilot.press("ctrl+s")  # refused by the service: the form stays, so does the message
        await pilot.pause()
        assert app.screen is form
        assert label_text(error) == expected

        count.value = "3"
        await until(pilot, lambda: not label_text(error), what="the message cleared")
        form.query_one("#p-verbose", Switch).value = True
        token.value = "t0ken"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is not form, what="the form closed")
        await until(pilot, lambda: app.query_one("#queue", JobTable).row_count == 1)

    drive(app, script)
    [job] = clocked.queue()
    assert job.template == "deploy"
    assert job.params == {"env": "prod", "verbose": True, "token": MASK, "count": 3}
    assert f"submitted {job.id} (deploy): queued" in notes(app)


def test_a_missing_choice_names_the_field(clocked: OpsService, templates: Path) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert label_text(form.query_one("#form-error", Label)) == "pick a template"

        form.query_one("#template", Select).value = "deploy"
        await until(pilot, lambda: form.query("#p-env"), what="the deploy fields")
        await pilot.press("ctrl+s")
        error = form.query_one("#p-env-error", Label)
        await until(pilot, lambda: label_text(error), what="the message")
        assert label_text(error) == "template 'deploy': missing required parameter 'env'"
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not form)

    drive(app, script)
    assert clocked.queue() == []


def validated(app: OpsConsole) -> bool:
    """No live check of the form is still running."""
    return not any(w.group == "validate" and w.is_running for w in app.workers)


def test_a_required_field_is_not_called_missing_before_anything_is_typed(
    clocked: OpsService, templates: Path
) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        form.query_one("#template", Select).value = "deploy"
        await until(pilot, lambda: form.query("#p-count"), what="the deploy fields")
        # the operator types in another field: the form checks it, env is still untouched
        form.query_one("#p-count", Input).focus()
        await pilot.press("backspace", "3")
        await until(pilot, lambda: form.query_one("#p-count", Input).value == "3")
        await until(pilot, lambda: validated(app), what="the live check")
        await pilot.pause()
        errors = [label_text(label) for label in form.query(".error").results(Label)]
        assert errors and not any(errors), errors

        # Submit says what is missing
        await pilot.press("ctrl+s")
        error = form.query_one("#p-env-error", Label)
        await until(pilot, lambda: label_text(error), what="the message")
        assert label_text(error) == "template 'deploy': missing required parameter 'env'"
        assert app.screen is form

    drive(app, script)


def test_an_empty_template_list_says_why(clocked: OpsService, catalog: Path) -> None:
    (catalog / "templates" / "broken.yaml").write_text("name: broken\nrunner: [not, a, runner\n")
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        why = label_text(form.query_one("#no-templates", Label))
        assert why.startswith("No templates to submit: ")
        assert "broken.yaml" in why and "T lists the catalog" in why

    drive(app, script)


def test_an_empty_catalog_says_so(clocked: OpsService, catalog: Path) -> None:
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        why = label_text(form.query_one("#no-templates", Label))
        assert why == "No templates to submit: the catalog has no template files."

    drive(app, script)
