"""Job writes: submit with its first event, verb-guarded transitions, fenced finishes.

Every state change names its verb (``core.states.Verb``) and is one UPDATE whose WHERE
clause holds the states that verb may act from, so a decision made on an earlier read can
never move a job the verb does not allow (a stale retry of a running job changes nothing).
The change writes its event in the same transaction, so the audit trail and the change
feed can never disagree with the jobs table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.errors import Conflict, InvalidParams, InvalidTransition
from opsconsole.core.states import EVENTS, FINAL, INITIAL, KEEPS, JobState, Verb, sources
from opsconsole.core.store import checks as check_store
from opsconsole.core.store.db import EVENT_KEYS, Database, defer_event, deps, events, jobs, one_of
from opsconsole.core.store.prepared import Prepared

S = JobState
V = Verb
NUL_SHOWN = "\N{SYMBOL FOR NULL}"
"""What a NUL character in free text becomes (PostgreSQL's text type refuses NUL)."""
NO_JOB = ""
"""The job id of an audit event about no single job: a freeze, a refused submit."""

JOB_KEYS = tuple(c.key for c in jobs.c)
_JOB_KEY_SET = frozenset(JOB_KEYS)
_SCALAR_DEFAULTS = {
    c.key: c.default.arg if c.default is not None and c.default.is_scalar else None for c in jobs.c
}
_MADE_DEFAULTS = tuple(
    (c.key, c.default.arg)
    for c in jobs.c
    if c.default is not None and c.default.is_callable  # a fresh dict or list per row
)


def _insert_job(dialect: str) -> sa.Insert:
    """A new job's row, every column bound; nothing when its id is taken (one statement
    instead of a savepoint around a failing insert); the row as stored, returned."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(jobs).on_conflict_do_nothing(index_elements=[jobs.c.id]).returning(*jobs.c)


_insert_jobs = Prepared(_insert_job, keys=JOB_KEYS)
_insert_deps = Prepared(lambda _: deps.insert(), keys=("job_id", "depends_on"))
_insert_event = Prepared(lambda _: events.insert(), keys=EVENT_KEYS)
_fetch = sa.select(jobs).where(jobs.c.id == sa.bindparam("job_id"))


def add_event(
    conn: Connection,
    job_id: str,
    kind: str,
    now: datetime,
    *,
    actor: str = "",
    state: str | None = None,
    attempt: int | None = None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    """Append an event in the caller's write transaction: the one way into ``job_events``.

    On PostgreSQL the row is held and inserted at the transaction's end (``db.defer_event``),
    so the feed's ids follow commit order. A NUL in the message (job output, an exception's
    text) is shown as U+2400: PostgreSQL's text refuses NUL bytes.
    """
    row = {
        "job_id": job_id,
        "ts": now,
        "kind": kind,
        "actor": actor,
        "state": state,
        "attempt": attempt,
        "message": message.replace("\x00", NUL_SHOWN) if "\x00" in message else message,
        "data": data,
    }
    if not defer_event(conn, row):
        _insert_event.execute(conn, row)


def note(
    db: Database,
    job_id: str,
    kind: str,
    now: datetime,
    *,
    actor: str,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    """Append an event about a job (a refusal, a request) in a transaction of its own, with
    the state the job is in as it is written (None for no job)."""
    with db.write() as conn:
        row = fetch(conn, job_id)
        state = row["state"] if row is not None else None
        add_event(conn, job_id, kind, now, actor=actor, state=state, message=message, data=data)


def fetch(conn: Connection, job_id: str) -> RowMapping | None:
    return conn.execute(_fetch, {"job_id": job_id}).mappings().first()


def insert(
    db: Database,
    row: Mapping[str, Any],
    depends_on: Iterable[str],
    *,
    actor: str,
    now: datetime,
    message: str = "",
) -> Mapping[str, Any]:
    """Insert a job as given, its dependency edges and its ``submitted`` event in one transaction.

    The row may be in any state: this is how fixtures and imports seed a store. Operators'
    jobs enter through ``submit``, which allows only the first states.
    """
    with db.write() as conn:
        return insert_in(conn, row, depends_on, actor=actor, now=now, message=message)


def insert_in(
    conn: Connection,
    row: Mapping[str, Any],
    depends_on: Iterable[str],
    *,
    actor: str,
    now: datetime,
    message: str = "",
) -> Mapping[str, Any]:
    """``insert`` inside the caller's write transaction (a schedule's fire writes its ledger
    row in the same one, so the job and the record of its fire land together or not at all).

    Dependencies are checked inside the write lock: a dependency that ended in any state but
    succeeded is refused, so a dependent can never wait forever. On PostgreSQL their rows are
    share-locked as they are read: a dependency finishing meanwhile either committed first
    (and its state is read here) or waits for this insert (and then settles the new job).
    """
    dep_ids = list(dict.fromkeys(depends_on))
    if dep_ids:
        found = {r.id: r.state for r in conn.execute(_lock_states(dep_ids))}
        for dep in dep_ids:
            if dep not in found:
                raise InvalidParams(f"dependency '{dep}' does not exist")
            if found[dep] in FINAL and found[dep] != S.SUCCEEDED:
                raise InvalidParams(
                    f"dependency '{dep}' already ended {found[dep]}: it can never succeed"
                )
        if row["state"] == S.WAITING and all(found[d] == S.SUCCEEDED for d in dep_ids):
            # every dependency succeeded since the caller looked: nothing left to wait for
            ready = S.SCHEDULED if row["run_at"] > now else S.QUEUED
            row = {**row, "state": ready.value}
    stored = _insert_jobs.execute(conn, full_row(row))
    if not stored:  # nothing else of this job was written: the caller's writes stand
        raise Conflict(f"job id {row['id']} is taken")
    if dep_ids:
        _insert_deps.execute_many(conn, [{"job_id": row["id"], "depends_on": d} for d in dep_ids])
    add_event(conn, row["id"], "submitted", now, actor=actor, state=row["state"], message=message)
    return stored[0]


def full_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with the columns' defaults for what it leaves out; refuses unknown columns."""
    if not row.keys() <= _JOB_KEY_SET:
        unknown = sorted(row.keys() - _JOB_KEY_SET)
        raise ValueError(f"not columns of jobs: {', '.join(unknown)}")
    out = {**_SCALAR_DEFAULTS, **row}
    for key, make in _MADE_DEFAULTS:
        if key not in row:
            out[key] = make(None)
    return out


def submit(
    db: Database,
    row: Mapping[str, Any],
    depends_on: Iterable[str],
    *,
    actor: str,
    now: datetime,
    message: str = "",
) -> Mapping[str, Any]:
    """Insert a new job in one of its first states (``INITIAL``); refuse any other state."""
    if row["state"] not in INITIAL:
        raise InvalidTransition(f"cannot submit job {row['id']}: it would be {row['state']}")
    return insert(db, row, depends_on, actor=actor, now=now, message=message)


def submit_many(
    db: Database,
    jobs_: Sequence[tuple[Mapping[str, Any], Iterable[str]]],
    new_id: Callable[[], str],
    *,
    actor: str,
) -> list[Mapping[str, Any]]:
    """Insert new jobs (rows without ids, each with its dependencies) in one transaction:
    all of them or none. A taken id is drawn again from ``new_id`` (five times at most)."""
    for row, _ in jobs_:
        if row["state"] not in INITIAL:
            raise InvalidTransition(f"cannot submit a job that would be {row['state']}")
    out = []
    with db.write() as conn:
        for row, after in jobs_:
            out.append(_insert_new(conn, row, after, new_id, actor=actor))
    return out


def _insert_new(
    conn: Connection,
    row: Mapping[str, Any],
    after: Iterable[str],
    new_id: Callable[[], str],
    *,
    actor: str,
) -> Mapping[str, Any]:
    for _ in range(5):
        try:
            return insert_in(
                conn, {**row, "id": new_id()}, after, actor=actor, now=row["created_at"]
            )
        except Conflict:
            continue
    raise Conflict("could not allocate a job id")  # pragma: no cover - 27^6 ids


def refusal(conn: Connection, job_id: str, what: str) -> InvalidTransition:
    """The one-line refusal naming the job's state now (read after the guarded write)."""
    current = fetch(conn, job_id)
    state = current["state"] if current else "gone"
    return InvalidTransition(f"cannot {what} job {job_id}: it is {state}")


def transition(
    conn: Connection,
    job_id: str,
    new: JobState,
    now: datetime,
    *,
    verb: Verb,
    kind: str | None = None,
    actor: str = "",
    message: str = "",
    attempt: int | None = None,
    only_from: Iterable[JobState] | None = None,
    values: Mapping[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> RowMapping | None:
    """Move a job to ``new`` by ``verb`` if the verb allows it from the job's state; None if not.

    The verb's source states are the UPDATE's WHERE clause, so what the caller read before
    does not matter. ``attempt`` fences the write: a worker replaced after its lease expired
    holds an older attempt number and changes nothing. ``kind`` is the event to write (the
    verb's own by default; a finish writes the state's name).
    """
    allowed = sources(verb, new)
    if only_from is not None:
        allowed = allowed & frozenset(only_from)
    if not allowed:
        return None
    vals: dict[str, Any] = {"state": new.value, "updated_at": now, **(values or {})}
    if new in FINAL:
        vals.setdefault("finished_at", now)
        vals["secret_blob"] = None  # secrets are dropped once a job is final
        vals["lease_until"] = None
    states = tuple(sorted(s.value for s in allowed))
    if any(isinstance(v, sa.ClauseElement) for v in vals.values()):
        # a value computed from the row (``retry_base = attempts``): built for this call
        cond = [jobs.c.id == job_id, one_of(jobs.c.state, states)]
        if attempt is not None:
            cond.append(jobs.c.attempts == attempt)
        stmt = jobs.update().where(*cond).values(**vals).returning(jobs)
        row = conn.execute(stmt).mappings().first()
    else:
        shape = tuple(sorted((k, v is None) for k, v in vals.items()))
        params = {f"v_{k}": v for k, v in vals.items() if v is not None}
        params["t_id"] = job_id
        if attempt is not None:
            params["t_attempt"] = attempt
        stmt = _transition(states, attempt is not None, shape)
        row = conn.execute(stmt, params).mappings().first()
    if row is None:
        return None
    add_event(
        conn,
        job_id,
        kind or (new.value if verb == V.FINISH else EVENTS[verb]),
        now,
        actor=actor,
        state=new.value,
        attempt=row["attempts"] if attempt is None else attempt,
        message=message,
        data=data,
    )
    if new in FINAL:
        settle_dependents(conn, job_id, new, now)
        check_store.record_end(conn, row, now, actor)
    return row


def transition_or_raise(
    db: Database,
    job_id: str,
    new: JobState,
    now: datetime,
    *,
    verb: Verb,
    kind: str | None = None,
    actor: str = "",
    message: str = "",
    only_from: Iterable[JobState] | None = None,
    values: Mapping[str, Any] | None = None,
) -> RowMapping:
    """``transition`` in its own transaction; a refusal is ``InvalidTransition`` naming the
    state the job is in ("cannot retry job X: it is running")."""
    with db.write() as conn:
        row = transition(
            conn,
            job_id,
            new,
            now,
            verb=verb,
            kind=kind,
            actor=actor,
            message=message,
            only_from=only_from,
            values=values,
        )
        if row is None:
            raise refusal(conn, job_id, verb.value)
        return row


def retry(
    db: Database,
    job_id: str,
    now: datetime,
    *,
    actor: str,
    secret_blob: str | None,
    message: str = "manual retry",
    gate_expires_at: datetime | None = None,
    phase: str | None = None,
) -> RowMapping:
    """Queue a new attempt of a job that ended badly; ``InvalidTransition`` from any other state.

    The guard is the UPDATE itself: a job retried and claimed since the caller looked at it
    is running, and stays running with its worker. A gated job (``gate_expires_at`` given)
    goes back to ``awaiting_approval`` in a new round instead: its old approval is spent.
    ``phase`` starts a job with stages (Terraform: ``plan``) at that stage again.
    """
    gate: dict[str, Any] = {"phase": phase} if phase is not None else {}
    if gate_expires_at is not None:
        gate = {
            "gate_round": jobs.c.gate_round + 1,
            "approval_expires_at": gate_expires_at,
            "approved_digest": None,
        }
    return transition_or_raise(
        db,
        job_id,
        S.AWAITING_APPROVAL if gate_expires_at is not None else S.QUEUED,
        now,
        verb=V.RETRY,
        actor=actor,
        message=message,
        values={
            "secret_blob": secret_blob,
            "run_at": now,
            "finished_at": None,
            "retry_base": jobs.c.attempts,  # the row's own count, not the caller's read
            "interruptions": 0,  # an operator chose to run it again: the crash cap starts over
            "error": None,
            "exit_code": None,
            "result": None,
            "progress": None,
            "step": None,
            "cancel_requested": False,
            "cancel_reason": None,
            **gate,
        },
    )


@functools.lru_cache(maxsize=256)
def _transition(
    states: tuple[str, ...], fenced: bool, shape: tuple[tuple[str, bool], ...]
) -> sa.Update:
    """A guarded transition's UPDATE, built once per shape: the states it may act from,
    whether the attempt fences it, and which columns it sets (``None`` ones as SQL NULL,
    so a JSON column gets NULL, not the JSON text ``null``)."""
    cond = [jobs.c.id == sa.bindparam("t_id", type_=jobs.c.id.type), one_of(jobs.c.state, states)]
    if fenced:
        cond.append(jobs.c.attempts == sa.bindparam("t_attempt", type_=jobs.c.attempts.type))
    values = {
        key: sa.null() if null else sa.bindparam(f"v_{key}", type_=jobs.c[key].type)
        for key, null in shape
    }
    return jobs.update().where(*cond).values(values).returning(jobs)


_WAITING_ON = (
    sa.select(jobs.c.id, jobs.c.run_at)
    .join(deps, deps.c.job_id == jobs.c.id)
    .where(
        deps.c.depends_on == sa.bindparam("dep", type_=deps.c.depends_on.type),
        jobs.c.state == S.WAITING.value,
    )
    .order_by(jobs.c.id)
    .with_for_update(of=jobs)
)
"""The waiting dependents of a job, locked in id order (``settle_dependents``)."""
_UNFINISHED_DEPS = (
    sa.select(sa.func.count())
    .select_from(deps.join(jobs, jobs.c.id == deps.c.depends_on))
    .where(
        deps.c.job_id == sa.bindparam("child", type_=deps.c.job_id.type),
        jobs.c.state != S.SUCCEEDED.value,
    )
)
"""How many of a job's dependencies have not succeeded (``settle_dependents``)."""


def settle_dependents(conn: Connection, job_id: str, final: JobState, now: datetime) -> None:
    """Release or cancel the jobs waiting on ``job_id`` in this transaction.

    A cancelled dependent is itself final, so ``transition`` settles its dependents in turn.
    Each dependent's row is locked (in id order, so two settlers cannot deadlock) before its
    other dependencies are counted, in a later statement: of two dependencies finishing at
    once, the second to take the lock counts on a snapshot that sees the first one's end.
    Without it, on PostgreSQL each would count the other as unfinished and the dependent
    would wait forever (SQLite's single writer never interleaves them).
    """
    waiting = conn.execute(_WAITING_ON, {"dep": job_id}).all()
    root = _root_cause(conn, job_id) if waiting and final != S.SUCCEEDED else None
    for child_id, run_at in waiting:
        if final != S.SUCCEEDED:
            error = _dep_error(job_id, final, root)
            transition(
                conn,
                child_id,
                S.CANCELLED,
                now,
                verb=V.CANCEL,
                message=error["message"],
                values={"error": error},
                only_from=[S.WAITING],
            )
            continue
        pending = conn.execute(_UNFINISHED_DEPS, {"child": child_id}).scalar_one()
        if pending == 0:
            transition(
                conn,
                child_id,
                S.SCHEDULED if run_at > now else S.QUEUED,
                now,
                verb=V.RELEASE,
                message="all dependencies succeeded",
                only_from=[S.WAITING],
            )


def _root_cause(conn: Connection, job_id: str) -> dict[str, Any] | None:
    """The job that started a chain of dependency cancels, if ``job_id`` was one of them."""
    error = conn.execute(sa.select(jobs.c.error).where(jobs.c.id == job_id)).scalar()
    if isinstance(error, dict) and error.get("kind") == "dependency":
        return (error.get("detail") or {}).get("root")
    return None


def _dep_error(dep_id: str, state: JobState, root: dict[str, Any] | None) -> dict[str, Any]:
    # name the root cause too, so the last job of a chain says which job really failed
    message = f"dependency {dep_id} ended {state.value}"
    if root is not None:
        message += f" because {root['job']} ended {root['state']}"
    origin = root or {"job": dep_id, "state": state.value}
    return {
        "message": message,
        "kind": "dependency",
        "detail": {"job": dep_id, "state": state.value, "root": origin},
    }


def _lock_states(job_ids: list[str]) -> sa.Select[tuple[str, str]]:
    """The states of ``job_ids``, their rows share-locked in id order (PostgreSQL; SQLite's
    write lock already covers them): a job's end cannot commit between this read and the
    caller's commit."""
    return (
        sa.select(jobs.c.id, jobs.c.state)
        .where(jobs.c.id.in_(job_ids))
        .order_by(jobs.c.id)
        .with_for_update(read=True)
    )


def dependencies_of(conn: Connection, job_id: str) -> list[str]:
    return list(conn.execute(sa.select(deps.c.depends_on).where(deps.c.job_id == job_id)).scalars())


def add_dependencies(
    db: Database, job_id: str, after: list[str], *, actor: str, now: datetime
) -> RowMapping:
    """Make a pending job wait for more jobs (the ``wait`` verb); refuse unknown ids and cycles.

    A queued or scheduled job moves to waiting unless every new dependency already
    succeeded; the UPDATE that records the dependencies is the state guard.
    """
    with db.write() as conn:
        existing = set(dependencies_of(conn, job_id))
        new = [a for a in dict.fromkeys(after) if a not in existing]
        for dep in new:
            dep_row = fetch(conn, dep)
            if dep_row is None:
                raise InvalidParams(f"dependency '{dep}' does not exist")
            if dep == job_id or _reaches(conn, dep, job_id):
                raise InvalidParams(f"dependency cycle: {dep} already depends on {job_id}")
            if dep_row["state"] in FINAL and dep_row["state"] != S.SUCCEEDED:
                raise InvalidParams(f"dependency '{dep}' already ended {dep_row['state']}")
        if not new:
            row = fetch(conn, job_id)
            if row is None or row["state"] not in KEEPS[V.WAIT]:
                raise refusal(conn, job_id, "add dependencies to")
            return row
        all_deps = sorted([*existing, *new])
        # locked as they are read, as at insert: a dependency finishing meanwhile is either
        # seen ended here or settles this job after it commits
        unfinished = sum(
            1 for r in conn.execute(_lock_states(all_deps)) if r.state != S.SUCCEEDED.value
        )
        values = {"depends_on": all_deps}
        message = "waits for " + ", ".join(new)
        out = None
        if unfinished:
            out = transition(
                conn,
                job_id,
                S.WAITING,
                now,
                verb=V.WAIT,
                actor=actor,
                message=message,
                values=values,
            )
        if out is None:  # it keeps its state: it waits already, awaits approval, or is ready
            out = (
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state.in_(_names(KEEPS[V.WAIT])))
                    .values(updated_at=now, **values)
                    .returning(jobs)
                )
                .mappings()
                .first()
            )
            if out is None:
                raise refusal(conn, job_id, "add dependencies to")
            add_event(
                conn, job_id, EVENTS[V.WAIT], now, actor=actor, state=out["state"], message=message
            )
        conn.execute(deps.insert(), [{"job_id": job_id, "depends_on": d} for d in new])
        return out


def _names(states: Iterable[JobState]) -> list[str]:
    return sorted(s.value for s in states)


def _reaches(conn: Connection, start: str, target: str) -> bool:
    """Does ``start`` (transitively) depend on ``target``? Walks edges, bounded by the graph."""
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        rows = (
            conn.execute(sa.select(deps.c.depends_on).where(deps.c.job_id.in_(frontier)))
            .scalars()
            .all()
        )
        if target in rows:
            return True
        frontier = [r for r in rows if r not in seen]
        seen.update(frontier)
    return False


def set_priority(
    db: Database, job_id: str, priority: int, *, actor: str, now: datetime
) -> RowMapping:
    """Change the priority of a job that has not started (the ``reprioritise`` verb)."""
    with db.write() as conn:
        row = (
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.in_(_names(KEEPS[V.REPRIORITISE])))
                .values(priority=priority, updated_at=now)
                .returning(jobs)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise refusal(conn, job_id, "change the priority of")
        add_event(
            conn,
            job_id,
            EVENTS[V.REPRIORITISE],
            now,
            actor=actor,
            state=row["state"],
            message=f"priority set to {priority}",
            data={"priority": priority},
        )
        return row


def request_cancel(
    db: Database, job_id: str, *, reason: str, actor: str, now: datetime
) -> RowMapping:
    """Cancel a pending job at once; ask the worker of a running one to stop it.

    Two guarded UPDATEs in one transaction, each checking the state it acts from: the
    answer never depends on what the caller (or this function) read before.
    """
    msg = reason or f"cancelled by {actor}"
    with db.write() as conn:
        out = transition(
            conn,
            job_id,
            S.CANCELLED,
            now,
            verb=V.CANCEL,
            actor=actor,
            message=msg,
            values={"error": {"message": msg, "kind": "cancelled", "detail": {"by": actor}}},
        )
        if out is not None:
            return out
        out = (
            conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state.in_(_names(KEEPS[V.CANCEL])),
                    jobs.c.cancel_requested.is_(False),
                )
                .values(cancel_requested=True, cancel_reason=msg, updated_at=now)
                .returning(jobs)
            )
            .mappings()
            .first()
        )
        if out is not None:
            add_event(
                conn,
                job_id,
                "cancel_requested",
                now,
                actor=actor,
                state=out["state"],
                attempt=out["attempts"],
                message=msg,
            )
            return out
        current = fetch(conn, job_id)
        if current is not None and current["state"] in KEEPS[V.CANCEL]:
            return current  # asked already: the first request's event stands
        raise refusal(conn, job_id, V.CANCEL.value)


ENDING_VERBS: dict[JobState, Verb] = {S.QUEUED: V.REQUEUE, S.AWAITING_APPROVAL: V.PARK}
"""How ``finish`` reads its ``new`` state; any other state is an attempt's end."""


def finish(
    db: Database,
    job_id: str,
    attempt: int,
    new: JobState,
    now: datetime,
    *,
    values: Mapping[str, Any],
    kind: str | None = None,
    message: str = "",
    actor: str = "",
) -> RowMapping | None:
    """End an attempt; None when the attempt was fenced off (a successor owns the job).

    ``new`` names the verb: ``queued`` requeues the job (its worker vanished),
    ``awaiting_approval`` parks it, anything else finishes it (a final state, or
    ``scheduled`` for a retry after backoff).
    """
    with db.write() as conn:
        return finish_in(
            conn,
            End(job_id, attempt, new, now, values, kind=kind, message=message, actor=actor),
        )


@dataclass(frozen=True)
class End:
    """One attempt's end, as ``finish`` writes it (``finish_many`` writes several)."""

    job_id: str
    attempt: int
    new: JobState
    now: datetime
    values: Mapping[str, Any]
    kind: str | None = None
    message: str = ""
    actor: str = ""


def finish_in(conn: Connection, end: End) -> RowMapping | None:
    """``finish`` inside the caller's write transaction."""
    return transition(
        conn,
        end.job_id,
        end.new,
        end.now,
        verb=ENDING_VERBS.get(end.new, V.FINISH),
        kind=end.kind,
        actor=end.actor,
        message=end.message,
        attempt=end.attempt,
        values=end.values,
    )


def finish_many(db: Database, ends: Sequence[End]) -> list[RowMapping | None]:
    """End several attempts in one transaction (each as ``finish``, fenced by its attempt);
    the row written or None for each, in order.

    Several slots that end together cost one commit, not one each. Any error fails them
    all (nothing is written): the caller may then write each alone.
    """
    with db.write() as conn:
        return [finish_in(conn, end) for end in ends]


def update_progress(
    db: Database,
    job_id: str,
    attempt: int,
    now: datetime,
    *,
    progress: int | None,
    step: str | None,
) -> bool:
    """Set a running attempt's progress and step on its row; False when fenced off.

    No event: progress ticks are not facts for the audit trail, and the faces read them
    from the row (the console refreshes running rows; ``jobs show`` and ``wait`` read it).
    """
    vals: dict[str, Any] = {"updated_at": now}
    if progress is not None:
        vals["progress"] = progress
    if step is not None:
        vals["step"] = step
    with db.write() as conn:
        res = conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.attempts == attempt, jobs.c.state == S.RUNNING.value)
            .values(**vals)
        )
        return res.rowcount == 1


def set_pid(db: Database, job_id: str, attempt: int, pid: int | None) -> None:
    with db.write() as conn:
        conn.execute(
            jobs.update().where(jobs.c.id == job_id, jobs.c.attempts == attempt).values(pid=pid)
        )
