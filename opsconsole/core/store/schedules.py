"""Schedules and their ledger in the store: the only place that writes either.

A fire is one write transaction: the guarded move of the schedule's cursor
(``WHERE next_fire_at = :old``), the ledger rows (primary key ``(schedule, fire_at)``) and the
jobs it submits. A second process ticking the same schedule at the same time finds the cursor
moved and changes nothing; were the guard ever bypassed, the ledger's key refuses the repeat.
Events about a schedule are about no job: ``job_id = NO_JOB`` and the schedule in ``data``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.errors import Conflict, InvalidTransition, NotFound
from opsconsole.core.states import LIVE, JobState
from opsconsole.core.store.db import Database, jobs, schedule_fires, schedules
from opsconsole.core.store.jobs import NO_JOB, add_event, insert_in

S = JobState
FIRED, MISSED, SKIPPED = "fired", "missed", "skipped"
PAUSED = "paused"
"""The reason of a fire time missed while its schedule was paused."""
LEDGER_LIMIT = 50
"""Ledger rows a ``show`` lists by default, newest first."""


@dataclass
class Fire:
    """One fire time and what to do with it: record it ``missed``/``skipped``, or submit
    ``job`` (a prepared job row) and record it ``fired`` unless the overlap policy says not."""

    fire_at: datetime
    status: str
    reason: str = ""
    job: dict[str, Any] | None = None
    message: str = ""
    """The job's ``submitted`` event message: which schedule and fire time."""
    result: dict[str, Any] = field(default_factory=dict)
    """Filled in by ``advance``: the ledger row as written and, when fired, the job row."""


def _with_job_state() -> Any:
    return sa.select(schedules, jobs.c.state.label("last_job_state")).select_from(
        schedules.outerjoin(jobs, jobs.c.id == schedules.c.last_job)
    )


def get(db: Database, name: str) -> RowMapping:
    """A schedule with its last job's state; NotFound naming it."""
    with db.read() as conn:
        row = conn.execute(_with_job_state().where(schedules.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no schedule '{name}'")
    return row


def list_all(db: Database, *, limit: int = 1000) -> list[RowMapping]:
    """Every schedule by name, with its last job's state."""
    with db.read() as conn:
        q = _with_job_state().order_by(schedules.c.name).limit(limit)
        return list(conn.execute(q).mappings())


def names(db: Database, origin: str | None = None) -> list[str]:
    with db.read() as conn:
        q = sa.select(schedules.c.name).order_by(schedules.c.name)
        if origin is not None:
            q = q.where(schedules.c.origin == origin)
        return list(conn.execute(q).scalars())


def ledger(
    db: Database,
    name: str,
    *,
    limit: int = LEDGER_LIMIT,
    status: str | None = None,
    before: datetime | None = None,
    oldest_first: bool = False,
    not_reason: str | None = None,
) -> list[RowMapping]:
    """Ledger rows of one schedule with each job's state now (the primary key orders them)."""
    q = (
        sa.select(schedule_fires, jobs.c.state.label("job_state"))
        .select_from(schedule_fires.outerjoin(jobs, jobs.c.id == schedule_fires.c.job_id))
        .where(schedule_fires.c.schedule == name)
    )
    if status is not None:
        q = q.where(schedule_fires.c.status == status)
    if before is not None:
        q = q.where(schedule_fires.c.fire_at < before)
    if not_reason is not None:
        q = q.where(schedule_fires.c.reason != not_reason)
    order = schedule_fires.c.fire_at if oldest_first else schedule_fires.c.fire_at.desc()
    with db.read() as conn:
        return list(conn.execute(q.order_by(order).limit(limit)).mappings())


def due(db: Database, now: datetime, *, limit: int = 100) -> list[RowMapping]:
    """Unpaused schedules whose next fire time has come (index ``ix_schedules_due``)."""
    q = (
        sa.select(schedules)
        .where(schedules.c.paused.is_(False), schedules.c.next_fire_at <= now)
        .order_by(schedules.c.next_fire_at)
        .limit(limit)
    )
    with db.read() as conn:
        return list(conn.execute(q).mappings())


def _event(conn: Connection, kind: str, name: str, now: datetime, actor: str, msg: str) -> None:
    add_event(conn, NO_JOB, kind, now, actor=actor, message=msg, data={"schedule": name})


def insert(db: Database, row: Mapping[str, Any], *, actor: str, now: datetime) -> RowMapping:
    """Store a new schedule and its ``schedule.added`` event; Conflict when the name is taken."""
    with db.write() as conn:
        taken = conn.execute(
            sa.select(schedules.c.origin).where(schedules.c.name == row["name"])
        ).scalar()
        if taken is not None:
            raise Conflict(f"name: a schedule '{row['name']}' exists already ({taken})")
        conn.execute(schedules.insert().values(**row))
        _event(conn, "schedule.added", row["name"], now, actor, _describe(row))
    return get(db, row["name"])


def update_declared(
    db: Database, name: str, values: Mapping[str, Any], *, actor: str, now: datetime
) -> bool:
    """Change a template schedule to what its template declares now; False when it is gone
    or is not a template's."""
    with db.write() as conn:
        done = conn.execute(
            schedules.update()
            .where(schedules.c.name == name, schedules.c.origin == "template")
            .values(**values, updated_at=now)
        ).rowcount
        if done:
            _event(conn, "schedule.changed", name, now, actor, "its template's schedule changed")
    return bool(done)


def _describe(row: Mapping[str, Any]) -> str:
    when = f"cron '{row['cron']}' {row['tz']}" if row.get("cron") else f"every {row['every_s']}s"
    return f"schedule {row['name']}: {row['template']} {when}"


def _ledger_rows(
    name: str, times: Iterable[datetime], status: str, reason: str, actor: str, now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "schedule": name,
            "fire_at": t,
            "status": status,
            "job_id": None,
            "reason": reason,
            "actor": actor,
            "recorded_at": now,
        }
        for t in times
    ]


def pause(db: Database, name: str, *, actor: str, now: datetime) -> None:
    with db.write() as conn:
        done = conn.execute(
            schedules.update()
            .where(schedules.c.name == name, schedules.c.paused.is_(False))
            .values(paused=True, updated_at=now)
        ).rowcount
        if not done:
            raise _why_not(conn, name, "paused already")
        _event(conn, "schedule.paused", name, now, actor, f"schedule {name} paused")


def resume(
    db: Database,
    name: str,
    *,
    old: datetime | None,
    missed: Sequence[datetime],
    next_fire_at: datetime | None,
    actor: str,
    now: datetime,
) -> None:
    """Unpause, recording the fire times that passed while paused as ``missed``."""
    with db.write() as conn:
        done = conn.execute(
            schedules.update()
            .where(
                schedules.c.name == name,
                schedules.c.paused.is_(True),
                _cursor_is(old),
            )
            .values(paused=False, next_fire_at=next_fire_at, updated_at=now)
        ).rowcount
        if not done:
            raise _why_not(conn, name, "not paused")
        if missed:
            conn.execute(
                schedule_fires.insert(), _ledger_rows(name, missed, MISSED, PAUSED, actor, now)
            )
        _event(
            conn,
            "schedule.resumed",
            name,
            now,
            actor,
            f"schedule {name} resumed; {len(missed)} fire(s) missed while paused",
        )


def skip(
    db: Database,
    name: str,
    *,
    old: datetime | None,
    times: Sequence[datetime],
    next_fire_at: datetime | None,
    reason: str,
    actor: str,
    now: datetime,
) -> int:
    """Record ``times`` skipped and move the cursor past them; 0 when another process moved
    it first (nothing is written then)."""
    with db.write() as conn:
        done = conn.execute(
            schedules.update()
            .where(schedules.c.name == name, _cursor_is(old))
            .values(next_fire_at=next_fire_at, updated_at=now)
        ).rowcount
        if not done:
            return 0
        if times:
            conn.execute(
                schedule_fires.insert(), _ledger_rows(name, times, SKIPPED, reason, actor, now)
            )
    return len(times)


def remove(db: Database, name: str, *, actor: str, now: datetime) -> None:
    """Delete a schedule; its ledger stays (history, pruned with old jobs)."""
    with db.write() as conn:
        if not conn.execute(schedules.delete().where(schedules.c.name == name)).rowcount:
            raise NotFound(f"no schedule '{name}'")
        _event(conn, "schedule.removed", name, now, actor, f"schedule {name} removed")


def _cursor_is(old: datetime | None) -> Any:
    col = schedules.c.next_fire_at
    return col.is_(None) if old is None else col == old


def _why_not(conn: Connection, name: str, what: str) -> Exception:
    found = conn.execute(sa.select(schedules.c.name).where(schedules.c.name == name)).first()
    if found is None:
        return NotFound(f"no schedule '{name}'")
    return InvalidTransition(f"schedule {name} is {what}")


def live_jobs(conn: Connection, name: str) -> list[str]:
    """Ids of this schedule's live jobs, newest first (index ``ix_jobs_schedule``)."""
    q = (
        sa.select(jobs.c.id)
        .where(jobs.c.schedule == name, jobs.c.state.in_([s.value for s in LIVE]))
        .order_by(jobs.c.created_at.desc())
    )
    return list(conn.execute(q).scalars())


def _submit(conn: Connection, name: str, fire: Fire, overlap: str, now: datetime) -> None:
    """Submit a fire's job unless the overlap policy says otherwise; fill ``fire.result``."""
    assert fire.job is not None
    job = dict(fire.job)
    live = live_jobs(conn, name)
    after: list[str] = []
    if live and overlap == "skip":
        fire.status, fire.reason = SKIPPED, f"overlap: job {live[0]} still running"
        return
    if live and overlap == "queue":
        after = [live[0]]
        fire.reason = (fire.reason + "; " if fire.reason else "") + f"queued after job {live[0]}"
        if job["state"] in (S.QUEUED.value, S.SCHEDULED.value):
            job["state"] = S.WAITING.value
        job["depends_on"] = after
    out = insert_in(conn, job, after, actor=job["submitted_by"], now=now, message=fire.message)
    fire.result["job"] = out


def advance(
    db: Database,
    name: str,
    *,
    old: datetime | None,
    next_fire_at: datetime | None,
    fires: Sequence[Fire],
    overlap: str,
    actor: str,
    now: datetime,
    require_unpaused: bool = True,
) -> bool:
    """Record ``fires`` (submitting their jobs) and move the cursor from ``old`` to
    ``next_fire_at``, all in one transaction; False (nothing written) when the cursor is no
    longer ``old``: another process fired these times first."""
    try:
        with db.write() as conn:
            guard = [schedules.c.name == name, _cursor_is(old)]
            if require_unpaused:
                guard.append(schedules.c.paused.is_(False))
            done = conn.execute(
                schedules.update().where(*guard).values(next_fire_at=next_fire_at, updated_at=now)
            ).rowcount
            if not done:
                return False
            # a time already in the ledger (fired by hand at that very instant) is not
            # fired again; the cursor still moves past it, so the schedule never sticks
            taken = set(
                conn.execute(
                    sa.select(schedule_fires.c.fire_at).where(
                        schedule_fires.c.schedule == name,
                        schedule_fires.c.fire_at.in_([f.fire_at for f in fires]),
                    )
                ).scalars()
            )
            _record(conn, name, [f for f in fires if f.fire_at not in taken], overlap, actor, now)
    except sa.exc.IntegrityError:
        # the ledger's key: another process recorded one of these times (nothing is written)
        return False
    return True


def record(
    db: Database, name: str, fires: Sequence[Fire], *, overlap: str, actor: str, now: datetime
) -> None:
    """Record fires that move no cursor (a run by hand): the ledger key is their guard."""
    with db.write() as conn:
        found = conn.execute(sa.select(schedules.c.name).where(schedules.c.name == name)).first()
        if found is None:
            raise NotFound(f"no schedule '{name}'")
        taken = conn.execute(
            sa.select(schedule_fires.c.fire_at).where(
                schedule_fires.c.schedule == name,
                schedule_fires.c.fire_at.in_([f.fire_at for f in fires]),
            )
        ).first()
        if taken is not None:
            raise Conflict(f"schedule {name} has a ledger row for {taken[0]:%Y-%m-%d %H:%M:%S}")
        _record(conn, name, fires, overlap, actor, now)


def _record(
    conn: Connection, name: str, fires: Sequence[Fire], overlap: str, actor: str, now: datetime
) -> None:
    last: tuple[datetime, str] | None = None
    for fire in fires:
        if fire.status == FIRED:
            _submit(conn, name, fire, overlap, now)
        job = fire.result.get("job")
        row = {
            "schedule": name,
            "fire_at": fire.fire_at,
            "status": fire.status,
            "job_id": job["id"] if job else None,
            "reason": fire.reason,
            "actor": actor,
            "recorded_at": now,
        }
        conn.execute(schedule_fires.insert().values(**row))
        fire.result["fire"] = row
        if job:
            last = (fire.fire_at, job["id"])
    if last is not None:
        conn.execute(
            schedules.update()
            .where(schedules.c.name == name)
            .values(last_fire_at=last[0], last_job=last[1])
        )


def run_missed(
    db: Database, name: str, fires: Sequence[Fire], *, actor: str, now: datetime
) -> list[RowMapping]:
    """Submit a job for each ``missed`` ledger row in ``fires`` and mark it fired; a row
    another process ran first (no longer ``missed``) is left alone."""
    out: list[RowMapping] = []
    with db.write() as conn:
        for fire in fires:
            assert fire.job is not None
            done = conn.execute(
                schedule_fires.update()
                .where(
                    schedule_fires.c.schedule == name,
                    schedule_fires.c.fire_at == fire.fire_at,
                    schedule_fires.c.status == MISSED,
                )
                .values(
                    status=FIRED,
                    job_id=fire.job["id"],
                    reason=fire.reason,
                    actor=actor,
                    recorded_at=now,
                )
            ).rowcount
            if not done:
                continue
            job = insert_in(
                conn, fire.job, [], actor=fire.job["submitted_by"], now=now, message=fire.message
            )
            out.append(job)
        if out:
            conn.execute(
                schedules.update().where(schedules.c.name == name).values(last_job=out[-1]["id"])
            )
    return out
