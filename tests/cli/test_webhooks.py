"""`opsconsole webhooks list|test|enable` against a real local receiver; bad config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_support import Cli, as_json, ok, one_error_line
from webhook_support import SECRET, SECRET_ENV, Receiver, receiving, verify, write_config

from opsconsole.config import Settings
from opsconsole.core.store import webhooks as webhook_store
from opsconsole.core.store.db import Database


@pytest.fixture
def receiver(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with receiving() as r:
        write_config(Path(settings.home), r.url)
        yield r


def disable(settings: Settings) -> None:
    """Five deliveries whose last attempts failed, as the delivery handler records them."""
    db = Database(settings.db)
    now = datetime.now(UTC)
    try:
        webhook_store.ensure(db, ["ops-chat"], now)
        for _ in range(5):
            webhook_store.record_attempt(
                db, "ops-chat", ok=False, status="500 Internal Server Error (attempt 5 of 5)",
                final=True, disable_after=5, now=now,
            )  # fmt: skip
    finally:
        db.dispose()


def test_list_without_webhooks(cli: Cli) -> None:
    assert "no webhooks declared" in ok(cli("webhooks", "list")).stdout
    assert as_json(cli("webhooks", "list", "--json")) == []


def test_list_test_and_enable(cli: Cli, settings: Settings, receiver: Receiver) -> None:
    (row,) = as_json(cli("webhooks", "list", "--json"))
    assert (row["name"], row["url"], row["state"], row["failures"]) == (
        "ops-chat", receiver.url, "new", 0,
    )  # fmt: skip
    out = ok(cli("webhooks", "test", "ops-chat")).stdout
    assert f"webhook ops-chat: delivered: 200 OK ({receiver.url})" in out
    assert verify(receiver.received[0])

    disable(settings)
    result = ok(cli("webhooks", "list"))
    assert "disabled" in result.stdout
    assert "webhook ops-chat is disabled: 5 deliveries in a row failed" in result.stderr
    assert "opsconsole webhooks enable ops-chat" in result.stderr
    health = ok(cli("health", "--json"), 1)
    check = next(c for c in json.loads(health.stdout)["checks"] if c["name"] == "webhooks")
    assert not check["ok"] and "webhook ops-chat disabled" in check["detail"]

    assert ok(cli("webhooks", "enable", "ops-chat")).stdout.strip() == "webhook ops-chat: enabled"
    (row,) = as_json(cli("webhooks", "list", "--json"))
    assert (row["state"], row["failures"], row["disabled_at"]) == ("enabled", 0, None)


def test_a_failed_test_exits_1(cli: Cli, receiver: Receiver) -> None:
    receiver.default = 503
    result = ok(cli("webhooks", "test", "ops-chat"), 1)
    assert "webhook ops-chat: failed: 503 Service Unavailable" in result.stdout
    sent = json.loads(ok(cli("webhooks", "test", "ops-chat", "--json"), 1).stdout)
    assert (sent["ok"], sent["status"]) == (False, "503 Service Unavailable")


def test_an_unknown_webhook_exits_3(cli: Cli, receiver: Receiver) -> None:
    assert "no webhook 'nope'" in one_error_line(ok(cli("webhooks", "enable", "nope"), 3))


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("ftp://chat.example/h", f"env:{SECRET_ENV}", "url must be http:// or https://"),
        ("https://chat.example/h", "s3cr3t", "secret must be env:NAME or file:/path"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(
    cli: Cli,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    secret: str,
    message: str,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    (Path(settings.home) / "opsconsole.toml").write_text(
        f'[[webhooks]]\nname = "ops-chat"\nurl = "{url}"\nevents = ["job.failed"]\n'
        f'secret = "{secret}"\n'
    )
    line = one_error_line(ok(cli("webhooks", "list"), 2))
    assert message in line and "webhook 'ops-chat'" in line
    assert "Traceback" not in line


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("env:NO_SUCH_SECRET_VAR", "NO_SUCH_SECRET_VAR is not set"),
        ("file:/nonexistent/key", "cannot read /nonexistent/key"),
    ],
)
def test_a_secret_that_does_not_resolve_stops_the_worker_not_the_operator(
    cli: Cli, settings: Settings, secret: str, message: str
) -> None:
    (Path(settings.home) / "opsconsole.toml").write_text(
        '[[webhooks]]\nname = "ops-chat"\nurl = "https://chat.example/h"\n'
        f'events = ["job.failed"]\nsecret = "{secret}"\n'
    )
    ok(cli("jobs", "list"), 0)  # every command reads the file: listing jobs still works
    line = one_error_line(ok(cli("worker", "--once"), 2))  # the worker signs: it refuses
    assert message in line and "webhook 'ops-chat'" in line
    health = cli("health")
    assert health.exit_code != 0 and message in health.stdout


def test_names_complete_from_the_config_file(
    settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    """The installed command, as bash asks it for ``opsconsole webhooks enable o<Tab>``."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        HOME=str(tmp_path / "user"),
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
        _OPSCONSOLE_COMPLETE="complete_bash",
        COMP_WORDS="opsconsole\nwebhooks\nenable\no",
        COMP_CWORD="3",
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "opsconsole")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ops-chat"]
