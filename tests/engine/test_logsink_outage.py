"""The log sink through store outages: a full disk, a write lock held past the busy timeout.

Every test writes through a real fault (a tmpfs filled to ENOSPC, a second process in
``BEGIN IMMEDIATE``) and then checks the store itself: each line exactly once, in order.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_faults import fill, resize, tmpfs, truncate_wal, write_lock
from support import wait_until

from opsconsole.core.clock import SystemClock
from opsconsole.core.secrets import Redactor
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database, logs
from opsconsole.engine.logsink import LogSink

S = JobState
JOB = "outage1"
OUTAGE = "cannot write its log"
RESUMED = "log writes resumed"


def start_job(db: Database) -> int:
    """A queued job claimed by a worker: its attempt may write log lines."""
    now = SystemClock().now()
    row = {"id": JOB, "template": "t", "state": S.QUEUED.value, "run_at": now}
    job_store.insert(db, {**row, "created_at": now, "updated_at": now}, (), actor="t", now=now)
    claimed = claim_store.claim(db, "tester:1:0000", now, lease_s=600)
    assert claimed is not None and claimed["id"] == JOB
    return int(claimed["attempts"])


def make_sink(db: Database, attempt: int, **kw: Any) -> LogSink:
    kw.setdefault("batch", 20)
    kw.setdefault("retry_max", 0.2)  # recover quickly once the store is back
    return LogSink(db, JOB, attempt, SystemClock(), Redactor(), cap=1_000_000, line_max=500, **kw)


def out_lines(db: Database) -> list[str]:
    """Every stored line of the job's output, oldest first (duplicates would show)."""
    return [r["line"] for r in feed.logs_since(db, JOB, 0, 100_000) if r["stream"] == "out"]


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture
def sink_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="opsconsole.worker")
    return caplog


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk small enough to fill."""
    with tmpfs(tmp_path / "disk", "2m") as path:
        yield path


@pytest.fixture
def disk_db(disk: Path, migrated_db: Path) -> Iterator[Database]:
    """A store on the small disk (closed before the disk is unmounted)."""
    shutil.copyfile(migrated_db, disk / "ops.db")
    db = Database(f"sqlite:///{disk / 'ops.db'}")
    yield db
    db.dispose()


@pytest.fixture
def locked_db(db_path: Path) -> Iterator[Database]:
    """A store whose writes give up after half a second of waiting for the write lock."""
    db = Database(f"sqlite:///{db_path}", busy_timeout=0.5)
    yield db
    db.dispose()


# -- a full disk -----------------------------------------------------------------------------


def test_a_full_disk_delays_the_log_and_loses_nothing_once_grown(
    disk: Path, disk_db: Database, sink_log: pytest.LogCaptureFixture
) -> None:
    attempt = start_job(disk_db)
    sink = make_sink(disk_db, attempt)
    sink.write("out", "before the disk filled")
    wait_until(lambda: out_lines(disk_db) == ["before the disk filled"], 30)

    truncate_wal(disk / "ops.db")
    fill(disk)
    for i in range(100):
        sink.write("out", f"during {i}")
    sink.progress(50, "half way")
    wait_until(lambda: sink.problem is not None, 30)
    assert "full" in sink.problem
    # the writer survives one refusal after another, and keeps every line meanwhile
    wait_until(lambda: sink.failed_writes >= 3, 30)
    for i in range(100, 150):
        sink.write("out", f"during {i}")
    assert sink.buffered_lines == 150
    assert out_lines(disk_db) == ["before the disk filled"]

    resize(disk, "16m")  # the operator grows the disk
    wait_until(lambda: sink.problem is None and sink.buffered_lines == 0, 30)
    sink.write("out", "after")
    assert sink.close(timeout=30)

    assert out_lines(disk_db) == [
        "before the disk filled",
        *(f"during {i}" for i in range(150)),
        "after",
    ]
    with disk_db.read() as conn:
        row = job_store.fetch(conn, JOB)
    assert row is not None and (row["progress"], row["step"]) == (50, "half way")
    assert len(messages(sink_log, OUTAGE)) == 1, "one warning per outage, not one per retry"
    assert len(messages(sink_log, RESUMED)) == 1


def test_close_on_a_full_disk_reports_false_then_lands_everything_after_recovery(
    disk: Path, disk_db: Database
) -> None:
    attempt = start_job(disk_db)
    sink = make_sink(disk_db, attempt)
    truncate_wal(disk / "ops.db")
    filler = fill(disk)
    for i in range(30):
        sink.write("out", f"line {i}")

    assert sink.close(timeout=1.0) is False  # does not raise into the job's cleanup
    assert sink.problem is not None and "full" in sink.problem
    assert out_lines(disk_db) == []
    sink.write("out", "after close")  # the attempt is over: dropped, not queued

    filler.unlink()  # space comes back
    assert sink.close(timeout=30) is True
    assert sink.problem is None and not sink.fenced
    assert out_lines(disk_db) == [f"line {i}" for i in range(30)]


# -- a write lock held past the busy timeout -------------------------------------------------


def test_a_write_lock_held_past_the_busy_timeout_loses_and_reorders_nothing(
    db_path: Path, locked_db: Database, sink_log: pytest.LogCaptureFixture
) -> None:
    attempt = start_job(locked_db)
    sink = make_sink(locked_db, attempt)
    sink.write("out", "line 0")
    wait_until(lambda: out_lines(locked_db) == ["line 0"], 30)

    with write_lock(db_path) as lock:
        for i in range(1, 60):
            sink.write("out", f"line {i}")
        wait_until(lambda: sink.failed_writes >= 2, 30)
        assert sink.problem is not None and "locked" in sink.problem
        for i in range(60, 120):
            sink.write("out", f"line {i}")
        assert out_lines(locked_db) == ["line 0"]
        lock.release()
        wait_until(lambda: sink.problem is None, 30)
    for i in range(120, 130):
        sink.write("out", f"line {i}")
    assert sink.close(timeout=30)

    assert out_lines(locked_db) == [f"line {i}" for i in range(130)]
    assert len(messages(sink_log, OUTAGE)) == 1
    assert len(messages(sink_log, RESUMED)) == 1


# -- backpressure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bound",
    [{"buffer_lines": 40}, {"buffer_bytes": 40 * 100}],
    ids=["lines", "bytes"],
)
def test_a_full_buffer_blocks_the_producer_until_the_store_takes_lines(
    db_path: Path, locked_db: Database, bound: dict[str, int]
) -> None:
    attempt = start_job(locked_db)
    sink = make_sink(locked_db, attempt, batch=10, **bound)
    total = 200
    written = 0
    peak = 0

    def produce() -> None:
        nonlocal written, peak
        for i in range(total):
            sink.write("out", f"{i:05d}".ljust(100, "."))  # 100 bytes a line
            written += 1
            # only write() adds lines, so the most the sink held is seen right after one
            peak = max(peak, sink.buffered_lines)

    with write_lock(db_path) as lock:
        producer = threading.Thread(target=produce)
        producer.start()
        wait_until(lambda: sink.blocked_writers == 1, 30)
        assert written == 40 == sink.buffered_lines
        assert sink.buffered_bytes == 40 * 100
        assert producer.is_alive()
        lock.release()
        producer.join(60)
    assert not producer.is_alive()
    assert sink.close(timeout=30)
    assert peak <= 40
    assert out_lines(locked_db) == [f"{i:05d}".ljust(100, ".") for i in range(total)]


def test_close_never_deadlocks_with_a_blocked_producer(db_path: Path, locked_db: Database) -> None:
    """The line a blocked producer was writing when the job closed its log still lands."""
    attempt = start_job(locked_db)
    sink = make_sink(locked_db, attempt, batch=10, buffer_lines=10)
    with write_lock(db_path) as lock:
        producer = threading.Thread(
            target=lambda: [sink.write("out", f"line {i}") for i in range(11)]
        )
        producer.start()
        wait_until(lambda: sink.blocked_writers == 1, 30)
        assert sink.close(timeout=0.5) is False
        assert producer.is_alive()
        lock.release()
        assert sink.close(timeout=30) is True
        producer.join(30)
    assert not producer.is_alive()
    assert out_lines(locked_db) == [f"line {i}" for i in range(11)]


# -- any other error -------------------------------------------------------------------------


def test_the_writer_survives_an_unexpected_error_and_retries_the_same_lines(
    locked_db: Database, sink_log: pytest.LogCaptureFixture
) -> None:
    """A row already holding the next line number makes the insert fail (IntegrityError)."""
    attempt = start_job(locked_db)
    with locked_db.read() as conn:
        row = job_store.fetch(conn, JOB)
    assert row is not None
    squatter = {"job_id": JOB, "seq": row["log_lines"] + 2, "ts": row["started_at"]}
    with locked_db.write() as conn:
        conn.execute(logs.insert().values(**squatter, attempt=0, stream="meta", line="squat"))
    sink = make_sink(locked_db, attempt)
    for i in range(5):
        sink.write("out", f"line {i}")
    wait_until(lambda: sink.failed_writes >= 2, 30)
    assert sink.problem is not None and "IntegrityError" in sink.problem

    with locked_db.write() as conn:
        conn.execute(logs.delete().where(logs.c.job_id == JOB, logs.c.line == "squat"))
    assert sink.close(timeout=30)
    assert out_lines(locked_db) == [f"line {i}" for i in range(5)]
    assert len(messages(sink_log, OUTAGE)) == 1
