"""The submit form's typed confirmation: what will run, the value to type, a wrong one refused."""

from __future__ import annotations

from pathlib import Path

from support import write_template
from textual.pilot import Pilot
from textual.widgets import Input, Label, Select
from tui_support import drive, label_text, until

from opsconsole.core.service import OpsService
from opsconsole.tui.app import OpsConsole
from opsconsole.tui.screens.submit import SubmitScreen

CONFIRMED = (
    "command: [echo, '{{ env }}']\nconfirm: '{{ env }}'\n"
    "params:\n"
    "  env: {type: choice, choices: [staging, production], required: true}\n"
    "  token: {type: string, secret: true, required: false}\n"
    "  count: {type: integer, default: 2}\n"
)


def validated(app: OpsConsole) -> bool:
    """No live check of the form is still running (its answer would clear a refusal)."""
    return not any(w.group == "validate" and w.is_running for w in app.workers)


def test_a_wrong_value_is_refused_in_place_and_the_right_one_submits(
    clocked: OpsService, catalog: Path
) -> None:
    write_template(catalog, "release", CONFIRMED)
    app = OpsConsole(clocked, embed=False, start_feed=False)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, SubmitScreen) else None
        )
        form.query_one("#template", Select).value = "release"
        await until(pilot, lambda: form.query("#p-env"), what="the release fields")
        form.query_one("#p-env", Select).value = "production"
        form.query_one("#p-token", Input).value = "s3cret"
        await pilot.pause()
        assert not form.query_one("#confirm-box").display

        await pilot.press("ctrl+s")  # first Submit: shows what will run and asks
        box = form.query_one("#confirm-box")
        await until(pilot, lambda: box.display, timeout=30, what="the confirmation")
        shown = label_text(form.query_one("#confirm-params", Label))
        assert "env=production" in shown and "count=2" in shown and "token=***" in shown
        assert "s3cret" not in shown
        assert label_text(form.query_one("#confirm-prompt", Label)) == (
            'type "production" to confirm:'
        )
        assert clocked.counts().get("queued", 0) == 0

        typed = form.query_one("#confirm", Input)
        assert app.focused is typed
        typed.value = "staging"
        await until(pilot, lambda: validated(app), timeout=30, what="the live check")
        await pilot.press("ctrl+s")
        error = form.query_one("#form-error", Label)
        await until(pilot, lambda: label_text(error), timeout=30, what="the refusal")
        assert "the confirmation does not match" in label_text(error)
        assert app.screen is form
        assert clocked.counts().get("queued", 0) == 0

        typed.value = "production"
        await until(pilot, lambda: validated(app), timeout=30, what="the live check")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is not form, timeout=30, what="the form closed")

    drive(app, script)
    [job] = clocked.queue()
    assert (job.template, job.params["env"]) == ("release", "production")
