"""Webhook deliveries end to end: events -> delivery jobs -> a real local HTTP receiver.

The receiver checks each signature with its own Standard Webhooks code; time moves only by
the settable clock, so retries and backoff are exact without waiting.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import wait_until, write_template
from webhook_support import SECRET, SECRET_ENV, Receiver, receiving, verify, write_config

from opsconsole.config import load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store.db import Database, events, jobs
from opsconsole.core.store.jobs import NO_JOB
from opsconsole.core.webhooks import DELIVERY_TEMPLATE, GAP_WAIT
from opsconsole.engine.pool import WorkerPool
from opsconsole.engine.webhooks import dispatch

S = JobState
FAST = {"poll_interval": 0.05, "heartbeat_interval": 0.2, "lease": 3.0, "kill_grace": 0.5}


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
    """A clocked service whose opsconsole.toml declares ``ops-chat`` -> the receiver."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_config(home, receiver.url)
    write_template(
        catalog,
        "deploy-web",
        "command: ['true']\nparams:\n  token: {type: string, secret: true, required: true}\n",
    )
    write_template(catalog, "other", "command: ['true']\n")
    settings = load_settings(home=home, catalog=catalog, db=store_url, **FAST)
    db = Database(settings.db)
    service = OpsService(settings, db, clock=clock)
    yield service
    db.dispose()


@pytest.fixture
def pool(hooked: OpsService) -> Iterator[WorkerPool]:
    pool = WorkerPool(hooked, slots=1, use_scheduler=False).start()
    yield pool
    pool.stop(grace=0.5)


def later(service: OpsService, template: str = "deploy-web") -> str:
    """A job that waits a day (it never runs in the test): only its ``submitted`` counts."""
    params = {"token": "hunter2-top-secret"} if template == "deploy-web" else {}
    return service.submit(SubmitRequest(template, params=params, run_in="1d")).id


def deliveries(service: OpsService) -> list[dict]:
    """The delivery jobs, by the event they deliver."""
    with service.db.read() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(jobs).where(jobs.c.template == DELIVERY_TEMPLATE)
            ).mappings()
        ]
    return sorted(rows, key=lambda r: r["params"]["event"])


def hook_state(service: OpsService) -> dict:
    return next(v for v in service.webhooks() if v.name == "ops-chat").to_dict()


def settled(service: OpsService, job_id: str, attempts: int = 1) -> str:
    """Wait until the job's ``attempts``-th attempt has ended (a retry is scheduled, or the
    job is final)."""

    def ended() -> str | None:
        view = service.get(job_id)
        done = view.attempts >= attempts and view.state in (*FINAL, S.SCHEDULED)
        return view.state if done else None

    return wait_until(ended, timeout=20)


def test_a_matching_event_is_delivered_signed_and_without_secrets(
    hooked: OpsService, pool: WorkerPool, receiver: Receiver, clock: SettableClock
) -> None:
    pool.dispatch_webhooks(clock.now())  # a new webhook starts at the newest event
    job = later(hooked)
    later(hooked, "other")  # not a deploy-*: filtered out
    pool.dispatch_webhooks(clock.now())
    pool.dispatch_webhooks(clock.now())  # a second pass queues nothing twice
    (delivery,) = deliveries(hooked)
    assert delivery["params"]["type"] == "job.submitted"
    assert settled(hooked, delivery["id"]) == S.SUCCEEDED

    (got,) = receiver.received
    assert verify(got), got.headers
    assert not verify(got, secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ==")  # the check can fail
    assert got.headers["webhook-id"] == f"msg_{delivery['params']['event']}_ops-chat"
    assert got.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    body = got.json()
    assert body["type"] == "job.submitted"
    assert body["data"]["job"]["id"] == job
    assert body["data"]["job"]["template"] == "deploy-web"
    assert "hunter2" not in got.body.decode()
    assert "token" not in json.dumps(body["data"]["job"])
    state = hook_state(hooked)
    assert (state["state"], state["failures"], state["last_status"]) == ("enabled", 0, "200 OK")


def test_failed_attempts_back_off_exponentially_then_succeed(
    hooked: OpsService, pool: WorkerPool, receiver: Receiver, clock: SettableClock
) -> None:
    receiver.script = [503, 502]
    pool.dispatch_webhooks(clock.now())
    later(hooked)
    pool.dispatch_webhooks(clock.now())
    (delivery,) = deliveries(hooked)
    delays = []
    for attempt, code in enumerate([503, 502], start=1):
        failed_at = clock.now()
        assert settled(hooked, delivery["id"], attempt) == S.SCHEDULED
        view = hooked.get(delivery["id"])
        assert view.attempts == attempt
        delays.append((view.run_at - failed_at).total_seconds())
        state = hook_state(hooked)
        assert (
            state["last_status"].startswith(f"{code} ")
            and f"attempt {attempt} of 5" in (state["last_status"])
        )
        assert state["failures"] == 0  # a delivery fails only when its last attempt does
        assert state["pending"] == 1  # waiting for its retry
        clock.advance(delays[-1] + 0.01)
        pool.wake_all()
    assert 8 <= delays[0] <= 12 and 16 <= delays[1] <= 24  # 10s, 20s, +/-20%
    assert settled(hooked, delivery["id"], 3) == S.SUCCEEDED
    assert [r.headers["webhook-id"] for r in receiver.received] == [
        receiver.received[0].headers["webhook-id"]
    ] * 3  # one id for every attempt: receivers drop duplicates by it
    assert all(verify(r) for r in receiver.received)
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]
    assert (hook_state(hooked)["last_status"], hook_state(hooked)["pending"]) == ("200 OK", 0)


def test_five_failed_deliveries_disable_the_webhook_until_enabled(
    hooked: OpsService, pool: WorkerPool, receiver: Receiver, clock: SettableClock
) -> None:
    receiver.default = 500
    pool.dispatch_webhooks(clock.now())
    for _ in range(5):
        later(hooked)
    pool.dispatch_webhooks(clock.now())
    ids = [d["id"] for d in deliveries(hooked)]
    assert len(ids) == 5
    for attempt in range(1, 6):  # five attempts each; backoff passes by the clock
        for job_id in ids:
            settled(hooked, job_id, attempt)
        clock.advance(200)
        pool.wake_all()
    assert {hooked.get(j).state for j in ids} == {S.FAILED}
    assert receiver.count() == 25
    state = hook_state(hooked)
    assert (state["state"], state["failures"]) == ("disabled", 5)
    assert "5 deliveries in a row failed" in state["disabled_reason"]
    with hooked.db.read() as conn:
        kinds = list(
            conn.execute(sa.select(events.c.kind).where(events.c.kind.like("webhook.%"))).scalars()
        )
    assert kinds == ["webhook.disabled"]
    (warning,) = hooked.webhook_warnings()
    assert "webhooks enable ops-chat" in warning
    health = {c.name: c for c in hooked.health().checks}
    assert not health["webhooks"].ok

    # while disabled nothing is queued, and nothing is lost: the cursor waits
    missed = later(hooked)
    pool.dispatch_webhooks(clock.now())
    assert len(deliveries(hooked)) == 5
    receiver.default = 200
    hooked.enable_webhook("ops-chat")
    pool.dispatch_webhooks(clock.now())
    (new,) = [d for d in deliveries(hooked) if d["id"] not in ids]
    assert settled(hooked, new["id"]) == S.SUCCEEDED
    assert receiver.received[-1].json()["data"]["job"]["id"] == missed
    state = hook_state(hooked)
    assert (state["state"], state["failures"]) == ("enabled", 0)
    assert hooked.webhook_warnings() == []
    with hooked.db.read() as conn:
        enabled = (
            conn.execute(sa.select(events).where(events.c.kind == "webhook.enabled"))
            .mappings()
            .one()
        )
    assert enabled["job_id"] == NO_JOB and enabled["data"] == {"webhook": "ops-chat"}


def insert_event(service: OpsService, job: str, event_id: int, ts: datetime) -> None:
    """An event with a chosen id: ids handed out out of commit order, as on PostgreSQL."""
    with service.db.write() as conn:
        conn.execute(
            events.insert().values(id=event_id, job_id=job, ts=ts, kind="failed", state="failed")
        )
        if service.db.dialect == "postgresql":  # the sequence goes on past the chosen ids
            conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('job_events', 'id'), "
                    "greatest((SELECT max(id) FROM job_events), :id))"
                ),
                {"id": event_id},
            )


def newest(service: OpsService) -> int:
    with service.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar_one())


def test_the_cursor_waits_at_a_hole_until_it_fills_or_times_out(
    hooked: OpsService, clock: SettableClock
) -> None:
    dispatch(hooked, clock.now())
    job = later(hooked)
    first = newest(hooked)
    insert_event(hooked, job, first + 2, clock.now())  # first + 1 is not committed yet
    dispatch(hooked, clock.now())
    assert [d["params"]["event"] for d in deliveries(hooked)] == [first]
    insert_event(hooked, job, first + 1, clock.now())  # ... now it is: both are delivered
    dispatch(hooked, clock.now())
    assert [d["params"]["event"] for d in deliveries(hooked)] == [first, first + 1, first + 2]

    lost = newest(hooked) + 2  # a hole that never fills (an id a rollback threw away)
    insert_event(hooked, job, lost, clock.now())
    dispatch(hooked, clock.now())
    assert len(deliveries(hooked)) == 3
    clock.advance(GAP_WAIT.total_seconds() - 1)
    dispatch(hooked, clock.now())
    assert len(deliveries(hooked)) == 3
    clock.advance(2)
    dispatch(hooked, clock.now())
    assert [d["params"]["event"] for d in deliveries(hooked)] == [first, first + 1, first + 2, lost]


WRITER = """
import sys
from opsconsole.config import load_settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database
settings = load_settings(home=sys.argv[1], catalog=sys.argv[2], db=sys.argv[3])
service = OpsService(settings, Database(settings.db))
for i in range(int(sys.argv[4])):
    service.submit(SubmitRequest("deploy-web", params={"token": "t"}, run_in="1d"))
"""

DISPATCHER = """
import sys, pathlib
from opsconsole.config import load_settings
from opsconsole.core.service import OpsService
from opsconsole.core.store.db import Database
from opsconsole.engine.webhooks import dispatch
settings = load_settings(home=sys.argv[1], catalog=sys.argv[2], db=sys.argv[3])
service = OpsService(settings, Database(settings.db))
stop = pathlib.Path(sys.argv[4])
while True:
    done = stop.exists()
    dispatch(service, service.now())
    if done:
        break
"""


def test_no_event_is_missed_or_delivered_twice_under_concurrent_writers(
    hooked: OpsService, tmp_path: Path
) -> None:
    settings = hooked.settings
    base = [str(settings.home), str(settings.catalog), settings.db]
    dispatch(hooked, hooked.now())  # the cursor starts here
    stop = tmp_path / "stop"
    run = [sys.executable, "-c"]
    dispatchers = [
        subprocess.Popen([*run, textwrap.dedent(DISPATCHER), *base, str(stop)]) for _ in range(2)
    ]
    writers = [subprocess.Popen([*run, textwrap.dedent(WRITER), *base, "40"]) for _ in range(4)]
    try:
        for w in writers:
            assert w.wait(120) == 0
        stop.touch()
        for d in dispatchers:
            assert d.wait(60) == 0
    finally:
        for p in (*writers, *dispatchers):
            if p.poll() is None:
                p.kill()
                p.wait()
    # no dispatch here: the two processes, which saw the writers end, queued everything
    with hooked.db.read() as conn:
        submitted = set(
            conn.execute(
                sa.select(events.c.id)
                .join(jobs, jobs.c.id == events.c.job_id)
                .where(jobs.c.template == "deploy-web", events.c.kind == "submitted")
            ).scalars()
        )
    delivered = [d["params"]["event"] for d in deliveries(hooked)]
    assert len(submitted) == 160
    assert len(delivered) == len(set(delivered))  # none twice
    assert set(delivered) == submitted  # none missed


def test_delivery_jobs_events_are_never_delivered(
    hooked: OpsService, pool: WorkerPool, receiver: Receiver, clock: SettableClock, home: Path
) -> None:
    receiver.default = 500  # a failing delivery writes job.failed-like events of its own
    pool.dispatch_webhooks(clock.now())
    later(hooked)
    pool.dispatch_webhooks(clock.now())
    (delivery,) = deliveries(hooked)
    settled(hooked, delivery["id"])
    clock.advance(timedelta(seconds=30).total_seconds())
    pool.dispatch_webhooks(clock.now())
    assert len(deliveries(hooked)) == 1


def test_a_real_worker_process_delivers_a_failed_job(
    hooked: OpsService, receiver: Receiver, catalog: Path
) -> None:
    """The installed ``opsconsole worker``: its own timer dispatches, its slot delivers, with
    the secret from its own environment."""
    import os
    import signal

    write_template(catalog, "deploy-broken", "command: ['false']\n")
    settings = hooked.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
        OPSCONSOLE_POLL_INTERVAL="0.2",
    )
    log = Path(settings.home) / "worker.out"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "opsconsole"), "worker", "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # the worker's first dispatch places the cursor; a job submitted after it is seen
        wait_until(lambda: "ops-chat" in webhook_store_names(hooked), timeout=60)
        job = hooked.submit(SubmitRequest("deploy-broken")).id
        got = wait_until(
            lambda: next(
                (r for r in list(receiver.received) if r.json()["type"] == "job.failed"), None
            ),
            timeout=60,
        )
        assert verify(got)
        assert got.json()["data"]["job"]["id"] == job
        assert got.json()["data"]["job"]["state"] == "failed"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def webhook_store_names(service: OpsService) -> set[str]:
    return {v.name for v in service.webhooks() if v.state != "new"}


def test_no_log_line_quotes_a_url_token(
    hooked: OpsService, receiver: Receiver, clock: SettableClock, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx would log the full URL of every request; the token in it must not reach a log."""
    import logging

    caplog.set_level(logging.DEBUG)
    from dataclasses import replace

    (hook,) = hooked.settings.webhooks
    tokened = replace(hook, url=receiver.url.replace("://", "://bot:pa55@") + "?token=t0k3n")
    hooked.settings = replace(hooked.settings, webhooks=(tokened,))
    sent = hooked.test_webhook("ops-chat")
    assert sent.ok and sent.url == receiver.url
    assert receiver.count() == 1
    assert caplog.records  # the capture works: httpcore's debug lines are there
    assert not [r for r in caplog.records if "t0k3n" in r.getMessage() or "pa55" in r.getMessage()]
