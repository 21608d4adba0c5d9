"""Claims on PostgreSQL, where claimers really run side by side: limit-1 keys never overlap,
larger keys and team caps hold, no job is claimed twice, no claim takes more than it returns.

Claimers here are threads, each with its own ``Database`` (its own connections, as worker
processes have): the store's statements run in parallel in the server, which is where the
races live. Two tests set up the exact interleaving the database must decide (a claim that
meets an uncommitted claim of the same key) with a second connection, without timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support import wait_until

from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database, events, jobs

S = JobState
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=1)
CLAIMERS = 8


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL store of this test's own."""
    db = Database(pg_url)
    db.ensure_schema()
    yield db
    db.dispose()


def put(db: Database, job_id: str, **values: Any) -> None:
    row = {
        "id": job_id,
        "template": "echo",
        "state": S.QUEUED.value,
        "run_at": T0,
        "created_at": T0,
        "updated_at": T0,
        **values,
    }
    job_store.insert(db, row, (), actor="tester", now=T0)


def pg_str(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


@dataclass
class Run:
    job: str
    worker: str
    start: float
    end: float = 0.0


@dataclass
class Race:
    """What the claimers saw: every claim returned, with when it held the job."""

    runs: list[Run] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def race(
    url: str,
    total: int,
    *,
    caps: dict[str, int] | None = None,
    hold: float = 0.005,
    batch: int = 1,
) -> Race:
    """CLAIMERS threads claim until every one of ``total`` jobs has run; each holds its jobs
    ``hold`` seconds (their work), then finishes them. ``batch`` > 1: each asks for that many
    jobs at once (``claim_many``), and never gets more.

    A run's interval is measured inside the real one: it starts after the claim committed
    and ends before the finish is written, so two intervals that overlap are two jobs the
    store had running at once.
    """
    out = Race()
    go = threading.Event()

    def claimer(n: int) -> None:
        me = f"claimer-{n}"
        db = Database(url)
        try:
            go.wait(10)
            while True:
                if batch == 1:
                    one = claim_store.claim(db, me, NOW, 60, team_caps=caps)
                    got = [one] if one is not None else []
                else:
                    got = claim_store.claim_many(db, me, NOW, 60, batch, team_caps=caps)
                    assert len(got) <= batch, got
                if not got:
                    with out.lock:
                        if len(out.runs) >= total and all(r.end for r in out.runs):
                            return
                    time.sleep(0.002)  # others hold the remaining places: ask again
                    continue
                runs = [Run(row["id"], me, time.monotonic()) for row in got]
                with out.lock:
                    out.runs.extend(runs)
                time.sleep(hold)  # the jobs' work
                for row, run in zip(got, runs, strict=True):
                    run.end = time.monotonic()
                    done = job_store.finish(
                        db, row["id"], row["attempts"], S.SUCCEEDED, NOW, values={"exit_code": 0}
                    )
                    assert done is not None, f"finish of {row['id']} fenced off"
        except BaseException as exc:  # reported by the test, not lost in a thread
            with out.lock:
                out.errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=claimer, args=(n,), daemon=True) for n in range(CLAIMERS)]
    for t in threads:
        t.start()
    go.set()
    deadline = time.monotonic() + 45
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "claimers did not finish in 45 s"
    assert not out.errors, out.errors
    return out


def most_at_once(runs: list[Run]) -> int:
    """The most runs alive at one moment: at each start, the runs started and not ended."""
    return max((sum(1 for o in runs if o.start <= r.start < o.end) for r in runs), default=0)


BATCH = pytest.mark.parametrize("batch", [1, 4], ids=["claim", "claim_many"])


def check_each_job_claimed_once(db: Database, race_: Race, ids: list[str]) -> None:
    """Every job ran exactly once, and every job the store marked claimed was returned by a
    claim: a claim that updated more rows than it returned would leave a claimed job (an
    attempt, a worker) that no claimer holds, without its ``started`` event."""
    claimed = [r.job for r in race_.runs]
    assert sorted(claimed) == sorted(ids)  # each once, none lost
    with db.read() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.state, jobs.c.attempts)).all()
        started = dict(
            conn.execute(
                sa.select(events.c.job_id, sa.func.count())
                .where(events.c.kind == "started")
                .group_by(events.c.job_id)
            ).all()
        )
    assert {r.id: (r.state, r.attempts) for r in rows} == {i: ("succeeded", 1) for i in ids}
    assert started == dict.fromkeys(ids, 1)


@BATCH
def test_many_claimers_never_claim_a_job_twice_nor_more_than_they_return(pg: Database, batch: int):
    ids = [f"j{i:04d}" for i in range(240)]
    for i in ids:
        put(pg, i)
    result = race(pg_str(pg), len(ids), hold=0, batch=batch)
    check_each_job_claimed_once(pg, result, ids)


@BATCH
def test_limit_one_keys_never_overlap(pg: Database, batch: int):
    ids = []
    for key in ("db-main", "db-replica"):
        for i in range(20):
            ids.append(f"{key[:4]}{key[-1]}{i:03d}")
            put(pg, ids[-1], concurrency_key=key, concurrency_limit=1)
    for i in range(20):  # work without a key keeps the other claimers busy alongside
        ids.append(f"free{i:03d}")
        put(pg, ids[-1])
    result = race(pg_str(pg), len(ids), batch=batch)
    check_each_job_claimed_once(pg, result, ids)
    for key in ("db-m", "db-r"):
        runs = [r for r in result.runs if r.job.startswith(key)]
        assert most_at_once(runs) == 1, sorted((r.start, r.end, r.worker) for r in runs)


@BATCH
def test_a_limit_three_key_never_runs_more_than_three(pg: Database, batch: int):
    ids = [f"trio{i:03d}" for i in range(60)]
    for i in ids:
        put(pg, i, concurrency_key="trio", concurrency_limit=3)
    result = race(pg_str(pg), len(ids), hold=0.01, batch=batch)
    check_each_job_claimed_once(pg, result, ids)
    assert most_at_once(result.runs) <= 3


@BATCH
def test_a_teams_cap_holds_across_claimers(pg: Database, batch: int):
    ids = [f"web{i:03d}" for i in range(50)]
    for i in ids:
        put(pg, i, team="web")
    free = [f"ops{i:03d}" for i in range(30)]
    for i in free:
        put(pg, i, team="ops")  # a team without a cap: never held back
    caps = {"web": 2}
    result = race(pg_str(pg), 80, caps=caps, hold=0.01, batch=batch)
    check_each_job_claimed_once(pg, result, ids + free)
    assert most_at_once([r for r in result.runs if r.job.startswith("web")]) <= 2


# -- the exact interleavings ------------------------------------------------------------


def _waiting_on(db: Database, kind: str) -> bool:
    """Is some other session of this database waiting on a lock of ``kind`` (pg_locks)?"""
    with db.read() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE NOT l.granted AND l.locktype = :kind AND a.datname = current_database()"
                ),
                {"kind": kind},
            ).scalar()
        )


def _claim_in_thread(db: Database, **kw: Any) -> tuple[threading.Thread, list[Any]]:
    got: list[Any] = []

    def run() -> None:
        try:
            got.append(claim_store.claim(db, "w-late", NOW, 60, **kw))
        except BaseException as exc:
            got.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


def test_a_claim_the_unique_index_refuses_moves_on_to_another_job(pg: Database):
    """Another claimer has set solo-1 running and not committed yet. Our claim cannot see
    that (its snapshot is older), skips the locked solo-1, picks solo-2 and waits on the
    unique index for the other claim. When that commits, the index refuses solo-2; the
    claim rolls back to its savepoint and takes the next job instead of failing."""
    put(pg, "solo-1", concurrency_key="solo", concurrency_limit=1, priority=9)
    put(pg, "solo-2", concurrency_key="solo", concurrency_limit=1, priority=8)
    put(pg, "other", priority=1)
    rival = pg.engine.connect()
    try:
        tx = rival.begin()
        rival.execute(
            jobs.update().where(jobs.c.id == "solo-1").values(state="running", worker="w-early")
        )
        t, got = _claim_in_thread(pg)
        wait_until(lambda: _waiting_on(pg, "transactionid"), timeout=10)
        tx.commit()
        t.join(10)
    finally:
        rival.close()
    [row] = got
    assert not isinstance(row, BaseException), row
    assert row["id"] == "other"
    with pg.read() as conn:
        states = dict(conn.execute(sa.select(jobs.c.id, jobs.c.state)).all())
    assert states == {"solo-1": "running", "solo-2": "queued", "other": "running"}


Scope = tuple[dict[str, int] | None, dict[str, Any], dict[str, Any], str, str]
SCOPES: dict[str, Scope] = {
    # scope: (team caps, the jobs' key or team, our candidate's own, the lock the rival
    # holds, the state of the first job)
    "key": (None, {"concurrency_key": "pair", "concurrency_limit": 2}, {}, "key:pair", "running"),
    "team": ({"web": 2}, {"team": "web"}, {}, "team:web", "running"),
    # two templates share key pair, one with limit 2 and one with limit 1: the limit-1 job
    # must not start beside the rival's, though the unique index (limit-1 rows) sees no other
    "mixed": (
        None,
        {"concurrency_key": "pair", "concurrency_limit": 2},
        {"concurrency_limit": 1},
        "key:pair",
        "succeeded",
    ),
}


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_holders_are_counted_after_the_lock_so_a_claim_committed_meanwhile_counts(
    pg: Database, scope: str
):
    """A limit-2 key (or a team capped at 2) has one job running; another claimer holds the
    key's (team's) advisory lock and has set a second running, not committed yet. Our claim
    picks a third (its snapshot counts one holder) and waits for the lock; once the other
    commits, its count, made after the lock, sees two and refuses the third. ``mixed``: the
    third is a limit-1 job of the same key, and the rival's one uncommitted job is enough."""
    caps, tag, ours, name, first = SCOPES[scope]
    kind, _, value = name.partition(":")
    lock = (claim_store.KEY_LOCK if kind == "key" else claim_store.TEAM_LOCK) + value
    put(pg, "p-1", state=first, worker="w0", **tag)
    put(pg, "p-2", priority=9, **tag)
    put(pg, "p-3", priority=8, **{**tag, **ours})
    rival = pg.engine.connect()
    try:
        tx = rival.begin()
        rival.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(lock, 0))))
        rival.execute(jobs.update().where(jobs.c.id == "p-2").values(state="running"))
        t, got = _claim_in_thread(pg, team_caps=caps)
        wait_until(lambda: _waiting_on(pg, "advisory"), timeout=10)
        tx.commit()
        t.join(10)
    finally:
        rival.close()
    assert got == [None]
    with pg.read() as conn:
        states = dict(conn.execute(sa.select(jobs.c.id, jobs.c.state)).all())
    assert states == {"p-1": first, "p-2": "running", "p-3": "queued"}


def test_the_claim_walks_indexes_not_the_jobs_table(pg: Database):
    """Each statement a claim ran, explained with sequential scans priced out: a ``Seq Scan``
    still in a plan (of jobs, of freezes) is one the claim cannot avoid. There is none."""
    for i in range(5):
        put(pg, f"k{i}", concurrency_key="k", concurrency_limit=2, team="web")
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().startswith(("WITH pick", "UPDATE jobs")):
            seen.append((statement, params))

    sa.event.listen(pg.engine, "before_cursor_execute", record)
    try:
        assert claim_store.claim(pg, "w", NOW, 60, team_caps={"web": 2}) is not None
    finally:
        sa.event.remove(pg.engine, "before_cursor_execute", record)
    assert [s.split()[0] for s, _ in seen] == ["WITH", "UPDATE"]  # the pick, the guarded claim
    with pg.read() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        for statement, params in seen:
            plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params)]
            assert not [p for p in plan if "Seq Scan on" in p], plan


# -- claim_many on either backend (``--store=postgresql`` for PostgreSQL) ---------------


def test_claim_many_takes_at_most_n_best_first_and_keeps_each_limit_within_one_batch(
    db: Database, put_job: Any, clock: Any
):
    put_job(S.QUEUED, id="solo-a", concurrency_key="solo", concurrency_limit=1, priority=9)
    put_job(S.QUEUED, id="solo-b", concurrency_key="solo", concurrency_limit=1, priority=9)
    put_job(S.QUEUED, id="pair-a", concurrency_key="pair", concurrency_limit=2, priority=8)
    put_job(S.QUEUED, id="pair-b", concurrency_key="pair", concurrency_limit=2, priority=8)
    put_job(S.QUEUED, id="pair-c", concurrency_key="pair", concurrency_limit=2, priority=8)
    put_job(S.QUEUED, id="web-a", team="web", priority=7)
    put_job(S.QUEUED, id="web-b", team="web", priority=7)
    put_job(S.QUEUED, id="plain-a", priority=1)
    put_job(S.QUEUED, id="plain-b", priority=1)
    now, caps = clock.now(), {"web": 1}
    assert claim_store.claim_many(db, "w1", now, 30, 0, team_caps=caps) == []
    first = claim_store.claim_many(db, "w1", now, 30, 2, team_caps=caps)
    # SQLite fills the batch; PostgreSQL's one pick of two (solo-a, solo-b) may come back
    # with one, solo-b refused: never more than asked, and the caller asks again
    assert [r["id"] for r in first] in (["solo-a", "pair-a"], ["solo-a"])
    claimed = list(first)
    while batch := claim_store.claim_many(db, "w1", now, 30, 20, team_caps=caps):
        assert len(batch) <= 20
        priorities = [r["priority"] for r in batch]
        assert priorities == sorted(priorities, reverse=True)  # best first
        claimed += batch
    # pair had two places, web one, solo one: every limit holds inside a batch too
    assert sorted(r["id"] for r in claimed) == [
        "pair-a",
        "pair-b",
        "plain-a",
        "plain-b",
        "solo-a",
        "web-a",
    ]
    for row in claimed:
        assert (row["state"], row["attempts"], row["worker"]) == ("running", 1, "w1")
    assert claim_store.claim_many(db, "w2", now, 30, 20, team_caps=caps) == []


@pytest.mark.parametrize("batch", [1, 4], ids=["claim", "claim_many"])
def test_a_claim_stuck_holding_a_keys_lock_does_not_stop_the_other_claimers(
    pg: Database, batch: int, monkeypatch: pytest.MonkeyPatch
):
    """Another claimer took key k's lock and stopped there (its process frozen mid-claim).
    Our claim waits LOCK_WAIT_MS for it, then leaves k's job and takes the next one; with
    no bound it would wait as long as the other stays frozen, and so would every worker."""
    monkeypatch.setattr(claim_store, "LOCK_WAIT_MS", 200)
    put(pg, "k-1", concurrency_key="k", concurrency_limit=1, priority=9)
    put(pg, "k-2", concurrency_key="k", concurrency_limit=1, priority=8)
    put(pg, "plain", priority=1)
    waits: list[str] = []

    def record(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "pg_advisory_xact_lock(hashtextextended" in statement:  # not the feed's lock
            waits.append(statement)

    rival = pg.engine.connect()
    try:
        tx = rival.begin()
        name = claim_store.KEY_LOCK + "k"
        rival.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(name, 0))))
        got: list[Any] = []

        def run() -> None:
            try:
                if batch == 1:
                    got.append(claim_store.claim(pg, "w-late", NOW, 60))
                else:
                    got.append(claim_store.claim_many(pg, "w-late", NOW, 60, batch))
            except BaseException as exc:
                got.append(exc)

        sa.event.listen(pg.engine, "before_cursor_execute", record)  # our claim's, from here
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(20)
        assert not t.is_alive(), "the claim waited for the stuck one"
        tx.rollback()
    finally:
        rival.close()
        if sa.event.contains(pg.engine, "before_cursor_execute", record):
            sa.event.remove(pg.engine, "before_cursor_execute", record)
    assert len(waits) == 1  # k's lock was waited for once, not once per job of k
    [out] = got
    assert not isinstance(out, BaseException), out
    ids = [out["id"]] if batch == 1 else [r["id"] for r in out]
    assert ids == ["plain"]
    with pg.read() as conn:
        states = dict(conn.execute(sa.select(jobs.c.id, jobs.c.state)).all())
    assert states == {"k-1": "queued", "k-2": "queued", "plain": "running"}


def test_claims_run_under_read_committed_whatever_the_servers_default(pg_url: str, pg_cluster: Any):
    """The key and team locks work because each statement of a claim reads a new snapshot:
    a server whose default is REPEATABLE READ must not make claims count with a stale one."""
    name = sa.make_url(pg_url).database
    pg_cluster.admin(
        f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'"
    )
    db = Database(pg_url)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("SHOW default_transaction_isolation").scalar() == (
                "repeatable read"
            )
        for way in (db.write, db.read):
            with way() as conn:
                level = conn.exec_driver_sql("SHOW transaction_isolation").scalar()
                assert level == "read committed"
    finally:
        db.dispose()
