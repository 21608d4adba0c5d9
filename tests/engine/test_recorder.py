"""Recording an attempt's end: retried until it lands, because a lost end means a job
that stays ``running`` for ever."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_faults import write_lock
from support import wait_until, write_template

from opsconsole.core.clock import SystemClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.engine.context import RunResult
from opsconsole.engine.recorder import Recorder

S = JobState


@pytest.fixture
def claimed(impatient: OpsService, catalog: Path) -> dict[str, Any]:
    write_template(catalog, "hello", "command: [echo, hi]\n")
    impatient.submit(SubmitRequest("hello"))
    row = claim_store.claim(impatient.db, "w1", impatient.now(), 30)
    assert row is not None
    return dict(row)


def recorder(svc: OpsService, stopping: threading.Event) -> Recorder:
    return Recorder(svc.db, SystemClock(), "w1", max_interruptions=3, stopping=stopping)


def test_an_end_that_cannot_be_written_is_retried_until_it_lands(
    impatient: OpsService, claimed: dict[str, Any], db_path: Path
) -> None:
    rec = recorder(impatient, threading.Event())
    ends: list[Any] = []
    with write_lock(db_path) as lock:
        writer = threading.Thread(target=lambda: ends.append(rec.record(claimed, RunResult())))
        writer.start()
        wait_until(lambda: rec.problem is not None, 15)
        assert f"cannot record the end of job {claimed['id']}" in rec.problem
        assert impatient.get(claimed["id"]).state == S.RUNNING
        lock.release()
    writer.join(30)
    assert not writer.is_alive()
    assert ends[0] is not None and ends[0].state == S.SUCCEEDED
    assert impatient.get(claimed["id"]).state == S.SUCCEEDED
    assert rec.problem is None


def test_a_stopping_worker_gives_up_after_its_patience_and_leaves_the_job_to_the_reaper(
    impatient: OpsService, claimed: dict[str, Any], db_path: Path
) -> None:
    stopping = threading.Event()
    stopping.set()
    rec = Recorder(
        impatient.db, SystemClock(), "w1", max_interruptions=3, stopping=stopping, patience=0.5
    )
    with write_lock(db_path):
        assert rec.record(claimed, RunResult()) is None
    assert impatient.get(claimed["id"]).state == S.RUNNING  # its lease will run out


def test_an_end_the_store_cannot_take_is_recorded_as_a_plain_failure(
    impatient: OpsService, claimed: dict[str, Any]
) -> None:
    """Not the store being away, but this end itself (a result that is not JSON)."""
    rec = recorder(impatient, threading.Event())
    end = rec.record(claimed, RunResult(result={"when": object()}))
    assert end is not None and end.state == S.FAILED
    view = impatient.get(claimed["id"])
    assert view.state == S.FAILED
    assert view.error is not None and "could not be recorded" in view.error["message"]


def test_a_stopping_worker_keeps_an_end_it_cannot_record_for_the_next_start(
    impatient: OpsService, claimed: dict[str, Any], db_path: Path, tmp_path: Path
) -> None:
    """The end of a job that finished while the store was away outlives its worker's stop."""
    import stat

    spool = tmp_path / "unrecorded"
    stopping = threading.Event()
    stopping.set()
    rec = Recorder(
        impatient.db,
        SystemClock(),
        "w1",
        max_interruptions=3,
        stopping=stopping,
        patience=0.3,
        spool=spool,
    )
    with write_lock(db_path):
        assert rec.record(claimed, RunResult(result={"rows": 3})) is None
        ended = impatient.now()
    (kept,) = spool.glob("*.json")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert impatient.get(claimed["id"]).state == S.RUNNING

    later = Recorder(impatient.db, SystemClock(), "w2", max_interruptions=3, stopping=stopping)
    later.spool = spool
    assert later.replay() == 1
    view = impatient.get(claimed["id"])
    assert view.state == S.SUCCEEDED and view.result == {"rows": 3}
    assert view.finished_at is not None and view.finished_at <= ended  # when it ended
    assert list(spool.iterdir()) == []
    assert later.replay() == 0  # once


def test_a_kept_end_loses_to_the_reaper_that_settled_the_job_first(
    impatient: OpsService,
    claimed: dict[str, Any],
    db_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opsconsole.core.store import jobs as job_store

    stopping = threading.Event()
    stopping.set()
    spool = tmp_path / "unrecorded"
    rec = Recorder(
        impatient.db,
        SystemClock(),
        "w1",
        max_interruptions=3,
        stopping=stopping,
        patience=0.3,
        spool=spool,
    )
    with write_lock(db_path):
        assert rec.record(claimed, RunResult()) is None
    # no worker came back within the lease: the reaper settled the attempt
    assert job_store.finish(
        impatient.db, claimed["id"], claimed["attempts"], S.INTERRUPTED, impatient.now(), values={}
    )
    assert rec.replay() == 0
    assert impatient.get(claimed["id"]).state == S.INTERRUPTED
    assert list(spool.iterdir()) == []
    assert f"job {claimed['id']}: the end (succeeded) kept by worker w1 is dropped" in caplog.text


def test_ends_that_arrive_while_one_is_written_land_together_in_one_transaction(
    service: OpsService, catalog: Path
) -> None:
    """Group commit: three slots ending at once cost two transactions, not three; each end
    is still fenced by its own attempt (a stale one changes nothing)."""
    write_template(catalog, "hello", "command: [echo, hi]\n")
    for _ in range(3):
        service.submit(SubmitRequest("hello"))
    rows = [dict(r) for r in claim_store.claim_many(service.db, "w1", service.now(), 30, 3)]
    assert len(rows) == 3
    stale = {**rows[2], "attempts": rows[2]["attempts"] + 1}
    serial = threading.Lock()
    rec = Recorder(
        service.db,
        SystemClock(),
        "w1",
        max_interruptions=3,
        stopping=threading.Event(),
        serial=serial,
    )
    begins: list[Any] = []
    on_begin = begins.append  # one bound method: the same one is removed
    sa.event.listen(service.db.engine, "begin", on_begin)
    ends: dict[str, Any] = {}

    def record(row: dict[str, Any]) -> None:
        ends[row["attempts"], row["id"]] = rec.record(row, RunResult())

    try:
        with serial:  # the first end waits for the write: the next two queue behind it
            first = threading.Thread(target=record, args=(rows[0],))
            first.start()
            wait_until(lambda: rec.writing, 10)
            others = [threading.Thread(target=record, args=(r,)) for r in (rows[1], stale)]
            for thread in others:
                thread.start()
            wait_until(lambda: rec.queued == 2, 10)
        for thread in [first, *others]:
            thread.join(30)
    finally:
        sa.event.remove(service.db.engine, "begin", on_begin)
    assert len(begins) == 2
    assert ends[rows[0]["attempts"], rows[0]["id"]].state == S.SUCCEEDED
    assert ends[rows[1]["attempts"], rows[1]["id"]].state == S.SUCCEEDED
    assert ends[stale["attempts"], stale["id"]] is None
    assert [service.get(r["id"]).state for r in rows] == [S.SUCCEEDED, S.SUCCEEDED, S.RUNNING]
