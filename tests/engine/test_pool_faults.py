"""The pool under faults: a locked or full store, lost rows, bad handlers, idle cost.

Every test here reproduces a way the pool used to stop or stall silently: slots that died
on a store error and were never replaced, a job whose end could not be written staying
``running`` for ever, a handler's odd return or ``sys.exit`` taking its slot with it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_faults import fill, tmpfs, truncate_wal, write_lock
from support import wait_until, write_template

from opsconsole.config import load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store.db import Database
from opsconsole.core.views import JobView
from opsconsole.engine import pool as pool_module
from opsconsole.engine.pool import WorkerPool

S = JobState
pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


def final(service: OpsService, job_id: str, timeout: float = 15.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def in_thread(catalog: Path, name: str, ref: str, extra: str = "") -> None:
    write_template(catalog, name, f"runner: python\nhandler: {ref}\nisolate: false\n{extra}")


# -- store errors ------------------------------------------------------------------------------


def test_a_write_lock_held_past_the_busy_timeout_does_not_stop_the_slots(
    impatient: OpsService, catalog: Path, db_path: Path
) -> None:
    write_template(catalog, "hello", "command: [echo, hi]\n")
    pool = WorkerPool(impatient, slots=3, use_scheduler=False).start()
    try:
        with write_lock(db_path):
            pool.wake_all()  # what a submit's poke does: the claimer claims at once
            wait_until(lambda: "cannot claim jobs" in (pool.problem() or ""), 15)
        jobs = [impatient.submit(SubmitRequest("hello")).id for _ in range(3)]
        assert [final(impatient, j).state for j in jobs] == [S.SUCCEEDED] * 3
        wait_until(lambda: pool.problem() is None, 15)
        assert len([t for t in pool._threads if t.name == "claimer" and t.is_alive()]) == 1
    finally:
        pool.stop(grace=0.5)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk the test can fill and free again."""
    with tmpfs(tmp_path / "disk", "16m") as mnt:
        yield mnt


def folded(db_file: Path) -> bool:
    """Truncate the WAL; False while a reader of the running pool keeps it busy."""
    try:
        truncate_wal(db_file)
    except AssertionError:
        return False
    return True


@pytest.fixture
def disk_service(
    tiny_disk: Path, migrated_db: Path, catalog: Path, tmp_path: Path
) -> Iterator[OpsService]:
    home = tiny_disk / "home"
    home.mkdir()
    shutil.copyfile(migrated_db, home / "opsconsole.db")
    settings = load_settings(
        home=home,
        catalog=catalog,
        db=f"sqlite:///{home / 'opsconsole.db'}",
        poll_interval=0.05,
        heartbeat_interval=0.2,
        lease=3.0,
        kill_grace=0.5,
        drain_grace=2.0,
    )
    db = Database(settings.db, busy_timeout=0.3)
    yield OpsService(settings, db)
    db.dispose()


@pytest.mark.slow
def test_a_full_disk_delays_a_job_s_log_and_end_until_there_is_room_again(
    disk_service: OpsService, tiny_disk: Path, catalog: Path, tmp_path: Path
) -> None:
    svc = disk_service
    release, done = tmp_path / "release", tmp_path / "done"
    write_template(
        catalog,
        "chatty",
        "command:\n  - bash\n  - -c\n  - |\n"
        "    i=0\n"
        f"    while [ ! -e {release} ]; do i=$((i+1)); echo line $i; sleep 0.01; done\n"
        "    echo last\n"
        f"    touch {done}\n",
    )
    job = svc.submit(SubmitRequest("chatty")).id
    pool = WorkerPool(svc, slots=1).start()
    try:
        wait_until(lambda: len(svc.logs_since(job)) > 20)
        # fold the WAL into the store, so every write from now on must grow the WAL
        wait_until(lambda: folded(tiny_disk / "home" / "opsconsole.db"), 15)
        filler = fill(tiny_disk)
        wait_until(lambda: "not landing" in (pool.problem() or ""), 15)
        release.touch()  # the job ends while nothing can be written
        wait_until(done.exists, 15)
        # its end waits behind its log: it must not overtake lines that have not landed
        assert svc.get(job).state == S.RUNNING
        assert "not landing" in (pool.problem() or "")
        filler.unlink()  # the disk has room again
        view = final(svc, job, timeout=30)
        assert view.state == S.SUCCEEDED
        lines = [ln.text for ln in svc.logs_since(job, limit=100_000) if ln.stream == "out"]
        assert lines[-1] == "last"
        assert lines[:-1] == [f"line {i}" for i in range(1, len(lines))]  # none lost, in order
        wait_until(lambda: pool.problem() is None, 15)
    finally:
        pool.stop(grace=0.5)


# -- rows the worker owns but does not hold ---------------------------------------------------


def test_a_row_the_worker_owns_but_no_longer_holds_is_reaped(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    """The heartbeat renews the runs the pool holds, not every row that names it."""
    write_template(catalog, "hello", "command: [echo, hi]\n")
    job = clocked.submit(SubmitRequest("hello")).id
    pool = WorkerPool(clocked, slots=1, use_scheduler=False)
    lease = clocked.settings.lease
    # the row names this worker, but no slot runs it (a slot that died, an end never written)
    assert claim_store.claim(clocked.db, pool.id, clock.now(), lease) is not None
    try:
        pool.start()
        for _ in range(4):
            clock.advance(lease / 2)
            pool.tick(clock.now())
        view = clocked.get(job)
        assert view.state == S.INTERRUPTED
        assert view.error is not None and "lost track" in view.error["message"]
    finally:
        pool.stop(grace=0.5)


# -- handlers that misbehave on the worker's thread ----------------------------------------------


def test_a_handler_returning_an_unknown_outcome_ends_failed(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any
) -> None:
    ref = handler(
        """
        from opsconsole.engine.context import RunResult

        def run(ctx):
            return RunResult(outcome="mostly-fine")
        """
    )
    in_thread(catalog, "odd", ref)
    job = service.submit(SubmitRequest("odd")).id
    start_pool(1)
    view = final(service, job)
    assert view.state == S.FAILED
    assert view.error is not None and "unknown outcome 'mostly-fine'" in view.error["message"]


def test_a_handler_calling_sys_exit_fails_its_job_and_keeps_its_slot(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any
) -> None:
    ref = handler(
        """
        import sys

        def run(ctx):
            sys.exit(3)
        """
    )
    in_thread(catalog, "quitter", ref)
    write_template(catalog, "hello", "command: [echo, hi]\n")
    quitter = service.submit(SubmitRequest("quitter")).id
    pool = start_pool(1)
    view = final(service, quitter)
    assert view.state == S.FAILED
    assert view.error is not None and "sys.exit(3)" in view.error["message"]
    after = service.submit(SubmitRequest("hello")).id
    assert final(service, after).state == S.SUCCEEDED
    assert pool.problem() is None


# -- the cost of idle slots -----------------------------------------------------------------------


def count_statements(db: Database) -> tuple[dict[str, int], Any]:
    counts = {"writes": 0, "claims": 0, "probes": 0}

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("opsconsole_write"):
            counts["writes"] += 1

    def on_execute(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        text = " ".join(statement.split()).upper()
        if text.startswith("UPDATE JOBS SET STATE") and "RETURNING" in text:
            counts["claims"] += 1
        elif text.startswith("SELECT JOBS.ID") and "LIMIT" in text:
            counts["probes"] += 1

    sa.event.listen(db.engine, "begin", on_begin)
    sa.event.listen(db.engine, "before_cursor_execute", on_execute)

    def remove() -> None:
        sa.event.remove(db.engine, "begin", on_begin)
        sa.event.remove(db.engine, "before_cursor_execute", on_execute)

    return counts, remove


def test_sixteen_idle_slots_poll_with_one_read_and_a_submit_costs_a_claim_or_two(
    service: OpsService, catalog: Path
) -> None:
    write_template(catalog, "hello", "command: [echo, hi]\n")
    counts, remove = count_statements(service.db)  # before any thread runs a statement
    pool = WorkerPool(service, slots=16, use_scheduler=False).start()
    counts.update(writes=0, claims=0, probes=0)  # registering the worker is a write
    try:
        wait_until(lambda: counts["probes"] >= 5, 15)  # five idle polls
        assert counts["writes"] == 0
        assert counts["claims"] == 0
        job = service.submit(SubmitRequest("hello")).id  # 1 write, then a poke
        assert final(service, job).state == S.SUCCEEDED
        assert counts["claims"] <= 3  # the one that got it, maybe one that found nothing
    finally:
        remove()
        pool.stop(grace=0.5)


# -- bookkeeping that must not grow -----------------------------------------------------------


def test_stopped_workers_are_forgotten_after_a_week(
    clocked: OpsService, clock: SettableClock
) -> None:
    for i in range(3):
        claim_store.register_worker(
            clocked.db, f"old:{i}", host="h", pid=1, slots=1, now=clock.now(), version="t"
        )
        claim_store.set_worker_state(clocked.db, f"old:{i}", "stopped", clock.now())
    clock.advance(8 * 86400)
    pool = WorkerPool(clocked, slots=1, use_scheduler=False)
    try:
        pool.start()  # its first reap forgets them
        ids = {w.id for w in clocked.workers(include_stopped=True)}
        assert ids == {pool.id}
    finally:
        pool.stop(grace=0.5)


def test_the_pool_keeps_a_bounded_record_of_outcomes(
    service: OpsService, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "RECENT_OUTCOMES", 5)
    write_template(catalog, "hello", "command: [echo, hi]\n")
    pool = WorkerPool(service, slots=2, use_scheduler=False).start()
    try:
        jobs = [service.submit(SubmitRequest("hello")).id for _ in range(12)]
        assert all(final(service, j).state == S.SUCCEEDED for j in jobs)
        assert len(pool.outcomes) == 5
        assert pool.counts["succeeded"] == 12
        assert pool.busy() == 0 and pool.running_jobs() == []
    finally:
        pool.stop(grace=0.5)


def test_an_abandoned_busy_loop_is_interrupted_and_stops_burning_a_core(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any
) -> None:
    ref = handler(
        """
        def run(ctx):
            n = 0
            while True:  # never looks at ctx.cancelled
                n += 1
        """
    )
    in_thread(catalog, "spinner", ref, "timeout: 0.3s\n")
    job = service.submit(SubmitRequest("spinner")).id
    pool = start_pool(1)
    view = final(service, job)
    assert view.state == S.TIMED_OUT
    assert view.error is not None and "abandoned" in view.error["message"]
    wait_until(lambda: pool.stuck_threads() == 0, 15)  # the loop's thread has ended
    assert pool.problem() is None
