"""PostgreSQL wake-ups: a commit in one process wakes idle workers in another at once (the
store's NOTIFY and one LISTEN connection per process); losing that connection only slows
things down, is said in the worker's problem and ``health``, and the listener reconnects.
Job output with NUL bytes lands on PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_support import worker_env
from conftest import FAST
from support import wait_until, write_template

from opsconsole.config import Settings, load_settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL
from opsconsole.core.store import notify
from opsconsole.core.store.db import Database
from opsconsole.engine.pool import WorkerPool

BIN = Path(sys.executable).parent / "opsconsole"
pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


@pytest.fixture
def pg_settings(pg_url: str, home: Path, catalog: Path) -> Settings:
    """Settings on a migrated PostgreSQL store of this test's own, with a quick template."""
    db = Database(pg_url)
    db.ensure_schema()
    db.dispose()
    write_template(
        catalog,
        "quick",
        'runner: shell\ncommand: ["bash", "-c", "{{ script }}"]\n'
        "params:\n  script: {type: string, default: 'true'}\n",
    )
    return load_settings(home=home, catalog=catalog, db=pg_url, **FAST)


@pytest.fixture
def pg_service(pg_settings: Settings) -> Iterator[OpsService]:
    db = Database(pg_settings.db)
    yield OpsService(pg_settings, db)
    db.dispose()


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return worker_env(settings, **extra)


def _listen_backends(service: OpsService) -> list[tuple[int, str]]:
    """(pid, last statement) of this store's LISTEN connections, from the server's view."""
    with service.db.read() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid, query FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database()"
            ),
            {"app": notify.APPLICATION_NAME},
        )
        return [(r.pid, r.query) for r in rows]


def _terminate(service: OpsService, pid: int) -> None:
    with service.db.read() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()


def _started(service: OpsService, job_id: str) -> bool:
    return service.get(job_id).started_at is not None


def test_a_submit_from_another_process_wakes_an_idle_worker_at_once(
    pg_settings: Settings, pg_service: OpsService
) -> None:
    """The pool polls once an hour and the local datagram is SQLite's: only the store's
    notification can explain the pickup."""
    slow = dataclasses.replace(pg_settings, poll_interval=3600.0)
    pool = WorkerPool(OpsService(slow, pg_service.db), slots=1).start()
    try:
        assert notify.wait_connected(pg_service.db, 10)
        wait_until(lambda: pool.busy() == 0, timeout=5)
        out = subprocess.run(
            [str(BIN), "submit", "quick", "--json"],
            env=_env(pg_settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        job_id = json.loads(out.stdout)["id"]
        wait_until(lambda: _started(pg_service, job_id), timeout=30)
    finally:
        pool.stop(grace=0.5)


def test_a_terminated_listen_connection_costs_only_the_poll_interval_and_reconnects(
    pg_settings: Settings, pg_service: OpsService
) -> None:
    """``pg_terminate_backend`` on a real worker's LISTEN connection: the job submitted
    meanwhile starts within the poll interval, and the worker listens again."""
    log = Path(pg_settings.home) / "worker.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN), "worker", "--workers", "2"],
            env=_env(pg_settings, OPSCONSOLE_POLL_INTERVAL="1.0"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        first = wait_until(lambda: _listen_backends(pg_service), timeout=30)
        assert len(first) == 1  # one LISTEN connection per worker process
        old_pid = first[0][0]
        _terminate(pg_service, old_pid)
        job = pg_service.submit(SubmitRequest("quick", {}))
        wait_until(lambda: _started(pg_service, job.id), timeout=1.0 + 5)
        # listening again, not just connected: a new connection shows an empty statement
        # until its LISTEN has run, so wait for the statement, not for the connection
        again = wait_until(
            lambda: [
                b
                for b in _listen_backends(pg_service)
                if b[0] != old_pid and b[1] == f"LISTEN {notify.CHANNEL}"
            ],
            timeout=30,
        )
        assert len(again) == 1
        text = wait_until(lambda: "work again" in (t := log.read_text()) and t, timeout=30)
        assert "LISTEN connection" in text and "is down" in text  # said once, in one line
        assert text.count("is down") == 1
        later = pg_service.submit(SubmitRequest("quick", {}))
        wait_until(lambda: pg_service.get(later.id).state in FINAL, timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_a_cancel_reaches_a_running_job_at_once_not_at_the_next_heartbeat(
    pg_settings: Settings, pg_service: OpsService
) -> None:
    """No timer runs here, so no heartbeat (which also reads cancel requests) does: only the
    notification's ``c`` flag can explain the stop."""
    slow = dataclasses.replace(pg_settings, heartbeat_interval=60.0, lease=600.0)
    pool = WorkerPool(OpsService(slow, pg_service.db), slots=1, use_scheduler=False).start()
    try:
        job = pg_service.submit(SubmitRequest("quick", {"script": "sleep 600"}))
        wait_until(lambda: pg_service.get(job.id).state == "running", timeout=30)
        wait_until(lambda: [line for line in pg_service.logs_since(job.id)], timeout=30)
        pg_service.cancel(job.id)
        view = wait_until(lambda: (v := pg_service.get(job.id)).state in FINAL and v, 30)
        assert view.state == "cancelled"
    finally:
        pool.stop(grace=0.5)


def test_on_change_hears_another_process_commit_and_nothing_on_sqlite(
    pg_settings: Settings, pg_service: OpsService, service: OpsService
) -> None:
    """What the console's feed and ``--follow`` wait on between their polls."""
    woke = threading.Event()
    stop = pg_service.on_change(woke.set)
    try:
        assert notify.wait_connected(pg_service.db, 10)
        assert pg_service.wake_problem() is None
        subprocess.run(
            [str(BIN), "submit", "quick", "--json"],
            env=_env(pg_settings),
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert woke.wait(30)
    finally:
        stop()
    assert notify.listener_of(pg_service.db) is None  # the last subscriber stopped it
    if service.db.dialect == "sqlite":
        assert service.on_change(woke.set) is not None
        assert notify.listener_of(service.db) is None


def test_events_follow_prints_what_another_process_commits(
    pg_settings: Settings, pg_service: OpsService
) -> None:
    out = Path(pg_settings.home) / "events.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(BIN), "events", "--follow", "--json"],
            env=_env(pg_settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _listen_backends(pg_service), timeout=30)  # it listens
        job = pg_service.submit(SubmitRequest("quick", {}))
        text = wait_until(lambda: job.id in (t := out.read_text()) and t, timeout=30)
        first = json.loads(next(line for line in text.splitlines() if job.id in line))
        assert first["kind"] == "submitted"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_logs_follow_prints_a_running_job_to_its_end_on_postgresql(
    pg_settings: Settings, pg_service: OpsService
) -> None:
    pool = WorkerPool(pg_service, slots=1, use_scheduler=False).start()
    try:
        job = pg_service.submit(SubmitRequest("quick", {"script": "echo one; sleep 1; echo two"}))
        follow = subprocess.run(
            [str(BIN), "logs", job.id, "--follow", "--raw"],
            env=_env(pg_settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        pool.stop(grace=0.5)
    assert follow.returncode == 0, follow.stderr
    printed = follow.stdout.splitlines()
    assert printed.index("one") < printed.index("two")
    assert notify.listener_of(pg_service.db) is None


def test_the_console_feed_refreshes_on_another_process_commit(
    pg_settings: Settings, pg_service: OpsService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's feed reads once an hour here: only the notification can explain that
    it sees a job submitted by another process."""
    from opsconsole.tui import feed as feed_module
    from opsconsole.tui.messages import EventsArrived

    monkeypatch.setattr(feed_module, "INTERVAL", 3600.0)
    posted: list[object] = []
    feed = feed_module.Feed(pg_service, posted.append)
    feed.start_at(pg_service.last_event_id())
    thread = threading.Thread(target=feed.run, daemon=True)
    thread.start()
    try:
        assert notify.wait_connected(pg_service.db, 10)
        wait_until(lambda: posted, timeout=10)  # its first round is done: it sleeps
        out = subprocess.run(
            [str(BIN), "submit", "quick", "--json"],
            env=_env(pg_settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        job_id = json.loads(out.stdout)["id"]

        def arrived() -> bool:
            return any(
                isinstance(m, EventsArrived) and any(e.job_id == job_id for e in m.events)
                for m in list(posted)
            )

        wait_until(arrived, timeout=30)
    finally:
        feed.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert notify.listener_of(pg_service.db) is None  # the feed let go of its subscription


@pytest.fixture
def blocked(pg_service: OpsService) -> Iterator[Callable[[bool], None]]:
    """Refuse new connections to the test's database until the test ends (or lets them)."""
    name = pg_service.db.url.database
    # a database cannot refuse connections to itself: say it from the maintenance one
    admin = sa.create_engine(
        pg_service.db.url.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )

    def allow(on: bool) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(on).lower()}'))

    yield allow
    allow(True)
    admin.dispose()


def test_a_listener_that_cannot_reconnect_says_so_in_health_and_wakes_everyone_when_back(
    pg_settings: Settings, pg_service: OpsService, blocked: Callable[[bool], None]
) -> None:
    heard: list[notify.Change] = []
    woke = threading.Event()

    def hear(change: notify.Change) -> None:
        heard.append(change)
        woke.set()

    pool = WorkerPool(pg_service, slots=1, use_scheduler=False).start()
    stop = notify.subscribe(pg_service.db, hear)
    try:
        listener = notify.listener_of(pg_service.db)
        assert listener is not None and listener.connected.is_set()
        pid = listener.backend_pid
        assert pid is not None
        pg_service.wake_workers()  # nothing on PostgreSQL: the commit is what notifies
        # the store's own sessions stay open (pooled) while new ones are refused: the test's
        # reads and the pool's writes meanwhile use them, only the listener has to reconnect
        with contextlib.ExitStack() as warm:
            for _ in range(4):
                warm.enter_context(pg_service.db.read())
        blocked(False)
        _terminate(pg_service, pid)
        problem = wait_until(lambda: (p := pool.problem() or "") and "LISTEN" in p and p, 10)
        assert "LISTEN connection" in problem and "polling" in problem
        pool.heartbeat()  # writes the problem to the worker's row
        checks = {c.name: c for c in pg_service.health().checks}
        assert not checks[f"worker {pool.id}"].ok
        assert "LISTEN connection" in checks[f"worker {pool.id}"].detail
        heard.clear()
        woke.clear()
        blocked(True)
        wait_until(lambda: listener.reconnects == 1 and listener.connected.is_set(), 30)
        assert woke.wait(10)
        assert heard[0] == notify.ANYTHING  # what was committed meanwhile was not heard
        assert pool.problem() is None
        woke.clear()
        job = pg_service.submit(SubmitRequest("quick", {}))
        assert woke.wait(10)
        assert any(c.ready for c in heard[1:])
        wait_until(lambda: pg_service.get(job.id).state in FINAL, timeout=30)
    finally:
        stop()
        pool.stop(grace=0.5)


def test_job_output_with_nul_bytes_lands_on_postgresql(
    pg_settings: Settings, pg_service: OpsService, handler: Callable[..., str]
) -> None:
    """PostgreSQL's text refuses NUL: the log sink drops control characters from output, and
    an event's message (an exception's text) shows a NUL as U+2400; both jobs end as they
    should, with every line and event recorded."""
    write_template(
        Path(pg_settings.catalog),
        "raiser",
        f"runner: python\nhandler: {handler(RAISER)}\n",
    )
    pool = WorkerPool(pg_service, slots=2, use_scheduler=False).start()
    try:
        shell = pg_service.submit(
            SubmitRequest(
                "quick",
                {"script": r"printf 'a\0b\n\0\0\n'; printf 'bad\0news\n' >&2; exit 3"},
            )
        )
        python = pg_service.submit(SubmitRequest("raiser", {}))
        ended = [
            wait_until(lambda j=j: (v := pg_service.get(j)).state in FINAL and v, 30)
            for j in (shell.id, python.id)
        ]
        problem = pool.problem()
    finally:
        pool.stop(grace=0.5)
    assert [v.state for v in ended] == ["failed", "failed"]
    assert problem is None
    lines = [line.text for line in pg_service.logs_since(shell.id)]
    assert "ab" in lines and "badnews" in lines
    events = pg_service.get(python.id, with_events=True).events or ()
    assert "onetwo" in [line.text for line in pg_service.logs_since(python.id)]
    assert any("bad\N{SYMBOL FOR NULL}news" in e.message for e in events)
    assert not any("\0" in e.message for v in ended for e in (v.events or ()))


RAISER = """
def run(ctx):
    ctx.log("one\\0two")
    ctx.progress(50, "half\\0way")
    raise RuntimeError("bad\\0news")
"""
