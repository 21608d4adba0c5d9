"""The console says when a webhook disabled itself, and stops saying it once it is enabled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static
from tui_support import drive, label_text, until
from webhook_support import SECRET, SECRET_ENV, write_config

from opsconsole.config import load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.store import webhooks as webhook_store
from opsconsole.core.store.db import Database
from opsconsole.tui.app import OpsConsole


@pytest.fixture
def hooked(
    home: Path, catalog: Path, store_url: str, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpsService]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_config(home, "http://127.0.0.1:9/hooks")
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    db = Database(settings.db)
    yield OpsService(settings, db, clock=clock)
    db.dispose()


def disable(service: OpsService) -> None:
    webhook_store.ensure(service.db, ["ops-chat"], service.now())
    for _ in range(5):
        webhook_store.record_attempt(
            service.db, "ops-chat", ok=False, status="connection refused",
            final=True, disable_after=5, now=service.now(),
        )  # fmt: skip


def test_the_banner_shows_a_disabled_webhook_until_it_is_enabled(hooked: OpsService) -> None:
    app = OpsConsole(hooked, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#webhooks-banner", Static)
        await until(pilot, lambda: app.ready, what="the first load")
        assert not banner.has_class("-visible")

        disable(hooked)  # as a worker's delivery handler records it
        await until(pilot, lambda: banner.has_class("-visible"), timeout=20, what="the banner")
        text = label_text(banner)
        assert "webhook ops-chat disabled: 5 deliveries in a row failed" in text
        assert "opsconsole webhooks enable ops-chat" in text

        hooked.enable_webhook("ops-chat")
        await until(pilot, lambda: not banner.has_class("-visible"), timeout=20, what="gone")

    drive(app, script)
