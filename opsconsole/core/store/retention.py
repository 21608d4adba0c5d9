"""Retention deletes: the only place that removes finished jobs, old log lines and old ledger rows.

Each call is one short write transaction over at most one batch, so a worker's writes
interleave with a long prune instead of waiting behind it. Every candidate is chosen by an
index (``ix_jobs_history``, ``ix_jobs_template``, primary keys) and checked again inside
the write lock: a job retried, depended on or made an instance's last job since it was
chosen is not deleted. Audit events (``job_events``) are never deleted here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsconsole.core.states import FINAL, LIVE
from opsconsole.core.store.claim import WORKER_ROWS_KEPT, prune_workers, stopped_workers
from opsconsole.core.store.db import (
    Database,
    approvals,
    check_results,
    checks,
    deps,
    host_tasks,
    instances,
    jobs,
    logs,
    meta,
    plans,
    reviews,
    schedule_fires,
    schedules,
    workers,
)
from opsconsole.core.store.jobs import NO_JOB, add_event

DELIVERY_TEMPLATE = "webhook-delivery"
"""The template of webhook delivery jobs (``engine/handlers/webhook.py``): kept shorter."""
DELIVERIES_KEPT = timedelta(days=7)
"""How long finished delivery jobs are kept at most (less when ``retention_jobs`` is less)."""
RESULTS_KEPT = 1000
"""Results kept per check whatever their age: the Checks view's sparklines read the newest."""
BATCH = 500
"""Rows deleted per transaction (ledger rows, check results, workers)."""
JOB_BATCH = 100
"""Jobs deleted per transaction (each takes its dependency edges, host tasks and plans)."""
LOG_CHUNK = 5000
"""Log lines deleted per transaction: one job may hold up to ``log_cap`` of them."""
LOGS_FROM_KEY = "retention.logs_from"
"""store_meta: jobs that finished before this time have no log lines left to prune."""
LOGS_SLACK = timedelta(days=1)
"""How far behind the last complete log prune the next one looks again (clock skew)."""

KINDS = ("jobs", "deliveries", "log_lines", "fires", "check_results", "workers")
"""What a prune counts, in the order it prunes them."""

_FINAL = [s.value for s in FINAL]
_LIVE = [s.value for s in LIVE]


@dataclass(frozen=True)
class Cutoffs:
    """What is old enough to go; None keeps that kind for ever."""

    jobs: datetime | None
    """Finished jobs that finished before this (not delivery jobs)."""
    logs: datetime | None
    """Log lines of jobs that finished before this."""
    deliveries: datetime
    """Finished webhook delivery jobs created before this."""
    now: datetime

    @property
    def workers(self) -> datetime:
        return self.now - WORKER_ROWS_KEPT


@dataclass
class Pruned:
    """Rows removed (or, in a dry run, that would be) per kind, and plan files freed."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    files: list[str] = field(default_factory=list)

    def add(self, other: Pruned) -> None:
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        self.files.extend(other.files)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _final() -> Any:
    """The job is finished; written so that no planner serves it from ``ix_jobs_claim``
    (by state, that index holds every finished job ever): the time range on
    ``ix_jobs_history`` (or ``ix_jobs_template``) must choose the rows."""
    return sa.func.lower(jobs.c.state).in_(_FINAL)


def prunable(before: datetime, *, delivery: bool) -> list[Any]:
    """The conditions under which a job may be deleted: finished before ``before``, and
    nothing still needs it (a live dependent, an instance/schedule/check pointing at it as
    its last job, a break-glass review nobody acknowledged yet)."""
    dependent = jobs.alias("dependent")
    live_dependent = (
        sa.select(sa.literal(1))
        .select_from(deps.join(dependent, dependent.c.id == deps.c.job_id))
        .where(deps.c.depends_on == jobs.c.id, dependent.c.state.in_(_LIVE))
    )
    open_review = sa.select(sa.literal(1)).where(
        reviews.c.job_id == jobs.c.id, reviews.c.acked_at.is_(None)
    )
    cond: list[Any] = [
        _final(),
        jobs.c.finished_at < before,
        ~sa.exists(live_dependent),
        ~sa.exists(open_review),
    ]
    for table in (instances, schedules, checks):
        cond.append(
            jobs.c.id.not_in(sa.select(table.c.last_job).where(table.c.last_job.is_not(None)))
        )
    if delivery:
        # ix_jobs_template (template, created_at): delivery jobs only, oldest first
        cond += [jobs.c.template == DELIVERY_TEMPLATE, jobs.c.created_at < before]
    else:
        cond.append(jobs.c.template != DELIVERY_TEMPLATE)
    return cond


def _candidates(conn: Connection, before: datetime, *, delivery: bool, limit: int) -> list[str]:
    order = jobs.c.created_at if delivery else jobs.c.finished_at
    query = sa.select(jobs.c.id).where(*prunable(before, delivery=delivery))
    return list(conn.execute(query.order_by(order).limit(limit)).scalars())


def count(db: Database, cut: Cutoffs) -> Pruned:
    """What a prune at ``cut`` would remove now, per kind; removes nothing (a dry run)."""
    out = Pruned()
    with db.read() as conn:
        for kind, before, delivery in (
            ("jobs", cut.jobs, False),
            ("deliveries", cut.deliveries, True),
        ):
            if before is None:
                continue
            ids = sa.select(jobs.c.id).where(*prunable(before, delivery=delivery)).subquery()
            out.counts[kind] = conn.execute(
                sa.select(sa.func.count()).select_from(ids)
            ).scalar_one()
            out.counts["log_lines"] += conn.execute(
                sa.select(sa.func.count()).where(logs.c.job_id.in_(sa.select(ids.c.id)))
            ).scalar_one()
        if cut.logs is not None:
            # jobs that stay, but whose lines are past retention_logs
            stay = sa.select(jobs.c.id).where(
                *logs_due(conn, cut.logs), ~sa.and_(*prunable(cut.deliveries, delivery=True))
            )
            if cut.jobs is not None:
                stay = stay.where(~sa.and_(*prunable(cut.jobs, delivery=False)))
            out.counts["log_lines"] += conn.execute(
                sa.select(sa.func.count()).where(logs.c.job_id.in_(stay))
            ).scalar_one()
        if cut.jobs is not None:
            for name in _names(conn, schedule_fires.c.schedule):
                out.counts["fires"] += conn.execute(
                    sa.select(sa.func.count()).where(*_fires_cond(name, cut.jobs))
                ).scalar_one()
        for name in _names(conn, check_results.c.check):
            out.counts["check_results"] += len(_old_results(conn, name, cut.jobs, limit=None))
        out.counts["workers"] = conn.execute(
            sa.select(sa.func.count()).select_from(workers).where(*stopped_workers(cut.workers))
        ).scalar_one()
    return out


# -- jobs and their logs ------------------------------------------------------------------


def prune_jobs(db: Database, cut: Cutoffs, *, delivery: bool) -> Pruned:
    """Delete up to ``JOB_BATCH`` prunable jobs (their log lines first, in chunks), with
    their dependency edges, host tasks, approvals, acknowledged reviews and plan rows.
    Returns what went; an empty result means none is left."""
    out = Pruned()
    before = cut.deliveries if delivery else cut.jobs
    if before is None:
        return out
    with db.read() as conn:
        ids = _candidates(conn, before, delivery=delivery, limit=JOB_BATCH)
    if not ids:
        return out
    final_cond = [jobs.c.state.in_(_FINAL), jobs.c.finished_at < before]
    for job_id in ids:
        out.counts["log_lines"] += _drop_logs(db, job_id, final_cond)
    with db.write() as conn:
        # again inside the write lock: a retry or a new dependent since the read keeps it
        ids = list(
            conn.execute(
                sa.select(jobs.c.id).where(jobs.c.id.in_(ids), *prunable(before, delivery=delivery))
            ).scalars()
        )
        if not ids:
            return out
        out.files = list(
            conn.execute(sa.select(plans.c.file).where(plans.c.job_id.in_(ids))).scalars()
        )
        out.counts["log_lines"] += conn.execute(
            logs.delete().where(logs.c.job_id.in_(ids))
        ).rowcount
        conn.execute(deps.delete().where(deps.c.job_id.in_(ids)))
        conn.execute(deps.delete().where(deps.c.depends_on.in_(ids)))
        conn.execute(host_tasks.delete().where(host_tasks.c.job_id.in_(ids)))
        conn.execute(approvals.delete().where(approvals.c.job_id.in_(ids)))
        conn.execute(reviews.delete().where(reviews.c.job_id.in_(ids)))
        conn.execute(plans.delete().where(plans.c.job_id.in_(ids)))
        removed = conn.execute(jobs.delete().where(jobs.c.id.in_(ids))).rowcount
        out.counts["deliveries" if delivery else "jobs"] = removed
    return out


def _drop_logs(db: Database, job_id: str, still: list[Any]) -> int:
    """Delete one job's log lines, ``LOG_CHUNK`` per transaction, while ``still`` holds."""
    dropped = 0
    while True:
        with db.write() as conn:
            if (
                conn.execute(sa.select(jobs.c.id).where(jobs.c.id == job_id, *still)).first()
                is None
            ):
                return dropped
            top = conn.execute(
                sa.select(logs.c.seq)
                .where(logs.c.job_id == job_id)
                .order_by(logs.c.seq)
                .offset(LOG_CHUNK - 1)
                .limit(1)
            ).scalar()
            cond = [logs.c.job_id == job_id]
            if top is not None:
                cond.append(logs.c.seq <= top)
            n = conn.execute(logs.delete().where(*cond)).rowcount
        dropped += n
        if top is None or n == 0:
            return dropped


def _logs_from(conn: Connection) -> datetime | None:
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == LOGS_FROM_KEY)).scalar()
    return datetime.fromisoformat(value) if value else None


def logs_due(conn: Connection, before: datetime) -> list[Any]:
    """Finished jobs past ``before`` that still have log lines, from where the last complete
    log prune stopped (so a pass does not walk every job it already emptied)."""
    cond = [
        _final(),
        jobs.c.finished_at < before,
        sa.exists(sa.select(sa.literal(1)).where(logs.c.job_id == jobs.c.id)),
    ]
    start = _logs_from(conn)
    if start is not None:
        cond.append(jobs.c.finished_at >= start - LOGS_SLACK)
    return cond


def prune_logs(db: Database, cut: Cutoffs) -> Pruned:
    """Delete the log lines of up to ``JOB_BATCH`` jobs past ``retention_logs`` (the jobs
    stay); when none is left, remember where this pass ended."""
    out = Pruned()
    if cut.logs is None:
        return out
    with db.read() as conn:
        ids = list(
            conn.execute(
                sa.select(jobs.c.id)
                .where(*logs_due(conn, cut.logs))
                .order_by(jobs.c.finished_at)
                .limit(JOB_BATCH)
            ).scalars()
        )
    still = [jobs.c.state.in_(_FINAL), jobs.c.finished_at < cut.logs]
    for job_id in ids:
        out.counts["log_lines"] += _drop_logs(db, job_id, still)
    if not ids:
        with db.write() as conn:
            value = cut.logs.isoformat()
            if (
                conn.execute(
                    meta.update().where(meta.c.key == LOGS_FROM_KEY).values(value=value)
                ).rowcount
                == 0
            ):
                conn.execute(meta.insert().values(key=LOGS_FROM_KEY, value=value))
    return out


# -- ledger rows, check results, workers --------------------------------------------------


def _names(conn: Connection, column: sa.Column[Any]) -> Iterator[str]:
    """The distinct values of an indexed column, one index seek each (no table scan)."""
    table = column.table
    last: str | None = None
    while True:
        query = sa.select(sa.func.min(column))
        if last is not None:
            query = query.where(column > last)
        last = conn.execute(query.select_from(table)).scalar()
        if last is None:
            return
        yield last


def _fires_cond(name: str, before: datetime) -> list[Any]:
    return [schedule_fires.c.schedule == name, schedule_fires.c.fire_at < before]


def prune_fires(db: Database, cut: Cutoffs) -> Pruned:
    """Delete up to ``BATCH`` ledger rows per schedule older than ``retention_jobs``."""
    out = Pruned()
    if cut.jobs is None:
        return out
    with db.read() as conn:
        names = list(_names(conn, schedule_fires.c.schedule))
    for name in names:
        with db.write() as conn:
            times = list(
                conn.execute(
                    sa.select(schedule_fires.c.fire_at)
                    .where(*_fires_cond(name, cut.jobs))
                    .order_by(schedule_fires.c.fire_at)
                    .limit(BATCH)
                ).scalars()
            )
            if times:
                out.counts["fires"] += conn.execute(
                    schedule_fires.delete().where(
                        schedule_fires.c.schedule == name, schedule_fires.c.fire_at <= times[-1]
                    )
                ).rowcount
    return out


def _old_results(
    conn: Connection, name: str, before: datetime | None, *, limit: int | None
) -> list[int]:
    """Ids of one check's results beyond the newest ``RESULTS_KEPT``, or older than
    ``before`` (oldest first; ids grow with time)."""
    newest_dropped = conn.execute(
        sa.select(check_results.c.id)
        .where(check_results.c.check == name)
        .order_by(check_results.c.id.desc())
        .offset(RESULTS_KEPT)
        .limit(1)
    ).scalar()
    rows = conn.execute(
        sa.select(check_results.c.id, check_results.c.at)
        .where(check_results.c.check == name)
        .order_by(check_results.c.id)
        .limit(limit)
    )
    out: list[int] = []
    for row in rows:
        beyond_cap = newest_dropped is not None and row.id <= newest_dropped
        too_old = before is not None and row.at < before
        if not (beyond_cap or too_old):
            break
        out.append(row.id)
    return out


def prune_results(db: Database, cut: Cutoffs) -> Pruned:
    """Delete up to ``BATCH`` results per check past the cap or ``retention_jobs``."""
    out = Pruned()
    with db.read() as conn:
        names = list(_names(conn, check_results.c.check))
    for name in names:
        with db.write() as conn:
            ids = _old_results(conn, name, cut.jobs, limit=BATCH)
            if ids:
                out.counts["check_results"] += conn.execute(
                    check_results.delete().where(check_results.c.id.in_(ids))
                ).rowcount
    return out


def prune_worker_rows(db: Database, cut: Cutoffs) -> Pruned:
    """Rows of workers stopped or dead long ago: the reaper's own prune, reused."""
    out = Pruned()
    out.counts["workers"] = prune_workers(db, cut.workers, batch=BATCH)
    return out


# -- what a prune must not cut across -------------------------------------------------------


def oldest_running(db: Database) -> tuple[str, datetime] | None:
    """The running job that started first, and when (ix_jobs_claim serves the state)."""
    with db.read() as conn:
        row = conn.execute(
            sa.select(jobs.c.id, jobs.c.started_at)
            .where(jobs.c.state == "running", jobs.c.started_at.is_not(None))
            .order_by(jobs.c.started_at)
            .limit(1)
        ).first()
    return None if row is None else (row.id, row.started_at)


def record(db: Database, pruned: Pruned, *, actor: str, now: datetime, message: str) -> None:
    """The audit fact of a prune: who removed how much (an event about no job)."""
    with db.write() as conn:
        add_event(
            conn,
            NO_JOB,
            "pruned",
            now,
            actor=actor,
            message=message,
            data={k: n for k, n in pruned.counts.items() if n},
        )


NEXT_RUN_KEY = "maintenance.next_at"
"""store_meta: when the next periodic prune is due, whichever process runs it."""


def take_turn(db: Database, now: datetime, next_at: datetime) -> bool:
    """Claim the periodic prune due at ``now`` for this process, moving the next one to
    ``next_at``; False when it is not due or another process claimed it first.

    A guarded UPDATE (``WHERE value = :seen``) on one store_meta row, so that however many
    workers share the store, one prunes per period.
    """
    try:
        with db.write() as conn:
            seen = conn.execute(sa.select(meta.c.value).where(meta.c.key == NEXT_RUN_KEY)).scalar()
            if seen is not None and now < _when(seen):
                return False
            value = next_at.isoformat()
            if seen is None:
                conn.execute(meta.insert().values(key=NEXT_RUN_KEY, value=value))
                return True
            moved = conn.execute(
                meta.update()
                .where(meta.c.key == NEXT_RUN_KEY, meta.c.value == seen)
                .values(value=value)
            ).rowcount
            return moved == 1
    except sa.exc.IntegrityError:  # another process inserted the row first
        return False


def _when(value: str) -> datetime:
    """A stored time; an unreadable one counts as long past (the turn is taken and rewrites
    it), so a damaged row can never stop pruning for good."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def set_next_run(db: Database, at: datetime) -> None:
    """Bring the next periodic prune forward (an unfinished one continues sooner)."""
    with db.write() as conn:
        conn.execute(meta.update().where(meta.c.key == NEXT_RUN_KEY).values(value=at.isoformat()))


LAST_RUN_KEY = "maintenance.last"
"""store_meta: the last periodic prune, as JSON (when, what, whether it finished)."""


def set_last_run(db: Database, value: dict[str, Any]) -> None:
    """Remember the last periodic prune for ``health``."""
    text = json.dumps(value, sort_keys=True)
    with db.write() as conn:
        if (
            conn.execute(
                meta.update().where(meta.c.key == LAST_RUN_KEY).values(value=text)
            ).rowcount
            == 0
        ):
            conn.execute(meta.insert().values(key=LAST_RUN_KEY, value=text))


def last_run(db: Database) -> dict[str, Any] | None:
    with db.read() as conn:
        text = conn.execute(sa.select(meta.c.value).where(meta.c.key == LAST_RUN_KEY)).scalar()
    return json.loads(text) if text else None
