"""Host identity, the reaper across machines, the store's clock and one key for all hosts.

The reaper tests drive time with the settable clock on the store under test (SQLite, or
PostgreSQL with ``--store=postgresql``); the clock tests need PostgreSQL's own clock
(``pg_url``); the key test runs real worker processes.
"""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fleet_support import BIN, worker_env
from support import write_template

from opsconsole.config import Settings, load_settings
from opsconsole.core import hostid
from opsconsole.core.clock import SettableClock, SystemClock
from opsconsole.core.secrets import create_key
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store.db import Database
from opsconsole.core.storeclock import SKEW_NOTED, StoreClock
from opsconsole.engine.pool import WorkerPool
from opsconsole.engine.reaper import Reaper
from opsconsole.engine.recorder import Recorder

S = JobState

# -- host identity ----------------------------------------------------------------------


def test_host_id_is_the_hostname_and_the_machine_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    machine = tmp_path / "machine-id"
    boot = tmp_path / "boot_id"
    machine.write_text("0123456789abcdef0123456789abcdef\n")
    boot.write_text("aaaa-bbbb\n")
    assert hostid.host_id((machine, boot)) == f"{socket.gethostname()}/{machine.read_text()[:-1]}"
    machine.write_text("")  # an empty machine id (some container images): the boot id
    assert hostid.host_id((machine, boot)) == f"{socket.gethostname()}/aaaabbbb"
    assert hostid.host_id((tmp_path / "none",)) == socket.gethostname()
    monkeypatch.setenv(hostid.HOST_ID_ENV, "rack-7/node-3")
    assert hostid.host_id((machine, boot)) == "rack-7/node-3"
    assert hostid.host_name() == "rack-7"


def test_a_worker_registers_its_host_identity_and_keeps_a_readable_id(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hostid.HOST_ID_ENV, "host-a/1234")
    db = Database(settings.db)
    service = OpsService(settings, db)
    pool = WorkerPool(service, slots=1, use_scheduler=False).start()
    try:
        (row,) = claim_store.list_workers(db)
        assert row["host_id"] == "host-a/1234"
        assert row["id"].startswith("host-a:")
        # what `workers list --json` shows: the readable host and the machine it names
        (view,) = service.workers()
        assert (view.host, view.to_dict()["host_id"]) == ("host-a", "host-a/1234")
    finally:
        pool.stop(grace=0)
        db.dispose()


# -- the reaper across machines -----------------------------------------------------------


def _register(db: Database, worker: str, host_id: str, at: datetime) -> None:
    claim_store.register_worker(
        db,
        worker,
        host=host_id,
        host_id=host_id,
        pid=2**22 + 7,  # no such process, but only its own machine may say so
        slots=1,
        now=at,
        version="t",
    )


def _reaper(svc: OpsService, clock: SettableClock, worker: str, host_id: str) -> Reaper:
    recorder = Recorder(
        svc.db, clock, worker, max_interruptions=3, stopping=threading.Event(), patience=1.0
    )
    return Reaper(svc.db, svc.settings, worker, host_id, set, recorder)


def test_another_machines_job_waits_while_that_machine_lives_then_is_reaped(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    write_template(catalog, "hello", 'runner: shell\ncommand: ["true"]\non_interrupt: mark\n')
    db, lease = clocked.db, clocked.settings.lease
    t0 = clock.now()
    _register(db, "x1", "machine-x", t0)  # stays alive on machine x
    _register(db, "x2", "machine-x", t0)  # freezes with a job
    _register(db, "y1", "machine-y", t0)
    job = clocked.submit(SubmitRequest("hello", {})).id
    assert claim_store.claim(db, "x2", t0, lease) is not None

    later = t0 + timedelta(seconds=lease * 3)
    clock.set(later)
    claim_store.heartbeat(
        db, "x1", later, lease_s=lease, slots=1, busy=0, state="running", running=[]
    )
    claim_store.heartbeat(
        db, "y1", later, lease_s=lease, slots=1, busy=0, state="running", running=[]
    )
    # x2's lease ran out, but machine x has a live worker: only it can make sure x2's
    # processes are gone, so machine y leaves the job alone
    assert _reaper(clocked, clock, "y1", "machine-y").reap(later) == 0
    assert clocked.get(job).state == S.RUNNING
    assert {w["id"]: w["state"] for w in claim_store.list_workers(db)}["x2"] == "running"

    # machine x's own worker settles it
    assert _reaper(clocked, clock, "x1", "machine-x").reap(later) == 1
    view = clocked.get(job)
    assert view.state == S.INTERRUPTED
    assert view.error is not None and "worker x2 vanished" in view.error["message"]


def test_a_whole_machine_gone_quiet_is_reaped_by_another(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    write_template(catalog, "hello", 'runner: shell\ncommand: ["true"]\non_interrupt: requeue\n')
    db, lease = clocked.db, clocked.settings.lease
    t0 = clock.now()
    _register(db, "x1", "machine-x", t0)
    _register(db, "x2", "machine-x", t0)
    _register(db, "y1", "machine-y", t0)
    job = clocked.submit(SubmitRequest("hello", {})).id
    assert claim_store.claim(db, "x2", t0, lease) is not None

    almost = t0 + timedelta(seconds=lease * 0.9)  # machine x not stale yet: nothing to do
    assert _reaper(clocked, clock, "y1", "machine-y").reap(almost) == 0
    later = t0 + timedelta(seconds=lease * 3)
    clock.set(later)
    claim_store.heartbeat(
        db, "y1", later, lease_s=lease, slots=1, busy=0, state="running", running=[]
    )
    assert _reaper(clocked, clock, "y1", "machine-y").reap(later) == 1
    view = clocked.get(job)
    assert (view.state, view.attempts) == (S.QUEUED, 1)
    states = {w["id"]: w["state"] for w in claim_store.list_workers(db, include_stopped=True)}
    assert states == {"x1": "dead", "x2": "dead", "y1": "running"}


# -- the store's clock --------------------------------------------------------------------


class AheadClock(SystemClock):
    """This machine's clock, set 30 s fast (a host whose time sync broke)."""

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=30)


def _db_now(db: Database) -> datetime:
    found = claim_store.store_now(db)
    assert found is not None
    return found


def test_the_pool_keeps_the_stores_time_and_says_its_machines_clock_is_off(
    pg_url: str, home: Path, catalog: Path
) -> None:
    db = Database(pg_url)
    db.ensure_schema()
    settings = load_settings(
        home=home, catalog=catalog, db=pg_url, heartbeat_interval=0.2, lease=3.0
    )
    svc = OpsService(settings, db, clock=AheadClock())
    pool = WorkerPool(svc, slots=1, use_scheduler=False).start()
    try:
        pool.heartbeat()
        (row,) = claim_store.list_workers(db)
        # written in the store's time, not 30 s in its future (which would keep a dead
        # worker looking alive for 30 s more)
        assert abs((row["heartbeat_at"] - _db_now(db)).total_seconds()) < 5
        assert abs(pool.clock.offset + 30) < 5
        problem = pool.problem() or ""
        assert "clock is" in problem and "ahead of the store's" in problem
        pool.heartbeat()
        health = {c.name: c for c in svc.health().checks}
        assert health["workers"].ok, health["workers"]  # alive by the store's clock
        assert not health[f"worker {pool.id}"].ok
        assert "ahead of the store's" in health[f"worker {pool.id}"].detail
        assert not health["clock"].ok
        assert "30" in health["clock"].detail and "ahead of the store's" in health["clock"].detail
    finally:
        pool.stop(grace=0)
        db.dispose()


def test_a_settable_clock_is_never_corrected(pg_url: str) -> None:
    clock = SettableClock()
    corrected = StoreClock(clock)
    store = Database(pg_url)
    try:
        corrected.learn(_db_now(store), clock.now(), clock.now())
    finally:
        store.dispose()
    assert corrected.now() == clock.now()  # tests drive time exactly
    assert corrected.skew_problem() is None


def test_a_clock_within_the_noise_is_not_a_problem() -> None:
    base = SystemClock()
    corrected = StoreClock(base)
    sent = base.now()
    corrected.learn(sent + timedelta(seconds=SKEW_NOTED / 2), sent, sent)
    assert corrected.skew_problem() is None
    corrected.learn(sent - timedelta(seconds=SKEW_NOTED * 2), sent, sent)
    assert "ahead of the store's" in (corrected.skew_problem() or "")


# -- one key for all hosts ------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_whose_key_is_not_the_stores_refuses_to_start_in_one_line(
    pg_url: str, tmp_path: Path, catalog: Path
) -> None:
    write_template(catalog, "hello", 'runner: shell\ncommand: ["true"]\n')
    first, second = tmp_path / "host1", tmp_path / "host2"
    first.mkdir()
    second.mkdir()

    def once(home: Path, host: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN), "worker", "--once"],
            env=worker_env(pg_url, home, catalog, OPSCONSOLE_HOST_ID=host),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    submit = subprocess.run(  # the first submit makes the key and records it in the store
        [str(BIN), "submit", "hello"],
        env=worker_env(pg_url, first, catalog),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert submit.returncode == 0, submit.stderr
    assert (first / "secret.key").exists()
    made = once(first, "host-1")
    assert made.returncode == 0, made.stderr
    create_key(second)  # host 2 has a key of its own, not the store's
    refused = once(second, "host-2")
    assert refused.returncode == 5
    lines = [ln for ln in refused.stderr.splitlines() if "ERROR" in ln or "error" in ln]
    assert len(lines) == 1, refused.stderr
    assert "sealed with key" in lines[0] and "not with" in lines[0]
    assert "Traceback" not in refused.stderr
    db = Database(pg_url)
    try:
        assert [w["host_id"] for w in claim_store.list_workers(db, include_stopped=True)] == [
            "host-1"
        ]  # the refused worker never registered, so it never claimed
    finally:
        db.dispose()
    (second / "secret.key").write_bytes((first / "secret.key").read_bytes())
    (second / "secret.key").chmod(0o600)
    same = once(second, "host-2")  # the same key on both hosts: it starts
    assert same.returncode == 0, same.stderr
