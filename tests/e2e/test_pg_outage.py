"""PostgreSQL stopped under load (``pg_ctl stop -m fast``, then started again): what workers,
the CLI and the console do while the store is away and after it comes back.

Each test runs on a cluster of this module's own (``pg_support.new_cluster``), since stopping
the session's cluster would break every other test. The PostgreSQL-only tests run in the
default (SQLite) run, like the ones on ``pg_url``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_support import worker_env
from pg_support import Cluster, new_cluster
from support import wait_until, write_template

from opsconsole.config import Settings, load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.model import events
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store.db import Database
from opsconsole.engine.pool import WorkerPool

S = JobState
BIN = Path(sys.executable).parent / "opsconsole"
OUTAGE = 20.0
"""Seconds the server stays down in the outage under load (the issue's figure)."""
LEASE = 3.0


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    yield from new_cluster(Cluster, prefix="opsconsole-pg-outage-", port=5432)


@pytest.fixture
def outage_url(pg: Cluster) -> Iterator[str]:
    """A migrated database on the module's cluster, which is running when the test starts."""
    if not pg.running():  # a test that failed while the server was down
        pg.start()
    url = pg.create_database()
    db = Database(url)
    db.ensure_schema()
    db.dispose()
    yield url
    if not pg.running():
        pg.start()
    pg.drop_database(url)


@pytest.fixture
def outage_settings(home: Path, catalog: Path, outage_url: str) -> Settings:
    return load_settings(
        home=home,
        catalog=catalog,
        db=outage_url,
        poll_interval=0.05,
        heartbeat_interval=0.2,
        lease=LEASE,
        kill_grace=0.5,
        drain_grace=2.0,
    )


@pytest.fixture
def outage_service(outage_settings: Settings) -> Iterator[OpsService]:
    db = Database(outage_settings.db)
    yield OpsService(outage_settings, db)
    db.dispose()


@pytest.fixture
def sleeper(catalog: Path) -> str:
    write_template(
        catalog,
        "sleeper",
        'runner: shell\ncommand: ["sleep", "{{ seconds }}"]\n'
        "params:\n  seconds: {type: number, default: 1}\n",
    )
    return "sleeper"


@pytest.fixture
def chatty(catalog: Path) -> str:
    """A job that writes a line every 50 ms for ``seconds``: its log sink meets the outage."""
    write_template(
        catalog,
        "chatty",
        "runner: shell\ncommand:\n  - bash\n  - -c\n"
        '  - "for i in $(seq 1 $(( {{ seconds }} * 20 ))); do echo line $i; sleep 0.05; done"\n'
        "params:\n  seconds: {type: integer, default: 1}\n",
    )
    return "chatty"


def _env(settings: Settings) -> dict[str, str]:
    return worker_env(settings, OPSCONSOLE_POLL_INTERVAL="0.05", OPSCONSOLE_LEASE=str(LEASE))


def _cli(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _final_events(db: Database) -> tuple[Counter[str], Counter[str]]:
    """Per job: how many attempts started, and how many final states were written."""
    ev = events
    with db.read() as conn:
        rows = conn.execute(sa.select(ev.c.job_id, ev.c.kind, ev.c.state)).all()
    started = Counter(r.job_id for r in rows if r.kind == "started")
    ended = Counter(r.job_id for r in rows if r.state in {s.value for s in FINAL})
    return started, ended


# -- workers under load -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_20_second_outage_under_load_loses_no_final_state_and_runs_nothing_twice(
    pg: Cluster,
    outage_settings: Settings,
    outage_service: OpsService,
    sleeper: str,
    chatty: str,
) -> None:
    svc = outage_service
    logs = [Path(outage_settings.home) / f"worker{i}.out" for i in (1, 2)]
    workers = []
    for log in logs:
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [str(BIN), "worker", "--workers", "4"],
                    env=_env(outage_settings),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        # running across the outage: they end while the store is away
        across = [svc.submit(SubmitRequest(sleeper, {"seconds": "4"})).id for _ in range(5)]
        across += [svc.submit(SubmitRequest(chatty, {"seconds": 4})).id for _ in range(3)]
        # queued behind them: claimed only once the store is back
        later = [svc.submit(SubmitRequest(sleeper, {"seconds": "0.2"})).id for _ in range(16)]
        wait_until(lambda: all(svc.get(j).state == S.RUNNING for j in across), timeout=30)
        follower = subprocess.Popen(
            [str(BIN), "events", "--follow"],
            env=_env(outage_settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

        pg.stop("fast")
        down = time.monotonic()
        # a command that was following the feed ends too, with its one line
        _, err = follower.communicate(timeout=60)
        assert follower.returncode == 5, err
        assert err.count("\n") == 1 and err.startswith("opsconsole: error: store "), err
        # CLI commands during the outage: exit 5, one line, no traceback
        for args in (["jobs", "list"], ["submit", sleeper, "-p", "seconds=0"]):
            done = _cli(outage_settings, *args)
            assert done.returncode == 5, (args, done.stdout, done.stderr)
            assert done.stdout == ""
            assert done.stderr.count("\n") == 1, done.stderr
            assert done.stderr.startswith("opsconsole: error: store postgresql"), done.stderr
        for log in logs:  # each worker noticed (its first store call failed) and said so
            wait_until(lambda log=log: "store unavailable" in log.read_text(), timeout=15)
        time.sleep(max(OUTAGE - (time.monotonic() - down), 0))  # the outage's length, on purpose
        assert [w.poll() for w in workers] == [None, None]  # no worker crashed or exited
        pg.start()

        jobs = across + later
        wait_until(lambda: all(svc.get(j).state in FINAL for j in jobs), timeout=60)
        assert {j: svc.get(j).state for j in jobs} == dict.fromkeys(jobs, S.SUCCEEDED)
        started, ended = _final_events(svc.db)
        assert started == Counter(dict.fromkeys(jobs, 1))  # nothing was requeued and rerun
        assert ended == Counter(dict.fromkeys(jobs, 1))  # every end written, and once
        # the chatty jobs' lines written during the outage landed after it, each once
        for job in across[5:]:
            lines = [x.text for x in svc.logs_since(job, 0, limit=1000) if x.stream == "out"]
            assert lines == [f"line {i}" for i in range(1, 81)]
        assert [w.poll() for w in workers] == [None, None]
        for w in workers:
            w.send_signal(signal.SIGTERM)
        assert [w.wait(timeout=30) for w in workers] == [0, 0]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text
        assert text.count("store unavailable") == 1, text  # once per outage, not per try
        assert text.count("store available again") == 1, text
        assert "maximum number of running instances" not in text  # no line per skipped tick


def test_a_refused_statement_is_not_an_outage_but_a_stopped_server_is(
    pg: Cluster, outage_service: OpsService
) -> None:
    """Only a server that does not answer pauses the whole pool: a statement it refuses
    (here a table renamed under the worker) is that loop's own failure, said by that loop."""
    svc = outage_service
    pool = WorkerPool(svc, slots=1, use_scheduler=False).start()
    try:
        with svc.db.write() as conn:
            conn.exec_driver_sql("ALTER TABLE workers RENAME TO workers_away")
        with pytest.raises(StoreUnavailable) as refused:
            pool.tick()
        assert not refused.value.away
        assert not pool.outage.down
        with svc.db.write() as conn:
            conn.exec_driver_sql("ALTER TABLE workers_away RENAME TO workers")
        pool.tick()

        pg.stop("fast")
        with pytest.raises(StoreUnavailable) as away:
            pool.tick()
        assert away.value.away
        assert pool.outage.down
        assert "running jobs go on" in (pool.problem() or "")
        pg.start()
        pool.tick()
        assert not pool.outage.down
        assert pool.outage.outages == 1
    finally:
        pool.stop(grace=0.5)


# -- a worker that starts while the store is away ------------------------------------------------


def test_a_worker_started_while_the_server_is_down_waits_for_it_instead_of_exiting(
    pg: Cluster, outage_settings: Settings, outage_service: OpsService, sleeper: str
) -> None:
    """Under systemd a worker that exits at once is restarted into the same failure until
    the unit's start limit gives up for good; one that waits starts when the server does."""
    log = Path(outage_settings.home) / "worker.out"
    pg.stop("fast")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN), "worker", "--workers", "1"],
            env=_env(outage_settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "waiting for the store" in log.read_text(), timeout=30)
        assert proc.poll() is None
        pg.start()
        job = outage_service.submit(SubmitRequest(sleeper, {"seconds": "0"})).id
        wait_until(lambda: outage_service.get(job).state in FINAL, timeout=60)
        assert outage_service.get(job).state == S.SUCCEEDED
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert text.count("waiting for the store") == 1, text  # said once, however long it took
    assert "Traceback" not in text


def test_a_worker_whose_database_does_not_exist_says_so_at_once(
    pg: Cluster, outage_settings: Settings
) -> None:
    """Waiting cannot fix a refusal: the worker ends with its one line (exit 5)."""
    import dataclasses

    missing = pg.url("no_such_database")
    done = _cli(dataclasses.replace(outage_settings, db=missing), "worker", "--workers", "1")
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines()[-1].startswith("opsconsole: error: store postgresql")
    assert 'database "no_such_database" does not exist' in done.stderr
    assert "waiting for the store" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_stopped_during_the_outage_keeps_the_ends_it_could_not_record(
    pg: Cluster, outage_settings: Settings, outage_service: OpsService, sleeper: str
) -> None:
    """A job that succeeded while the server was down is recorded as succeeded, at the time
    it ended, by the next worker started on that host (not interrupted by the reaper)."""
    svc = outage_service
    home = Path(outage_settings.home)
    env = {**_env(outage_settings), "OPSCONSOLE_DRAIN_GRACE": "1"}

    def start(log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [str(BIN), "worker", "--workers", "1"], env=env, stdout=out, stderr=out
            )

    first = start(home / "first.out")
    second = None
    try:
        job = svc.submit(SubmitRequest(sleeper, {"seconds": "1"})).id
        wait_until(lambda: svc.get(job).state == S.RUNNING, timeout=30)
        pg.stop("fast")
        wait_until(lambda: "cannot record its end" in (home / "first.out").read_text(), 30)
        first.send_signal(signal.SIGTERM)  # an operator stops the worker during the outage
        first.wait(timeout=30)
        assert [p.name for p in (home / "unrecorded").glob("*.json")] == [f"{job}.1.json"]
        pg.start()
        back = datetime.now(UTC)
        assert svc.get(job).state == S.RUNNING  # nobody has recorded it yet
        second = start(home / "second.out")
        wait_until(lambda: svc.get(job).state in FINAL, timeout=30)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    view = svc.get(job)
    assert view.state == S.SUCCEEDED and view.attempts == 1
    assert view.finished_at is not None and view.finished_at < back  # when it really ended
    assert _final_events(svc.db)[1] == Counter({job: 1})
    assert not list((home / "unrecorded").glob("*.json"))
    assert "kept by worker" in (home / "second.out").read_text()


# -- the reaper after an outage ---------------------------------------------------------------


def test_after_an_outage_heartbeats_are_judged_only_once_workers_could_renew_them(
    pg: Cluster,
    outage_settings: Settings,
    outage_service: OpsService,
    catalog: Path,
    tmp_path: Path,
) -> None:
    """Every heartbeat is old when the server comes back: a reaper that judged them at once
    would requeue the jobs of live workers (and run them twice). A worker that really is gone
    is still reaped, a lease later."""
    release = tmp_path / "release"
    write_template(
        catalog,
        "waiter",
        f'runner: shell\ncommand: [bash, -c, "while [ ! -e {release} ]; do sleep 0.05; done"]\n',
    )
    clock = SettableClock()
    svc = OpsService(outage_settings, outage_service.db, clock=clock)
    live = svc.submit(SubmitRequest("waiter")).id
    a = WorkerPool(svc, slots=1, use_scheduler=False).start()
    b = None
    try:
        wait_until(lambda: svc.get(live).state == S.RUNNING, timeout=15)
        # a worker that died without a word: its row and its job, but no process
        ghost = svc.submit(SubmitRequest("waiter")).id
        claim_store.register_worker(
            svc.db, "ghost:1:0", host="ghost", pid=1, slots=1, now=clock.now(), version="0"
        )
        assert claim_store.claim(svc.db, "ghost:1:0", clock.now(), LEASE)["id"] == ghost
        b = WorkerPool(svc, slots=1, use_scheduler=False).start()

        pg.stop("fast")
        with pytest.raises(StoreUnavailable):
            b.tick()
        assert b.outage.down
        clock.advance(2 * LEASE)  # the outage outlasts every lease
        pg.start()
        b.tick()  # the store is back: b heartbeats, but judges no one yet
        assert not b.outage.down
        assert svc.get(live).state == S.RUNNING and svc.get(ghost).state == S.RUNNING

        clock.advance(LEASE / 2)
        a.tick()  # the live worker heartbeats again within the lease
        clock.advance(LEASE / 2 + 0.1)
        b.tick()
        assert svc.get(ghost).state == S.INTERRUPTED  # gone for good: reaped
        assert svc.get(live).state == S.RUNNING  # alive: its job goes on
        release.touch()
        wait_until(lambda: svc.get(live).state in FINAL, timeout=15)
        assert svc.get(live).state == S.SUCCEEDED
        assert svc.get(live).attempts == 1
    finally:
        release.touch()
        a.stop(grace=0.5)
        if b is not None:
            b.stop(grace=0.5)


# -- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a server that hangs, or a
    firewall in between; its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    srv.close()


@pytest.mark.slow
def test_a_server_that_never_answers_is_one_line_and_exit_5_not_a_hang(
    silent_server: int, home: Path, catalog: Path
) -> None:
    url = f"postgresql+psycopg://ops@127.0.0.1:{silent_server}/opsconsole"
    done = subprocess.run(
        [str(BIN), "--home", str(home), "--catalog", str(catalog), "--db", url, "jobs", "list"],
        capture_output=True,
        text=True,
        timeout=60,  # without a connect timeout libpq would wait here for ever
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("opsconsole: error: store postgresql://127.0.0.1/opsconsole: ")
    assert "timeout" in done.stderr


# -- the console ----------------------------------------------------------------------------------


def test_the_console_shows_the_outage_and_recovers_by_itself(
    pg: Cluster, outage_service: OpsService, sleeper: str
) -> None:
    from textual.pilot import Pilot
    from textual.widgets import Static
    from tui_support import WIDE, label_text, until

    from opsconsole.tui.app import OpsConsole
    from opsconsole.tui.widgets.job_table import JobTable

    svc = outage_service
    before = svc.submit(SubmitRequest(sleeper)).id
    app = OpsConsole(svc, embed=False)

    async def script(pilot: Pilot[None]) -> None:
        banner = app.query_one("#banner", Static)
        queue = app.query_one("#queue", JobTable)
        await until(pilot, lambda: app.ready, timeout=10, what="the first load")
        await until(pilot, lambda: before in queue.views, what="the job in the queue")
        assert not banner.has_class("-visible")
        await asyncio.to_thread(pg.stop, "fast")
        await until(pilot, lambda: banner.has_class("-visible"), timeout=15, what="the banner")
        text = label_text(banner)
        assert text.startswith("store postgresql:///"), text
        assert text.endswith("(retrying)"), text
        assert before in queue.views  # what was on screen stays there
        await asyncio.to_thread(pg.start)
        await until(pilot, lambda: not banner.has_class("-visible"), timeout=20, what="recovery")
        # it follows the store again: a job submitted elsewhere after the outage shows up
        after = await asyncio.to_thread(lambda: svc.submit(SubmitRequest(sleeper)).id)
        await until(pilot, lambda: after in queue.views, timeout=10, what="a new job")

    async def main() -> None:
        async with app.run_test(size=WIDE) as pilot:
            await script(pilot)

    asyncio.run(main())
