"""Dependencies on PostgreSQL, where two transactions do interleave (SQLite's one writer
never lets them): two dependencies finishing at once, and a dependency finishing while its
dependent is being inserted, must never leave the dependent waiting for ever.

The interleavings are made exactly, not hoped for: the first transaction is held open at
the point that matters, and the second is watched until the server says it waits for a lock
(or, on code without the lock, until it has committed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from support import wait_until

from opsconsole.core.states import JobState, Verb
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database, jobs

S = JobState
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    db.ensure_schema()
    yield db
    db.dispose()


def put(db: Database, job_id: str, state: JobState, after: tuple[str, ...] = ()) -> None:
    row = {
        "id": job_id,
        "template": "echo",
        "state": state.value,
        "run_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    job_store.insert(db, row, after, actor="tester", now=NOW)


def start(db: Database, job_id: str) -> None:
    with db.write() as conn:
        conn.execute(
            jobs.update().where(jobs.c.id == job_id).values(state=S.RUNNING.value, attempts=1)
        )


def succeed(conn: sa.Connection, job_id: str) -> None:
    done = job_store.transition(conn, job_id, S.SUCCEEDED, NOW, verb=Verb.FINISH, attempt=1)
    assert done is not None


def state_of(db: Database, job_id: str) -> str:
    with db.read() as conn:
        return str(conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar_one())


def waiting_for_a_lock(db: Database, app: str) -> bool:
    with db.read() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = :app AND wait_event_type = 'Lock'"
                ),
                {"app": app},
            ).scalar_one()
        )


def interleave(db: Database, url: str, first: Callable[[sa.Connection], None], second: Any) -> None:
    """Run ``first`` in a transaction held open until ``second`` (in another session, named
    so the server can be asked about it) either waits for a lock or has committed."""
    held, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with db.write() as conn:
                first(conn)
                held.set()
                assert release.wait(60)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
            held.set()

    other = Database(url + "&application_name=second")
    done = threading.Event()

    def run_second() -> None:
        try:
            second(other)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    a = threading.Thread(target=hold)
    a.start()
    assert held.wait(60)
    b = threading.Thread(target=run_second)
    b.start()
    wait_until(lambda: done.is_set() or waiting_for_a_lock(db, "second"), timeout=60)
    release.set()
    a.join(60)
    b.join(60)
    other.dispose()
    assert not errors, errors


def test_two_dependencies_finishing_at_once_release_their_dependent(
    db: Database, pg_url: str
) -> None:
    put(db, "depa01", S.QUEUED)
    put(db, "depb01", S.QUEUED)
    put(db, "child1", S.WAITING, after=("depa01", "depb01"))
    start(db, "depa01")
    start(db, "depb01")

    def second(other: Database) -> None:
        with other.write() as conn:
            succeed(conn, "depb01")

    interleave(db, pg_url, lambda conn: succeed(conn, "depa01"), second)

    assert state_of(db, "child1") == "queued"


def test_a_dependency_finishing_while_its_dependent_is_inserted_releases_it(
    db: Database, pg_url: str
) -> None:
    put(db, "depa02", S.QUEUED)
    start(db, "depa02")

    def insert_child(conn: sa.Connection) -> None:
        row = {
            "id": "child2",
            "template": "echo",
            "state": S.WAITING.value,
            "run_at": NOW,
            "created_at": NOW,
            "updated_at": NOW,
        }
        job_store.insert_in(conn, row, ["depa02"], actor="tester", now=NOW)

    def second(other: Database) -> None:
        with other.write() as conn:
            succeed(conn, "depa02")

    interleave(db, pg_url, insert_child, second)

    assert state_of(db, "child2") == "queued"
