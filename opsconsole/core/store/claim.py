"""Claims, leases, heartbeats, worker rows and the reaper's queries.

A claim is one statement: pick the best ready job (priority, then age; run time reached;
concurrency key under its limit; no active freeze matching it; its team under the team's
``max_concurrent``) and mark it running with a new attempt number, which fences every later
write of that attempt. SQLite serialises it with ``BEGIN IMMEDIATE``, so the running counts
the statement reads cannot change before it writes (two workers never both take a team's
last free place); PostgreSQL skips rows other claimers hold (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.states import CLAIMABLE, JobState
from opsconsole.core.store.db import Database, jobs, logs, workers
from opsconsole.core.store.freezes import frozen_clause
from opsconsole.core.store.jobs import add_event

S = JobState
_CLAIMABLE = [s.value for s in CLAIMABLE]


def _team_cap(caps: Mapping[str, int]) -> Any:
    """The running jobs of the candidate's team stay under its cap (teams without one pass).

    The caps come from ``opsconsole.toml`` as a CASE over the candidate's team, so the check
    is part of the claim's one statement and counts what is running when it writes.
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


def ready_query(
    now: datetime, dialect: str, caps: Mapping[str, int], *, skip_locked: bool = False
) -> sa.Select[tuple[str]]:
    """The id of the best ready job: the claim's pick, and ``any_ready``'s probe."""
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
    q = (
        sa.select(jobs.c.id)
        .where(
            jobs.c.state.in_(_CLAIMABLE),
            jobs.c.run_at <= now,
            sa.or_(jobs.c.concurrency_key.is_(None), holders < jobs.c.concurrency_limit),
            sa.not_(frozen_clause(now, dialect)),
            *([_team_cap(caps)] if caps else []),
        )
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
        .limit(1)
    )
    if skip_locked:
        q = q.with_for_update(skip_locked=True)
    return q


def claim(
    db: Database,
    worker_id: str,
    now: datetime,
    lease_s: float,
    *,
    team_caps: Mapping[str, int] | None = None,
) -> RowMapping | None:
    """Claim the best ready job for ``worker_id``, or None when nothing is ready.

    ``team_caps``: team -> ``max_concurrent`` (teams without a cap are left out).
    """
    pick = ready_query(
        now, db.dialect, team_caps or {}, skip_locked=db.dialect == "postgresql"
    ).scalar_subquery()
    stmt = (
        jobs.update()
        .where(jobs.c.id == pick, jobs.c.state.in_(_CLAIMABLE))
        .values(
            state=S.RUNNING.value,
            attempts=jobs.c.attempts + 1,
            worker=worker_id,
            started_at=now,
            updated_at=now,
            finished_at=None,
            lease_until=now + timedelta(seconds=lease_s),
            progress=None,
            step=None,
            exit_code=None,
            result=None,
            error=None,
            cancel_requested=False,
            cancel_reason=None,
            pid=None,
            log_lines=jobs.c.log_lines + 1,
        )
        .returning(jobs)
    )
    with db.write() as conn:
        row = conn.execute(stmt).mappings().first()
        if row is None:
            return None
        conn.execute(
            logs.insert().values(
                job_id=row["id"],
                seq=row["log_lines"],
                ts=now,
                attempt=row["attempts"],
                stream="meta",
                line=f"attempt {row['attempts']} started on {worker_id}",
            )
        )
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
        return row


def next_run_at(db: Database) -> datetime | None:
    """When the earliest not-yet-due claimable job becomes due (to arm a wake-up)."""
    with db.read() as conn:
        return conn.execute(
            sa.select(sa.func.min(jobs.c.run_at)).where(jobs.c.state.in_(_CLAIMABLE))
        ).scalar()


def any_ready(db: Database, now: datetime, *, team_caps: Mapping[str, int] | None = None) -> bool:
    """Is a job ready to claim? A read, so an idle pool's polls never take the write lock."""
    q = ready_query(now, db.dialect, team_caps or {})
    with db.read() as conn:
        return conn.execute(q).first() is not None


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
                .order_by(jobs.c.worker, jobs.c.started_at, jobs.c.id)
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
