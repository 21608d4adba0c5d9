"""``[[webhooks]]`` in opsconsole.toml: what is accepted, and each refusal in one line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from opsconsole.config import load_settings
from opsconsole.core.errors import InvalidParams
from opsconsole.core.webhook_config import (
    EVENT_TYPES,
    Webhook,
    parse_webhooks,
    public_url,
    resolve_secret,
    unresolved,
)

GOOD = """
[[webhooks]]
name = "ops-chat"
url = "https://bot:pa55@chat.example/hooks/ops?token=abc"
events = ["job.failed", "approval.requested", "check.changed"]
templates = ["deploy-*"]
secret = "env:OPS_HOOK_SECRET"
"""


def config(body: str) -> None:
    (Path.cwd() / "opsconsole.toml").write_text(body)


def refusal(body: str) -> str:
    config(body)
    with pytest.raises(InvalidParams) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    return message


def hook(**fields: str) -> str:
    values = {
        "name": '"ops-chat"',
        "url": '"https://chat.example/hooks"',
        "events": '["job.failed"]',
        "secret": '"env:OPS_HOOK_SECRET"',
        **fields,
    }
    return "[[webhooks]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items() if v)


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_HOOK_SECRET", "s3cr3t")


def test_the_issue_example_loads() -> None:
    config(GOOD)
    (h,) = load_settings().webhooks
    assert h == Webhook(
        name="ops-chat",
        url="https://bot:pa55@chat.example/hooks/ops?token=abc",
        events=("job.failed", "approval.requested", "check.changed"),
        templates=("deploy-*",),
        secret="env:OPS_HOOK_SECRET",
    )
    assert h.shown_url() == "https://chat.example/hooks/ops"  # no credentials, no query


def test_matching_by_event_glob_and_template_glob() -> None:
    h = Webhook("a", "http://x/", events=("job.*", "check.changed"), templates=("deploy-*",))
    assert h.wants("job.failed", "deploy-web")
    assert not h.wants("job.failed", "backup")
    assert not h.wants("job.failed", None)  # a filter by template: an event of no template
    assert not h.wants("approval.requested", "deploy-web")
    anything = Webhook("b", "http://x/", events=("*",))
    assert all(anything.wants(t, None) for t in EVENT_TYPES)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"url": '"ftp://chat.example/hooks"'},
            "webhook 'ops-chat': url must be http:// or https://",
        ),
        ({"url": '"file:///etc/passwd"'}, "url must be http:// or https://"),
        ({"url": '"https://"'}, "url must be http:// or https:// with a host"),
        ({"url": ""}, "url is required"),
        ({"secret": '"s3cr3t"'}, "secret must be env:NAME or file:/path (never the secret)"),
        ({"secret": ""}, "secret is required"),
        ({"events": '["job.faild"]'}, "events: 'job.faild' names no event"),
        ({"events": '"job.failed"'}, "events must be a list of non-empty strings"),
        ({"events": ""}, "events must be a list"),
        ({"templates": '"deploy-*"'}, "templates must be a list of non-empty strings"),
        ({"name": '"Ops Chat"'}, "webhooks[0]: name must match"),
        ({"retries": "3"}, "webhooks[0]: unknown key 'retries'"),
    ],
)
def test_bad_declarations_are_refused_in_one_line(fields: dict[str, str], expected: str) -> None:
    message = refusal(hook(**fields))
    assert expected in message
    assert "opsconsole.toml" in message
    assert "s3cr3t" not in message  # a refusal never shows the secret


def test_a_name_declared_twice_is_refused() -> None:
    assert "webhook 'ops-chat' is declared twice" in refusal(hook() + hook())


def test_webhooks_must_be_tables() -> None:
    assert "webhooks must be [[webhooks]] tables" in refusal('webhooks = "x"\n')


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "hook.key"
    key.write_text("whsec_" + base64.b64encode(b"raw key bytes").decode() + "\n")
    assert resolve_secret(f"file:{key}", "w") == b"raw key bytes"  # Standard Webhooks form
    assert resolve_secret("env:OPS_HOOK_SECRET", "w") == b"s3cr3t"  # any other: its bytes
    monkeypatch.setenv("OPS_HOOK_SECRET", "whsec_not*base64")
    with pytest.raises(InvalidParams, match="whsec_ value is not base64"):
        resolve_secret("env:OPS_HOOK_SECRET", "w")
    key.write_text("")
    with pytest.raises(InvalidParams, match="is empty"):
        resolve_secret(f"file:{key}", "w")


def test_public_url_keeps_port_and_path() -> None:
    assert public_url("http://u:p@127.0.0.1:8080/a/b?x=1#f") == "http://127.0.0.1:8080/a/b"
    assert public_url("https://[::1]:9/h") == "https://[::1]:9/h"


def test_a_reference_that_does_not_resolve_loads_and_is_said_where_it_is_used() -> None:
    """Every command reads the config file: an operator whose shell lacks the webhook's
    variable must still list jobs. The worker (which signs) and ``health`` say it."""
    hooks = parse_webhooks(
        [
            {
                "name": "a",
                "url": "http://x/",
                "events": ["job.failed"],
                "secret": "env:NOT_SET_ANYWHERE",
            },
            {
                "name": "b",
                "url": "http://x/",
                "events": ["job.failed"],
                "secret": "file:/nonexistent/k",
            },
        ],
        "opsconsole.toml",
    )
    assert unresolved(hooks) == [
        "webhook 'a': secret: environment variable NOT_SET_ANYWHERE is not set",
        "webhook 'b': secret: cannot read /nonexistent/k: No such file or directory",
    ]
