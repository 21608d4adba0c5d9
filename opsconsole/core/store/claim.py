"""Claims, leases, heartbeats, worker rows and the reaper's queries.

A claim picks the best ready job (priority, then age; run time reached; concurrency key
under its limit; no active freeze matching it; its team under the team's ``max_concurrent``)
and marks it running with a new attempt number, which fences every later write of that
attempt. The claim is committed before the job runs: no transaction stays open during a job.

SQLite serialises writers with ``BEGIN IMMEDIATE``, so the running counts the one claiming
statement reads cannot change before it writes (two workers never both take a team's last
free place).

PostgreSQL runs claimers side by side, each statement reading its own snapshot, so a count
read inside the claiming statement can miss a claim committed a moment before (two claims
of a limit-1 key would each count zero holders). There the claim is built so that the
database decides every contested place (see ``claim``):

- a job with no concurrency key and no capped team is picked and updated in ONE statement: a
  CTE selects it ``FOR UPDATE SKIP LOCKED`` (rows other claimers hold are passed over, never
  waited for) and the UPDATE joins it by id. Never ``id IN (SELECT ... LIMIT n FOR UPDATE
  SKIP LOCKED)``: PostgreSQL may run such a subquery again (a re-scan of the semi-join, or
  the re-check of a row another transaction updated meanwhile), each run skips other locked
  rows, and the UPDATE takes more than ``n``; a materialized CTE is evaluated once.
- a key, and a team with a cap, are counted under an advisory transaction lock per key /
  team, taken in a statement BEFORE the guarded UPDATE that counts holders: under READ
  COMMITTED each statement takes a new snapshot, so the UPDATE sees every claim of that key
  committed by the lock's previous holder. A lock taken inside the counting statement would
  not: its snapshot is older than the lock. Such a job takes a few statements (the pick, the
  locks, the guarded UPDATE) in the claim's one transaction.
- a limit-1 key is also guarded by the partial unique index ``ux_jobs_running_key`` (one
  running row per limit-1 key), whoever writes the row: a second running row is refused by
  the index itself. The index alone is not enough, because it cannot see a running job of
  the same key submitted with another limit (two templates may share a key); the key lock
  covers every limit, the index stays as the database's own last word.

This relies on READ COMMITTED (PostgreSQL's default, and the store's): under REPEATABLE READ
the whole transaction would read the first statement's snapshot, lock or not.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.states import CLAIMABLE, JobState
from opsconsole.core.store.db import Database, jobs, logs, one_of, workers
from opsconsole.core.store.freezes import frozen_clause
from opsconsole.core.store.jobs import add_event

S = JobState
_CLAIMABLE = [s.value for s in CLAIMABLE]

RUNNING_KEY_INDEX = "ux_jobs_running_key"
"""The partial unique index that allows one running job per limit-1 concurrency key."""
MAX_REFUSED = 32
"""Candidates one PostgreSQL claim may see refused (their key or team filled up by a claim
that committed meanwhile) before it returns None; the pool asks again at its next poll."""
LOCK_WAIT_MS = 5000
"""The longest a PostgreSQL claim waits for a key's or team's lock (or for the claim of a
limit-1 key it meets in the unique index). Claims hold these for milliseconds; one that
holds them longer is stuck (its process stopped mid-claim, say): past this wait the job is
left to it and this claim moves on, instead of every worker's claimer stopping behind it."""
KEY_LOCK = "opsconsole.key:"
TEAM_LOCK = "opsconsole.team:"
"""Prefixes of the advisory lock names (``hashtextextended`` of prefix + key / team)."""


def _team_cap(caps: Mapping[str, int]) -> Any:
    """The running jobs of the candidate's team stay under its cap (teams without one pass).

    The caps come from ``opsconsole.toml`` as a CASE over the candidate's team, so the check
    is part of the claiming statement and counts what is running when it writes (on
    PostgreSQL: under the team's advisory lock, see the module docstring).
    """
    mates = sa.alias(jobs, "mate")
    running = (
        sa.select(sa.func.count())
        .select_from(mates)
        .where(mates.c.state == S.RUNNING.value, mates.c.team == jobs.c.team)
        .scalar_subquery()
    )
    cap = sa.case(
        *((jobs.c.team == team, limit) for team, limit in sorted(caps.items())), else_=None
    )
    return sa.or_(jobs.c.team.is_(None), cap.is_(None), running < cap)


def _ready(now: Any, dialect: str, caps: Mapping[str, int]) -> list[Any]:
    """The conditions of a ready job (``now`` a value or a bind parameter)."""
    running = sa.alias(jobs, "holder")
    holders = (
        sa.select(sa.func.count())
        .select_from(running)
        .where(
            running.c.concurrency_key == jobs.c.concurrency_key,
            running.c.state == S.RUNNING.value,
        )
        .scalar_subquery()
    )
    return [
        one_of(jobs.c.state, _CLAIMABLE),
        jobs.c.run_at <= now,
        sa.or_(jobs.c.concurrency_key.is_(None), holders < jobs.c.concurrency_limit),
        sa.not_(frozen_clause(now, dialect)),
        *([_team_cap(caps)] if caps else []),
    ]


_ORDER = (jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)


def ready_query(
    now: Any, dialect: str, caps: Mapping[str, int], *, skip_locked: bool = False
) -> sa.Select[tuple[str]]:
    """The id of the best ready job: SQLite's claim pick, and ``any_ready``'s probe.

    ``now``: a time, or the bind parameter of a statement built once.
    """
    q = sa.select(jobs.c.id).where(*_ready(now, dialect, caps)).order_by(*_ORDER).limit(1)
    if skip_locked:
        q = q.with_for_update(skip_locked=True)
    return q


def _claimed_values(now: Any, lease_until: Any, worker: Any) -> dict[str, Any]:
    """What a claim writes into the job row: running, a new attempt, a lease."""
    return {
        "state": S.RUNNING.value,
        "attempts": jobs.c.attempts + 1,
        "worker": worker,
        "started_at": now,
        "updated_at": now,
        "finished_at": None,
        "lease_until": lease_until,
        "progress": None,
        "step": None,
        "exit_code": None,
        "result": None,
        "error": None,
        "cancel_requested": False,
        "cancel_reason": None,
        "pid": None,
        "log_lines": jobs.c.log_lines + 1,
    }


_INSERT_LOG = logs.insert()


def _started(
    conn: Connection, rows: list[Mapping[str, Any]], worker_id: str, now: datetime
) -> None:
    """The claim's meta log line and ``started`` event of each claimed row, in the claim's
    transaction (the log lines of a batch in one statement)."""
    if not rows:
        return
    conn.execute(
        _INSERT_LOG,
        [
            {
                "job_id": row["id"],
                "seq": row["log_lines"],
                "ts": now,
                "attempt": row["attempts"],
                "stream": "meta",
                "line": f"attempt {row['attempts']} started on {worker_id}",
            }
            for row in rows
        ],
    )
    for row in rows:
        add_event(
            conn,
            row["id"],
            "started",
            now,
            actor=worker_id,
            state=S.RUNNING.value,
            attempt=row["attempts"],
            message=f"attempt {row['attempts']} on {worker_id}",
        )


def claim(
    db: Database,
    worker_id: str,
    now: datetime,
    lease_s: float,
    *,
    team_caps: Mapping[str, int] | None = None,
) -> Mapping[str, Any] | None:
    """Claim the best ready job for ``worker_id``, or None when nothing is ready.

    ``team_caps``: team -> ``max_concurrent`` (teams without a cap are left out). One write
    transaction, committed before the caller runs the job.
    """
    caps = dict(team_caps or {})
    lease_until = now + timedelta(seconds=lease_s)
    if db.dialect == "postgresql":
        with db.write() as conn:
            row = _claim_pg(
                conn, _pg_statements(tuple(sorted(caps.items()))), worker_id, now, lease_until
            )
            if row is not None:
                _started(conn, [row], worker_id, now)
            return row
    stmt = _one_by_one(db.dialect, tuple(sorted(caps.items())))
    with db.write() as conn:
        row = conn.execute(stmt, _bound(worker_id, now, lease_until)).mappings().first()
        if row is not None:
            _started(conn, [row], worker_id, now)
        return row


def _bound(worker_id: str, now: datetime, lease_until: datetime) -> dict[str, Any]:
    return {"now": now, "lease_until": lease_until, "worker": worker_id}


@functools.lru_cache(maxsize=16)
def _one_by_one(dialect: str, caps: tuple[tuple[str, int], ...]) -> sa.Update:
    """SQLite's claim: the best ready job, picked and updated in one statement (built once)."""
    now, lease_until, worker = _params()
    pick = ready_query(now, dialect, dict(caps)).scalar_subquery()
    return (
        jobs.update()
        .where(jobs.c.id == pick, one_of(jobs.c.state, _CLAIMABLE))
        .values(**_claimed_values(now, lease_until, worker))
        .returning(jobs)
    )


@dataclass(frozen=True)
class _PgClaim:
    """PostgreSQL's claim statements for one set of team caps, built once."""

    first: sa.Select[Any]
    """Pick the ``n`` best ready jobs ``FOR UPDATE SKIP LOCKED`` and claim, in the same
    statement, those that need no guard (no concurrency key, no capped team); returns the
    picks, each with its claimed row or NULLs."""
    lock: sa.Select[Any]
    """Take one advisory transaction lock, by name."""
    wait: sa.Select[Any]
    """Bound this transaction's lock waits (``lock_timeout``, to its end or its savepoint's)."""
    guarded: sa.Update
    """Claim one picked job if it is still ready, counted in this statement's own snapshot."""
    capped: frozenset[str]


def _params() -> tuple[Any, Any, Any]:
    return (
        sa.bindparam("now", type_=jobs.c.run_at.type),
        sa.bindparam("lease_until", type_=jobs.c.lease_until.type),
        sa.bindparam("worker", type_=jobs.c.worker.type),
    )


@functools.lru_cache(maxsize=16)
def _pg_statements(caps: tuple[tuple[str, int], ...]) -> _PgClaim:
    now, lease_until, worker = _params()
    capped = frozenset(team for team, _limit in caps)
    pick = (
        sa.select(jobs.c.id, jobs.c.concurrency_key, jobs.c.team)
        .where(
            *_ready(now, "postgresql", dict(caps)),
            jobs.c.id.not_in(sa.bindparam("refused", expanding=True, type_=jobs.c.id.type)),
        )
        .order_by(*_ORDER)
        .limit(sa.bindparam("n", type_=sa.Integer))
        .with_for_update(skip_locked=True, of=jobs)
        .cte("pick")
        .prefix_with("MATERIALIZED")
    )
    guard = pick.c.concurrency_key.is_not(None)
    if capped:
        guard = sa.or_(guard, pick.c.team.in_(sorted(capped)))
    claimed = (
        jobs.update()
        .where(jobs.c.id == pick.c.id, sa.not_(guard))
        .values(**_claimed_values(now, lease_until, worker))
        .returning(*jobs.c)
        .cte("claimed")
    )
    first = sa.select(
        pick.c.id.label("pick_id"),
        pick.c.concurrency_key.label("pick_key"),
        pick.c.team.label("pick_team"),
        *claimed.c,
    ).select_from(pick.outerjoin(claimed, claimed.c.id == pick.c.id))
    lock = sa.select(
        sa.func.pg_advisory_xact_lock(
            sa.func.hashtextextended(sa.bindparam("name", type_=sa.Text), 0)
        )
    )
    wait = sa.select(
        sa.func.set_config("lock_timeout", sa.bindparam("ms", type_=sa.Text), sa.true())
    )
    now, lease_until, worker = _params()
    guarded = (
        jobs.update()
        .where(
            jobs.c.id == sa.bindparam("pick_id", type_=jobs.c.id.type),
            *_ready(now, "postgresql", dict(caps)),
        )
        .values(**_claimed_values(now, lease_until, worker))
        .returning(jobs)
    )
    return _PgClaim(first, lock, wait, guarded, capped)


class _Refused(Exception):
    """Raised inside a candidate's savepoint when its guarded claim updated no row."""


def _claim_pg(
    conn: Connection, st: _PgClaim, worker_id: str, now: datetime, lease_until: datetime
) -> Mapping[str, Any] | None:
    """Claim on PostgreSQL (see the module docstring); None when nothing can be claimed.

    A job that needs a guard (a concurrency key, a capped team) is claimed in a savepoint:
    the advisory locks for its key and team (in that order), then the guarded UPDATE. When the
    UPDATE finds the key or team full, or the unique index of limit-1 keys refuses a second
    running row, or a lock is not granted within ``LOCK_WAIT_MS``, the savepoint is rolled
    back (which releases its advisory locks, so this transaction never holds two keys' locks
    at once and cannot deadlock with another claimer) and the next candidate is picked, that
    job left out (and, after a lock wait ran out, every job needing that lock: one stuck
    claim costs this one wait, not one per job of its key).

    This is not a retry loop around a race: nothing is tried again. Each refusal is the
    database's final answer for that job (a claim that committed meanwhile holds the place),
    and the loop moves on to a different job, as a claimer that had seen that commit would
    have. The refused job's row stays locked until this claim commits: other claimers skip
    it meanwhile, as they skip any row being claimed.
    """
    params = _bound(worker_id, now, lease_until)
    refused: list[str] = []
    stuck: set[str] = set()  # locks not granted within LOCK_WAIT_MS: not waited for again
    while len(refused) <= MAX_REFUSED:
        got = conn.execute(st.first, {**params, "refused": refused, "n": 1}).mappings().first()
        if got is None:
            return None  # nothing ready, or every ready job is being claimed by another
        if got["id"] is not None:
            return {c.key: got[c.key] for c in jobs.c}
        key, team = got["pick_key"], got["pick_team"]
        names = ([KEY_LOCK + key] if key is not None else []) + (
            [TEAM_LOCK + team] if team in st.capped else []
        )
        if stuck.isdisjoint(names):
            try:
                with conn.begin_nested():
                    conn.execute(st.wait, {"ms": str(LOCK_WAIT_MS)})
                    for name in names:
                        conn.execute(st.lock, {"name": name})
                    row = conn.execute(st.guarded, {**params, "pick_id": got["pick_id"]})
                    out = row.mappings().first()
                    if out is None:
                        raise _Refused
                    return out
            except _Refused:
                pass
            except sa.exc.IntegrityError as exc:
                if _constraint(exc) != RUNNING_KEY_INDEX:
                    raise
            except sa.exc.OperationalError as exc:
                if not _lock_timeout(exc):
                    raise
                stuck.update(names)
        refused.append(got["pick_id"])
    return None


def claim_many(
    db: Database,
    worker_id: str,
    now: datetime,
    lease_s: float,
    n: int,
    *,
    team_caps: Mapping[str, int] | None = None,
) -> list[Mapping[str, Any]]:
    """Claim up to ``n`` ready jobs at once (a pool with ``n`` free slots), best first.

    Never more than ``n``: on PostgreSQL the picks are one ``LIMIT n`` CTE evaluated once
    (see the module docstring). Fewer than ready may come back when a key or team filled up
    meanwhile: the caller asks again, as after any claim. One write transaction, committed
    before the caller runs the jobs.
    """
    if n < 1:
        return []
    caps = dict(team_caps or {})
    lease_until = now + timedelta(seconds=lease_s)
    if db.dialect == "postgresql":
        st = _pg_statements(tuple(sorted(caps.items())))
        with db.write() as conn:
            rows = _claim_many_pg(conn, st, worker_id, now, lease_until, n)
            _started(conn, rows, worker_id, now)
            return rows
    # SQLite: one writer, so one job per statement costs nothing; a single ``id IN (SELECT
    # ... LIMIT n)`` would count a key's holders once for the whole batch instead. That
    # read only bounds how many to try (under the write lock nothing else claims): a batch
    # larger than the backlog does not end with an UPDATE that finds nothing.
    key = tuple(sorted(caps.items()))
    stmt = _one_by_one(db.dialect, key)
    out: list[Mapping[str, Any]] = []
    with db.write() as conn:
        if n > 1:
            n = len(conn.execute(_probe_many(db.dialect, key), {"now": now, "n": n}).all())
        while len(out) < n:
            row = conn.execute(stmt, _bound(worker_id, now, lease_until)).mappings().first()
            if row is None:
                break
            out.append(row)
        _started(conn, out, worker_id, now)
    return out


def _claim_many_pg(
    conn: Connection, st: _PgClaim, worker_id: str, now: datetime, lease_until: datetime, n: int
) -> list[Mapping[str, Any]]:
    """One pick of ``n``; the guarded picks claimed under their locks, one savepoint each.

    Several picks may need several keys' and teams' locks, held until commit: they are
    taken all at once, before any guarded UPDATE, in one global order (by name: every key
    before every team, as ``claim`` takes them), so two claimers never wait on each other in
    a circle. A guarded pick found full, or refused by the unique index, is left queued;
    when a lock is not granted within ``LOCK_WAIT_MS`` every guarded pick is left queued.
    """
    params = _bound(worker_id, now, lease_until)
    picks = conn.execute(st.first, {**params, "refused": [], "n": n}).mappings().all()
    out: list[Mapping[str, Any]] = [
        {c.key: got[c.key] for c in jobs.c} for got in picks if got["id"] is not None
    ]
    guarded = [got for got in picks if got["id"] is None]
    if guarded:
        try:
            with conn.begin_nested():
                out += _claim_guarded(conn, st, params, guarded)
        except sa.exc.OperationalError as exc:
            if not _lock_timeout(exc):
                raise  # else: a stuck claim holds one of the locks; the unguarded stay
    rank = {got["pick_id"]: i for i, got in enumerate(picks)}
    return sorted(out, key=lambda row: rank[row["id"]])  # best first, as picked


def _claim_guarded(
    conn: Connection, st: _PgClaim, params: dict[str, Any], guarded: list[RowMapping]
) -> list[Mapping[str, Any]]:
    """``claim_many``'s guarded picks: every lock they need, then each UPDATE in a savepoint."""
    conn.execute(st.wait, {"ms": str(LOCK_WAIT_MS)})
    names = {KEY_LOCK + g["pick_key"] for g in guarded if g["pick_key"] is not None}
    names |= {TEAM_LOCK + g["pick_team"] for g in guarded if g["pick_team"] in st.capped}
    for name in sorted(names):
        conn.execute(st.lock, {"name": name})
    out: list[Mapping[str, Any]] = []
    for got in guarded:
        try:
            with conn.begin_nested():
                row = conn.execute(st.guarded, {**params, "pick_id": got["pick_id"]})
                claimed = row.mappings().first()
        except sa.exc.IntegrityError as exc:
            if _constraint(exc) != RUNNING_KEY_INDEX:
                raise
            continue
        if claimed is not None:
            out.append(claimed)
    return out


def _lock_timeout(exc: sa.exc.OperationalError) -> bool:
    """Did PostgreSQL give up waiting for a lock (``lock_timeout``, SQLSTATE 55P03)?"""
    return getattr(exc.orig, "sqlstate", None) == "55P03"


def _constraint(exc: sa.exc.IntegrityError) -> str | None:
    """The name of the constraint or unique index a PostgreSQL write violated."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def next_run_at(db: Database) -> datetime | None:
    """When the earliest not-yet-due claimable job becomes due (to arm a wake-up)."""
    with db.read() as conn:
        return conn.execute(
            sa.select(sa.func.min(jobs.c.run_at)).where(one_of(jobs.c.state, _CLAIMABLE))
        ).scalar()


def any_ready(db: Database, now: datetime, *, team_caps: Mapping[str, int] | None = None) -> bool:
    """Is a job ready to claim? A read, so an idle pool's polls never take the write lock."""
    q = _probe(db.dialect, tuple(sorted((team_caps or {}).items())))
    with db.read() as conn:
        return conn.execute(q, {"now": now}).first() is not None


@functools.lru_cache(maxsize=16)
def _probe(dialect: str, caps: tuple[tuple[str, int], ...]) -> sa.Select[tuple[str]]:
    return ready_query(sa.bindparam("now", type_=jobs.c.run_at.type), dialect, dict(caps))


@functools.lru_cache(maxsize=16)
def _probe_many(dialect: str, caps: tuple[tuple[str, int], ...]) -> sa.Select[tuple[str]]:
    """The ids of up to ``n`` ready jobs (each counted alone against its key and team)."""
    now = sa.bindparam("now", type_=jobs.c.run_at.type)
    return (
        sa.select(jobs.c.id)
        .where(*_ready(now, dialect, dict(caps)))
        .order_by(*_ORDER)
        .limit(sa.bindparam("n", type_=sa.Integer))
    )


# -- workers and heartbeats -----------------------------------------------------------


def register_worker(
    db: Database,
    worker_id: str,
    *,
    host: str,
    pid: int,
    slots: int,
    now: datetime,
    version: str,
    supervision: str | None = None,
    host_id: str | None = None,
) -> None:
    """Add this worker's row; ``host_id`` names its machine (``core/hostid.py``)."""
    with db.write() as conn:
        conn.execute(
            workers.insert().values(
                id=worker_id,
                host=host,
                host_id=host_id,
                pid=pid,
                slots=slots,
                desired_slots=slots,
                busy=0,
                state="running",
                started_at=now,
                heartbeat_at=now,
                version=version,
                supervision=supervision,
            )
        )


@dataclass(frozen=True)
class HeartbeatReply:
    desired_slots: int
    cancel: list[tuple[str, int, str]]
    """(job, attempt, reason) of the runs an operator asked to cancel."""
    lost: list[tuple[str, int]]
    """(job, attempt) pairs this worker runs that the store no longer gives it: stop them."""
    store_now: datetime | None = None
    """The database server's clock when it wrote the heartbeat (None on SQLite, whose clock
    is this machine's): the pool corrects its own clock by the difference."""


def heartbeat(
    db: Database,
    worker_id: str,
    now: datetime,
    *,
    lease_s: float,
    slots: int,
    busy: int,
    state: str,
    running: list[tuple[str, int]],
    problem: str | None = None,
) -> HeartbeatReply:
    """Renew this worker's row and the leases of the runs it holds; report cancels and losses.

    Only the runs in ``running`` are renewed: a row this worker owns but no longer holds (a
    run whose end could not be written, a slot that died) must let its lease run out, so
    the reaper settles it instead of it staying ``running`` forever.
    """
    held = {job for job, _attempt in running}
    with db.write() as conn:
        store_now = _store_now(conn, db.dialect)
        desired = conn.execute(
            workers.update()
            .where(workers.c.id == worker_id)
            .values(heartbeat_at=now, slots=slots, busy=busy, state=state, problem=problem)
            .returning(workers.c.desired_slots)
        ).scalar()
        if held:
            conn.execute(
                jobs.update()
                .where(
                    jobs.c.worker == worker_id,
                    jobs.c.state == S.RUNNING.value,
                    jobs.c.id.in_(sorted(held)),
                )
                .values(lease_until=now + timedelta(seconds=lease_s))
            )
        owned = {
            (r.id, r.attempts): (bool(r.cancel_requested), r.cancel_reason or "cancelled")
            for r in conn.execute(
                sa.select(
                    jobs.c.id, jobs.c.attempts, jobs.c.cancel_requested, jobs.c.cancel_reason
                ).where(jobs.c.worker == worker_id, jobs.c.state == S.RUNNING.value)
            )
        }
    cancel = [(job, att, why) for (job, att), (flag, why) in owned.items() if flag]
    lost = [key for key in running if key not in owned]
    return HeartbeatReply(desired if desired is not None else slots, cancel, lost, store_now)


_STORE_NOW = sa.select(sa.func.statement_timestamp())


def _store_now(conn: sa.Connection, dialect: str) -> datetime | None:
    """The database server's wall clock (not the transaction's start), or None on SQLite."""
    if dialect != "postgresql":
        return None
    value = conn.execute(_STORE_NOW).scalar_one()
    assert isinstance(value, datetime)
    return value


def store_now(db: Database) -> datetime | None:
    """The database server's clock now (None on SQLite): ``health`` compares it to ours."""
    if db.dialect != "postgresql":
        return None
    with db.read() as conn:
        return _store_now(conn, db.dialect)


def cancel_requests(db: Database, worker_id: str) -> list[tuple[str, int, str]]:
    with db.read() as conn:
        return [
            (r.id, r.attempts, r.cancel_reason or "cancelled")
            for r in conn.execute(
                sa.select(jobs.c.id, jobs.c.attempts, jobs.c.cancel_reason).where(
                    jobs.c.worker == worker_id,
                    jobs.c.state == S.RUNNING.value,
                    jobs.c.cancel_requested.is_(True),
                )
            )
        ]


def set_worker_state(db: Database, worker_id: str, state: str, now: datetime) -> None:
    with db.write() as conn:
        conn.execute(
            workers.update()
            .where(workers.c.id == worker_id)
            .values(state=state, heartbeat_at=now, busy=0 if state == "stopped" else workers.c.busy)
        )


def resize_worker(db: Database, worker_id: str, slots: int) -> RowMapping | None:
    with db.write() as conn:
        return (
            conn.execute(
                workers.update()
                .where(workers.c.id == worker_id, workers.c.state.in_(["running", "draining"]))
                .values(desired_slots=slots)
                .returning(workers)
            )
            .mappings()
            .first()
        )


def list_workers(db: Database, *, include_stopped: bool = False) -> list[RowMapping]:
    q = sa.select(workers).order_by(workers.c.started_at.desc())
    if not include_stopped:
        q = q.where(workers.c.state.in_(["running", "draining"]))
    with db.read() as conn:
        return list(conn.execute(q.limit(500)).mappings())


# -- the reaper -------------------------------------------------------------------------


def orphaned_jobs(db: Database, now: datetime, dead_workers: list[str]) -> list[RowMapping]:
    """Running jobs whose lease ran out, or whose worker is known to be gone; each with the
    ``host_id`` of its worker's machine (None when the worker row is gone or predates it)."""
    cond = jobs.c.lease_until < now
    if dead_workers:
        cond = sa.or_(cond, jobs.c.worker.in_(dead_workers))
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(
                    workers.c.host_id,
                    jobs.c.id,
                    jobs.c.template,
                    jobs.c.attempts,
                    jobs.c.worker,
                    jobs.c.on_interrupt,
                    jobs.c.interruptions,
                    jobs.c.pid,
                    jobs.c.cancel_requested,
                    jobs.c.cancel_reason,
                )
                .select_from(jobs.outerjoin(workers, workers.c.id == jobs.c.worker))
                .where(jobs.c.state == S.RUNNING.value, cond)
                .order_by(jobs.c.worker, jobs.c.started_at, *_ORDER)
                .limit(500)
            ).mappings()
        )


def mark_workers_dead(db: Database, problems: dict[str, str], now: datetime) -> None:
    """Record workers as dead, each with what it was doing when it vanished."""
    if not problems:
        return
    with db.write() as conn:
        for worker_id, problem in problems.items():
            conn.execute(
                workers.update()
                .where(workers.c.id == worker_id, workers.c.state != "stopped")
                .values(state="dead", busy=0, problem=problem)
            )


def stale_workers(db: Database, older_than: datetime) -> list[RowMapping]:
    """Workers that say they run but have not heartbeated since ``older_than``."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(workers).where(
                    workers.c.state.in_(["running", "draining"]),
                    workers.c.heartbeat_at < older_than,
                )
            ).mappings()
        )


def workers_on_host(db: Database, host_id: str) -> list[RowMapping]:
    """The workers of one machine that say they run (the reaper checks their pids)."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(workers).where(
                    workers.c.host_id == host_id, workers.c.state.in_(["running", "draining"])
                )
            ).mappings()
        )


def live_hosts(db: Database, fresh_since: datetime) -> set[str]:
    """Machines with at least one worker that heartbeated since ``fresh_since``.

    A job on another machine is that machine's to settle while one of its workers lives:
    only there can its process group be made sure gone. A whole machine is dead when none
    of its workers heartbeats any more.
    """
    with db.read() as conn:
        return set(
            conn.execute(
                sa.select(workers.c.host_id)
                .where(
                    workers.c.state.in_(["running", "draining"]),
                    workers.c.heartbeat_at >= fresh_since,
                    workers.c.host_id.is_not(None),
                )
                .distinct()
            ).scalars()
        )


def held_leases(db: Database, now: datetime) -> list[RowMapping]:
    """Running jobs whose lease has not run out (a schema upgrade under them is refused)."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(jobs.c.id, jobs.c.worker, jobs.c.lease_until)
                .where(jobs.c.state == S.RUNNING.value, jobs.c.lease_until >= now)
                .order_by(jobs.c.lease_until.desc())
                .limit(20)
            ).mappings()
        )


WORKER_ROWS_KEPT = timedelta(days=7)
"""How long the row of a stopped or dead worker is kept (for `workers list --all`)."""


def stopped_workers(older_than: datetime) -> list[Any]:
    """The rows ``prune_workers`` deletes: workers that stopped or died before ``older_than``."""
    return [workers.c.state.in_(["stopped", "dead"]), workers.c.heartbeat_at < older_than]


def prune_workers(db: Database, older_than: datetime, *, batch: int = 500) -> int:
    """Delete rows of workers that stopped or died before ``older_than``; returns how many."""
    with db.write() as conn:
        ids = (
            conn.execute(sa.select(workers.c.id).where(*stopped_workers(older_than)).limit(batch))
            .scalars()
            .all()
        )
        if ids:
            conn.execute(workers.delete().where(workers.c.id.in_(ids)))
        return len(ids)
