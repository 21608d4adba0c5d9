"""The event feed in commit order on PostgreSQL: a follower reading ``id > cursor`` never
passes an event that commits later (``db.write_events``: held rows, inserted last under a
lock). SQLite has one writer at a time, so its ids follow commits already."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from opsconsole.core.store import feed
from opsconsole.core.store.db import Database
from opsconsole.core.store.jobs import NO_JOB, add_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    db.ensure_schema()
    yield db
    db.dispose()


def _kinds(db: Database, after: int) -> list[tuple[int, str]]:
    return [(r["id"], r["message"]) for r in feed.events_since(db, after)]


def test_a_follower_never_passes_an_event_that_commits_later(pg: Database) -> None:
    """The first transaction writes its event and waits; the second writes and commits; the
    follower reads; then the first commits. With ids given at insert, the follower's cursor
    would already be past the first event's id and it would never see it."""
    written = threading.Event()
    go = threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with pg.write() as conn:
                add_event(conn, NO_JOB, "note", NOW, message="first")
                written.set()
                assert go.wait(30)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
            written.set()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert written.wait(30)
        with pg.write() as conn:
            add_event(conn, NO_JOB, "note", NOW, message="second")
        seen = _kinds(pg, 0)
        assert [m for _, m in seen] == ["second"]
        cursor = seen[-1][0]
    finally:
        go.set()
        thread.join(30)
    assert not failures
    later = _kinds(pg, cursor)
    assert [m for _, m in later] == ["first"]  # after the cursor: nothing is skipped
    assert later[0][0] > cursor


def test_events_of_a_rolled_back_transaction_or_savepoint_are_never_written(
    pg: Database,
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), pg.write() as conn:
        add_event(conn, NO_JOB, "note", NOW, message="rolled back")
        raise Boom
    with pg.write() as conn:  # the same pooled connection: nothing held over from before
        try:
            with conn.begin_nested():
                add_event(conn, NO_JOB, "note", NOW, message="in a failed savepoint")
                raise Boom
        except Boom:
            pass
        with conn.begin_nested():
            add_event(conn, NO_JOB, "note", NOW, message="in a savepoint")
        add_event(conn, NO_JOB, "note", NOW, message="kept")
    assert [m for _, m in _kinds(pg, 0)] == ["in a savepoint", "kept"]


def test_an_event_outside_a_write_transaction_is_refused_loudly(pg: Database) -> None:
    with pytest.raises(RuntimeError, match="write transaction"), pg.read() as conn:
        add_event(conn, NO_JOB, "note", NOW, message="lost")


def test_a_follower_of_many_concurrent_writers_sees_every_event_exactly_once(
    pg: Database,
) -> None:
    """Writers that hold row locks, half of them written after their events: the feed lock,
    taken last, closes no cycle of waits, and the follower's cursor reads each event once."""
    with pg.write() as conn:
        conn.execute(sa.text("CREATE TABLE t_rows (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(sa.text("INSERT INTO t_rows VALUES (1, 0), (2, 0)"))
    writers, each = 6, 60
    bump = sa.text("UPDATE t_rows SET n = n + 1 WHERE id = :id")
    failures: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(each):
                with pg.write() as conn:
                    if w % 2:  # half write their events before their row locks
                        add_event(conn, NO_JOB, "note", NOW, message=f"{w}:{i}")
                    for row in (1, 2):
                        conn.execute(bump, {"id": row})
                    if not w % 2:
                        add_event(conn, NO_JOB, "note", NOW, message=f"{w}:{i}")
                    add_event(conn, NO_JOB, "note", NOW, message=f"{w}:{i}:b")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    seen: list[str] = []
    cursor = 0
    while True:
        finished = all(not t.is_alive() for t in threads)
        batch = feed.events_since(pg, cursor, limit=100)
        if batch:
            cursor = batch[-1]["id"]
            seen += [r["message"] for r in batch]
        elif finished:
            break
    assert not failures
    expected = {f"{w}:{i}{s}" for w in range(writers) for i in range(each) for s in ("", ":b")}
    assert len(seen) == len(expected)
    assert set(seen) == expected
    for w in range(writers):  # a transaction's events are adjacent and in order
        for i in range(each):
            at = seen.index(f"{w}:{i}")
            assert seen[at + 1] == f"{w}:{i}:b"
