"""The webhooks' service API and what a delivery is made of (types, body, the feed's holes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import write_template
from webhook_support import SECRET, SECRET_ENV, Receiver, receiving, verify, write_config

from opsconsole.config import load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Forbidden, InvalidParams, NotFound
from opsconsole.core.identity import os_user
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database, events, jobs
from opsconsole.core.webhook_config import Webhook
from opsconsole.core.webhooks import (
    DELIVERY_SPEC,
    DELIVERY_TEMPLATE,
    GAP_WAIT,
    event_types,
    plan_deliveries,
    visible_upto,
)
from opsconsole.engine.webhooks import dispatch


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def hooked(
    home: Path,
    catalog: Path,
    store_url: str,
    clock: SettableClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[OpsService]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_config(home, receiver.url)
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    db = Database(settings.db)
    yield OpsService(settings, db, clock=clock)
    db.dispose()


def test_the_delivery_template_is_a_valid_snapshot() -> None:
    from opsconsole.core.catalog import template_from_dict

    assert DELIVERY_TEMPLATE == "webhook-delivery"  # retention prunes old deliveries by it
    tpl = template_from_dict(DELIVERY_SPEC)
    assert (tpl.name, tpl.runner, tpl.retries, tpl.isolate) == (
        DELIVERY_TEMPLATE,
        "python",
        4,
        False,
    )
    assert tpl.handler == "opsconsole.engine.handlers.webhook:deliver"


def test_list_shows_new_then_enabled_webhooks_without_credentials(
    hooked: OpsService, home: Path, receiver: Receiver
) -> None:
    (view,) = hooked.webhooks()
    assert (view.state, view.failures, view.pending, view.last_delivery_at) == ("new", 0, 0, None)
    assert view.url == receiver.url
    dispatch(hooked, hooked.now())
    (view,) = hooked.webhooks()
    assert view.state == "enabled"
    assert view.to_dict()["events"] == ["job.*", "approval.requested"]


def test_the_url_shown_has_no_credentials(
    home: Path, catalog: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_config(home, "https://bot:pa55@chat.example/hooks?token=t0k")
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    service = OpsService(settings, Database(settings.db))
    try:
        (view,) = service.webhooks()
        assert view.url == "https://chat.example/hooks"
        assert "pa55" not in str(view.to_dict()) and "t0k" not in str(view.to_dict())
    finally:
        service.db.dispose()


def test_a_test_delivery_is_signed_and_reports_the_answer(
    hooked: OpsService, receiver: Receiver
) -> None:
    sent = hooked.test_webhook("ops-chat")
    assert (sent.ok, sent.status) == (True, "200 OK")
    (got,) = receiver.received
    assert verify(got)
    assert got.json()["type"] == "webhook.test"
    receiver.default = 410
    sent = hooked.test_webhook("ops-chat")
    assert (sent.ok, sent.status) == (False, "410 Gone")
    assert hooked.webhooks()[0].failures == 0  # a test counts for nothing


def test_a_test_delivery_to_nobody_fails_with_the_reason(
    home: Path, catalog: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_config(home, f"http://127.0.0.1:{port}/hooks")
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    service = OpsService(settings, Database(settings.db))
    try:
        sent = service.test_webhook("ops-chat")
        assert not sent.ok
        assert "cannot reach the receiver: ConnectError" in sent.status
    finally:
        service.db.dispose()


def test_a_secret_that_stopped_resolving_is_refused_by_test(
    hooked: OpsService, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(InvalidParams, match=f"environment variable {SECRET_ENV} is not set"):
        hooked.test_webhook("ops-chat")
    assert receiver.count() == 0


def test_unknown_names_are_refused(hooked: OpsService) -> None:
    known = r"no webhook 'nope' in opsconsole\.toml \(known: ops-chat\)"
    with pytest.raises(NotFound, match=known):
        hooked.enable_webhook("nope")
    with pytest.raises(NotFound):
        hooked.test_webhook("nope")


def test_enabling_an_enabled_webhook_writes_no_event(hooked: OpsService) -> None:
    assert hooked.enable_webhook("ops-chat").state == "enabled"
    with hooked.db.read() as conn:
        assert not conn.execute(sa.select(events).where(events.c.kind.like("webhook.%"))).first()


def test_only_an_admin_enables(
    home: Path, catalog: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_config(home, "http://127.0.0.1:9/hooks")
    with (home / "opsconsole.toml").open("a") as fh:
        fh.write(f'[roles]\noperator = ["user:{os_user()}"]\n')
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    service = OpsService(settings, Database(settings.db))
    try:
        with pytest.raises(Forbidden):
            service.enable_webhook("ops-chat")
    finally:
        service.db.dispose()


def test_a_gated_submit_is_an_approval_request(hooked: OpsService, catalog: Path) -> None:
    write_template(catalog, "deploy-db", "command: ['true']\napproval: {required: 1}\n")
    dispatch(hooked, hooked.now())
    job = hooked.submit(SubmitRequest("deploy-db")).id
    dispatch(hooked, hooked.now())
    with hooked.db.read() as conn:
        (params,) = conn.execute(
            sa.select(jobs.c.params).where(jobs.c.template == DELIVERY_TEMPLATE)
        ).scalars()
    assert params["type"] == "approval.requested"
    assert f'"id":"{job}"' in params["body"]


def row(event_id: int, ts: datetime, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": event_id, "job_id": "abc123", "ts": ts, "kind": "failed", "actor": "", "state":
        "failed", "attempt": 1, "message": "", "data": None, "job_template": "deploy-web",
        "job_state": "failed", "job_submitted_by": "alice", "job_created_at": ts,
        "job_finished_at": ts, "job_attempts": 1, "job_schedule": None,
        "job_error": {"message": "exit 1", "detail": {"env": "TOKEN=x"}},
    }  # fmt: skip
    return {**base, **kw}


def test_event_types() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert event_types(row(1, now)) == ["job.failed"]
    assert event_types(row(1, now, kind="check.changed", job_id="")) == ["check.changed"]
    assert event_types(row(1, now, kind="freeze", job_id="")) == []
    gated = row(1, now, kind="submitted", state="awaiting_approval")
    assert event_types(gated) == ["approval.requested", "job.submitted"]


def test_the_cursor_stops_before_a_young_hole_and_passes_an_old_one() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    feed = [row(11, now), row(13, now), row(14, now)]
    assert visible_upto(10, feed, now) == 1
    assert visible_upto(10, feed, now + GAP_WAIT) == 3
    assert visible_upto(12, feed[1:], now) == 2


def test_a_body_carries_the_job_summary_and_no_error_detail() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    hook = Webhook("ops-chat", "http://x/", events=("job.failed",), templates=("deploy-*",))
    feed = [row(11, now), row(12, now, job_template="backup"), row(13, now, kind="succeeded")]
    rows, cursor = plan_deliveries(hook, 10, feed, now + timedelta(seconds=1))
    assert cursor == 13
    (delivery,) = rows
    assert delivery["params"]["event"] == 11
    body = delivery["params"]["body"]
    assert '"error":"exit 1"' in body and "TOKEN" not in body
    assert delivery["spec"] is DELIVERY_SPEC and delivery["max_retries"] == 4


def test_a_failure_never_quotes_the_urls_credentials() -> None:
    from opsconsole.core.webhook_send import scrub

    url = "https://bot:pa55word@chat.example/h?token=t0k3n"
    text = f"cannot connect to {url} (bot:pa55word@chat.example, /h?token=t0k3n)"
    assert scrub(text, url) == "cannot connect to https://chat.example/h (chat.example, /h)"


def test_audit_finds_webhook_events(hooked: OpsService) -> None:
    from opsconsole.core.audit import AuditRequest
    from opsconsole.core.store import webhooks as webhook_store

    webhook_store.ensure(hooked.db, ["ops-chat"], hooked.now())
    for _ in range(5):
        webhook_store.record_attempt(
            hooked.db, "ops-chat", ok=False, status="500", final=True, disable_after=5,
            now=hooked.now(),
        )  # fmt: skip
    hooked.enable_webhook("ops-chat")
    page = hooked.audit(AuditRequest(action="webhook"))
    assert [e.kind for e in page.events] == ["webhook.enabled", "webhook.disabled"]
